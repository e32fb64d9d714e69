"""MIDI files -> array_record shards of token ids, split by piece, plus
manifest.json. Output depends only on the input files, never on the number of
workers; a bad file is logged, counted and skipped."""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import logging
import os
import shutil
import time

from array_record.python.array_record_module import ArrayRecordWriter
from tqdm import tqdm

from yoshimidi_jax.data.manifest import MANIFEST, SPLITS
from yoshimidi_jax.data.pool import resilient_map
from yoshimidi_jax.data.records import PieceRecord, content_hash, serialize
from yoshimidi_jax.data.sources.base import SourceFiles
from yoshimidi_jax.midi.errors import MidiRejected
from yoshimidi_jax.midi.read_symusic import read_midi
from yoshimidi_jax.tokens.encode import encode
from yoshimidi_jax.tokens.styles import NO_STYLE, style_name, style_of_path
from yoshimidi_jax.tokens.time_codec import TimeCodec
from yoshimidi_jax.tokens.vocab import Vocab

log = logging.getLogger(__name__)



@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    eval_fraction: float = 0.05
    records_per_shard: int = 2000
    workers: int = 2
    min_notes: int = 8
    max_notes: int = 200_000
    file_timeout_s: float = 120.0  # a reader that hangs on one file is killed after this
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class FileResult:
    """What one worker returns for one file: a record, or a rejection."""

    path: str
    record: bytes | None = None
    piece_hash: int = 0
    notes: int = 0
    tokens: int = 0
    drum_notes: int = 0
    reason: str | None = None
    detail: str = ""
    style: int = NO_STYLE


def split_of(piece_hash: int, eval_fraction: float) -> str:
    """Stable split by content: the same piece always lands in the same split."""
    return "eval" if (piece_hash % 10_000) < round(eval_fraction * 10_000) else "train"


def process_file(path: str, min_notes: int, max_notes: int, root: str = "") -> FileResult:
    """Reads and tokenizes one MIDI file (its style from its folder under
    `root`, tokens/styles.py). Never raises for a bad file."""
    try:
        read = read_midi(path)
        n = len(read.events)
        if n < min_notes:
            raise MidiRejected("too_few_notes", f"{n} pitched notes < {min_notes}")
        if n > max_notes:
            raise MidiRejected("too_many_notes", f"{n} pitched notes > {max_notes}")
        tokens = encode(read.events)
        piece_hash = content_hash(tokens)
        style = style_of_path(path, root)
        data = serialize(PieceRecord(piece_hash=piece_hash, tokens=tokens, style=style))
        return FileResult(
            path=path, record=data, piece_hash=piece_hash, notes=n, tokens=len(tokens),
            drum_notes=read.drum_notes, style=style,
        )
    except MidiRejected as e:
        return FileResult(path=path, reason=e.reason, detail=e.detail)
    except Exception as e:  # a reader bug must not stop a batch job: count it
        return FileResult(path=path, reason="reader_error", detail=f"{type(e).__name__}: {e}")


def _reader_failed(path: str, reason: str, detail: str) -> FileResult:
    """A file whose reader process died ("reader_crash") or hung ("reader_timeout")."""
    return FileResult(path=path, reason="reader_timeout" if reason == "timeout" else "reader_crash", detail=detail)


class _ShardWriter:
    """Writes records of one split into NAME-00000.array_record, ... ."""

    def __init__(self, out_dir: str, split: str, records_per_shard: int):
        self.out_dir, self.split, self.per_shard = out_dir, split, records_per_shard
        self.writer: ArrayRecordWriter | None = None
        self.in_shard = 0
        self.shards: list[str] = []

    def write(self, data: bytes) -> None:
        if self.writer is None or self.in_shard == self.per_shard:
            self.close()
            name = f"{self.split}-{len(self.shards):05d}.array_record"
            self.writer = ArrayRecordWriter(os.path.join(self.out_dir, name), "group_size:1")
            self.shards.append(name)
            self.in_shard = 0
        self.writer.write(data)
        self.in_shard += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def prepare(
    source: SourceFiles,
    out_dir: str,
    options: PrepareOptions = PrepareOptions(),
    source_name: str = "",
) -> dict:
    """Tokenizes every file of `source` into out_dir; returns the manifest.

    Writes into out_dir + ".partial" and swaps it in at the end, so an
    interrupted run never leaves a half dataset under out_dir.
    """
    started = time.time()
    vocab, codec = Vocab(), TimeCodec()
    partial = out_dir.rstrip("/") + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    writers = {s: _ShardWriter(partial, s, options.records_per_shard) for s in SPLITS}
    stats = {s: collections.Counter() for s in SPLITS}
    styles = {s: collections.Counter() for s in SPLITS}
    rejected: list[dict] = []
    seen_hashes: set[int] = set()
    drum_notes = 0
    work = functools.partial(process_file, min_notes=options.min_notes, max_notes=options.max_notes,
                             root=source.root)
    results = resilient_map(work, list(source.paths), _reader_failed, workers=options.workers,
                            timeout_s=options.file_timeout_s)
    for r in tqdm(results, total=len(source.paths), desc="prepare", unit="file", disable=not options.progress):
        if r.reason is None and r.piece_hash in seen_hashes:
            r = dataclasses.replace(r, reason="duplicate", detail="same tokens as an earlier file")
        if r.reason is not None:
            log.warning("rejected %s: %s %s", r.path, r.reason, r.detail)
            rejected.append({"path": r.path, "reason": r.reason, "detail": r.detail})
            continue
        seen_hashes.add(r.piece_hash)
        split = split_of(r.piece_hash, options.eval_fraction)
        writers[split].write(r.record)
        stats[split].update(pieces=1, notes=r.notes, tokens=r.tokens)
        styles[split][style_name(r.style)] += 1
        drum_notes += r.drum_notes
    for w in writers.values():
        w.close()

    notes = sum(s["notes"] for s in stats.values())
    tokens = sum(s["tokens"] for s in stats.values())
    manifest = {
        "source": source_name,
        "files_seen": len(source.paths),
        "files_kept": sum(s["pieces"] for s in stats.values()),
        "files_rejected": dict(sorted(collections.Counter(r["reason"] for r in rejected).items())),
        "rejected": rejected,
        "source_failed": source.failures_by_reason,
        "source_failed_list": list(source.failed),
        "notes": notes,
        "tokens": tokens,
        "tokens_per_note": round(tokens / max(notes, 1), 4),
        "drum_notes_excluded": drum_notes,
        "split": {
            s: {
                "pieces": stats[s]["pieces"],
                "notes": stats[s]["notes"],
                "tokens": stats[s]["tokens"],
                "styles": dict(sorted(styles[s].items())),
                "shards": writers[s].shards,
            }
            for s in SPLITS
        },
        "eval_fraction": options.eval_fraction,
        "vocab_version": vocab.version,
        "vocab_size": vocab.size,
        "time_codec": dataclasses.asdict(codec),
        "seconds": round(time.time() - started, 2),
    }
    with open(os.path.join(partial, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(partial, out_dir)
    return manifest
