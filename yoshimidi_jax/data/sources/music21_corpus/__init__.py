"""The corpus that ships inside music21, converted once into a folder of MIDI.

Offline: the scores come from `music21.corpus.getCorePaths()`. Each *piece*
becomes one .mid file in a cache folder:

- a score file (.mxl, .xml, .krn, a one-tune .abc) is one piece,
  ``bach/bwv66.6.mxl -> bach/bwv66.6.mid``;
- an .abc file holding many tunes (X: reference numbers) gives one piece per
  tune, ``essenFolksong/han1.abc X:12 -> essenFolksong/han1/tune_0012.mid``;
  except in collections whose X: numbers are the *voices* of one piece
  (josquin), which are merged into one score.

The work unit is one corpus file: a worker tokenizes a many-tune .abc file
once and writes all its tunes, reporting each tune on its own. The workers
are the data path's one pool (`data/pool.py`, pebble): a file gets
``timeout_s`` per piece; a file whose worker runs past that or dies is
converted again one piece per task, so only the piece that hangs or crashes
fails (reasons "timeout", "worker_crash").

Three known music21 faults are cured before writing MIDI:

- ~1,000 abc tunes: music21 reuses one TimeSignature object in several
  measures, and the MIDI conductor track then refuses to hold it twice
  ("already found in this Stream"). Each measure gets its own copy.
- ~50 pieces: badly formed repeats make repeat expansion raise. The repeat
  marks (bar.Repeat, RepeatBracket, Segno/Coda/Da Capo...) are dropped and the
  music is written once.
- grace notes (the fiddle tunes' ornaments): written NOTE_OFF before NOTE_ON
  at one tick, they would sound until the end of the track. They are dropped.

Idempotent: a piece whose .mid exists is not converted again, unless the
cache was written by another version of the cures (CURES_VERSION, kept in
``conversion.json``: the whole cache is converted again) (each .mid is
written atomically), and failures are remembered in ``failures.json`` (with
the music21 version; a new version retries them, and a timeout is retried
when a longer ``timeout_s`` is given).
"""

from __future__ import annotations

import collections
import functools
import json
import pathlib
from collections.abc import Sequence

from yoshimidi_jax.data.pool import map_batches
from yoshimidi_jax.data.sources.base import SourceFiles
from yoshimidi_jax.data.sources.music21_corpus.cures import has_repeat_marks, score_to_midi
from yoshimidi_jax.data.sources.music21_corpus.listing import (ALL, DEFAULT_COLLECTIONS, FAILURES_FILE, Piece, abc_tune_numbers,
                                                              corpus_root, list_pieces, music21_version)
from yoshimidi_jax.data.sources.music21_corpus.worker import convert_pieces, import_music21
from yoshimidi_jax.files import write_atomic

__all__ = ["ALL", "DEFAULT_COLLECTIONS", "FAILURES_FILE", "Piece", "SourceFiles", "abc_tune_numbers", "convert_corpus",
           "corpus_root", "has_repeat_marks", "list_pieces", "load_failures", "music21_version", "needs_conversion",
           "save_failures", "score_to_midi"]


# ------------------------------------------------------------ work units


def _batches(pieces: Sequence[Piece]) -> list[tuple[Piece, ...]]:
    """Pieces grouped by corpus file (one task each); largest files first
    (better balance)."""
    by_file: dict[str, list[Piece]] = collections.defaultdict(list)
    for piece in pieces:
        by_file[piece.corpus_path].append(piece)
    root = corpus_root()
    return [tuple(by_file[path]) for path in
            sorted(by_file, key=lambda path: (-(root / path).stat().st_size, path))]


def _failed(piece: Piece, reason: str, detail: str) -> tuple[str, str, str]:
    return piece.name, reason, f"{piece.name}: {detail}"


# ------------------------------------------------------------ failures file


def load_failures(cache_dir: str) -> dict[str, dict]:
    """Remembered failures (piece name -> {reason, detail, timeout_s}); empty
    when none, or when they were made by another music21 version."""
    path = pathlib.Path(cache_dir) / FAILURES_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("music21_version") != music21_version():
        return {}
    return dict(data.get("failed", {}))


def save_failures(cache_dir: str, failed: dict[str, dict]) -> None:
    """Write the failures file atomically."""
    data = {"music21_version": music21_version(), "failed": dict(sorted(failed.items()))}
    write_atomic(pathlib.Path(cache_dir) / FAILURES_FILE, json.dumps(data, indent=1).encode())


CURES_VERSION = 3  # 2: grace notes dropped; 3: chord symbols dropped
CONVERSION_FILE = "conversion.json"


def renew_stale_cache(cache_dir: str) -> bool:
    """Empties a cache written by another CURES_VERSION (its .mid files and
    failures); returns whether it did. Then stamps the cache with this version."""
    folder = pathlib.Path(cache_dir)
    stamp = folder / CONVERSION_FILE
    try:
        version = json.loads(stamp.read_text()).get("cures_version")
    except (OSError, ValueError):
        version = None
    stale = version != CURES_VERSION
    if stale:
        for path in folder.rglob("*.mid"):
            path.unlink()
        (folder / FAILURES_FILE).unlink(missing_ok=True)
        write_atomic(stamp, json.dumps({"cures_version": CURES_VERSION}).encode())
    return stale


def needs_conversion(piece: Piece, cache_dir: str, failed: dict[str, dict], timeout_s: float) -> bool:
    """Whether a piece is neither converted nor a remembered failure (a
    remembered timeout counts only if it had at least this timeout)."""
    if (pathlib.Path(cache_dir) / piece.name).exists():
        return False
    record = failed.get(piece.name)
    if record is None:
        return True
    return record["reason"] == "timeout" and timeout_s > record.get("timeout_s", 0.0)


# ------------------------------------------------------------ entry point


def convert_corpus(
    cache_dir: str,
    collections: Sequence[str] | None = None,
    workers: int = 2,
    timeout_s: float = 60.0,
    progress: bool = True,
) -> SourceFiles:
    """Convert the music21 corpus (the given collections; None: DEFAULT_COLLECTIONS)
    into .mid files under cache_dir, converting only what is not there yet.

    Returns the sorted paths of the selected pieces that exist as MIDI, and
    one {"path", "reason", "detail", "piece"} dict per selected piece that
    failed (reasons: parse_error, empty, repeat_expansion, midi_write_error,
    timeout, worker_crash)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    pathlib.Path(cache_dir).mkdir(parents=True, exist_ok=True)
    renew_stale_cache(cache_dir)
    pieces = list_pieces(collections)
    failed = load_failures(cache_dir)
    todo = [p for p in pieces if needs_conversion(p, cache_dir, failed, timeout_s)]

    if todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="music21 -> MIDI", unit="piece", disable=not progress)
        results = {"count": 0}

        def on_result(name: str, reason: str | None, detail: str) -> None:
            if reason is None:
                failed.pop(name, None)
            else:
                failed[name] = {"reason": reason, "detail": detail, "timeout_s": timeout_s}
            results["count"] += 1
            if results["count"] % 200 == 0:
                save_failures(cache_dir, failed)
            bar.update(1)

        convert = functools.partial(convert_pieces, root=str(corpus_root()), cache_dir=cache_dir)
        try:
            for name, reason, detail in map_batches(convert, _batches(todo), _failed, workers=workers,
                                                    timeout_s=timeout_s, initializer=import_music21):
                on_result(name, reason, detail)
        finally:
            bar.close()
            save_failures(cache_dir, failed)

    return _source_files(pieces, cache_dir, failed)


def _source_files(pieces: Sequence[Piece], cache_dir: str, failed: dict[str, dict]) -> SourceFiles:
    """SourceFiles of the selected pieces: those converted, and those failed."""
    root = corpus_root()
    paths, failures = [], []
    for piece in pieces:
        out = pathlib.Path(cache_dir) / piece.name
        if out.exists():
            paths.append(str(out))
        elif piece.name in failed:
            record = failed[piece.name]
            failures.append({
                "path": str(root / piece.corpus_path),
                "reason": record["reason"],
                "detail": record["detail"],
                "piece": piece.name,
            })
    return SourceFiles(paths=tuple(sorted(paths)), failed=tuple(failures), root=str(cache_dir))
