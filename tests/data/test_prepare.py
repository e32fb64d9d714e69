"""prepare: real pieces and bad files in, shards + manifest out."""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
import pytest
from array_record.python.array_record_data_source import ArrayRecordDataSource

from yoshimidi_jax.data.pool import resilient_map
from yoshimidi_jax.data.manifest import read_manifest, shard_paths
from yoshimidi_jax.data.prepare import PrepareOptions, prepare
from yoshimidi_jax.data.records import deserialize
from yoshimidi_jax.data.sources.base import SourceFiles
from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.tokens import TimeCodec, decode, normalize_events

def hashes_by_split(data_dir: str) -> dict[str, np.ndarray]:
    """Piece hashes of every record, per split (for purity checks)."""
    from array_record.python.array_record_data_source import ArrayRecordDataSource

    from yoshimidi_jax.data.records import deserialize

    out = {}
    for split in ("train", "eval"):
        paths = shard_paths(data_dir, split)
        src = ArrayRecordDataSource(paths) if paths else []
        out[split] = np.array([deserialize(src[i]).piece_hash for i in range(len(src))], dtype=np.uint64)
    return out



def _bad_files(tmp_path, good: str) -> dict[str, str]:
    """One file per kind of bad input, written by the test."""
    data = open(good, "rb").read()
    bad = {
        "truncated": data[: len(data) // 3],
        "not_midi": b"RIFF....WAVEfmt " + bytes(200),
        "garbage": bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
        "empty": b"",
        # a data byte over 127 in the first note_on of a track
        "bad_byte": data.replace(b"\x90", b"\x90\xff", 1),
    }
    out = {}
    for name, content in bad.items():
        path = tmp_path / f"bad_{name}.mid"
        path.write_bytes(content)
        out[name] = str(path)
    out["missing"] = str(tmp_path / "not_there.mid")
    return out


@pytest.fixture()
def mixed_source(tmp_path, few_midi_files) -> tuple[SourceFiles, dict[str, str]]:
    bad = _bad_files(tmp_path, few_midi_files[0])
    paths = sorted(list(few_midi_files) + list(bad.values()))
    return SourceFiles(paths=tuple(paths)), bad


def _dir_digest(path: str) -> dict[str, str]:
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            content = f.read()
        if name == "manifest.json":
            manifest = json.loads(content)
            manifest.pop("seconds")
            content = json.dumps(manifest, sort_keys=True).encode()
        out[name] = hashlib.sha256(content).hexdigest()
    return out


def test_prepare_keeps_good_files_and_counts_bad_ones(tmp_path, mixed_source, few_midi_files):
    source, bad = mixed_source
    out = str(tmp_path / "ds")
    manifest = prepare(source, out, PrepareOptions(workers=2, progress=False, eval_fraction=0.3))
    assert manifest["files_seen"] == len(source.paths)
    assert manifest["files_kept"] == len(few_midi_files)
    assert sum(manifest["files_rejected"].values()) == len(bad)
    rejected_paths = {r["path"] for r in manifest["rejected"]}
    assert rejected_paths == set(bad.values())
    reasons = {r["path"]: r["reason"] for r in manifest["rejected"]}
    assert reasons[bad["empty"]] == "empty"
    assert reasons[bad["not_midi"]] == "not_midi"
    assert reasons[bad["missing"]] == "unreadable"
    assert reasons[bad["truncated"]] in ("truncated", "bad_data")
    assert all(r["detail"] for r in manifest["rejected"])
    notes = sum(len(read_midi(p).events) for p in few_midi_files)
    assert manifest["notes"] == notes
    assert manifest["tokens_per_note"] == pytest.approx(manifest["tokens"] / notes, abs=1e-3)
    assert manifest["tokens_per_note"] < 3.5
    assert read_manifest(out) == json.load(open(os.path.join(out, "manifest.json")))
    # every record decodes back to the notes of one good file
    records = []
    for split in ("train", "eval"):
        for shard in manifest["split"][split]["shards"]:
            src = ArrayRecordDataSource([os.path.join(out, shard)])
            records += [deserialize(src[i]) for i in range(len(src))]
    assert len(records) == len(few_midi_files)
    assert sorted(len(decode(r.tokens.ids, r.tokens.times)) for r in records) == sorted(
        len(normalize_events(read_midi(p).events, TimeCodec())) for p in few_midi_files
    )


def test_output_is_idempotent_and_independent_of_workers(tmp_path, mixed_source):
    source, _ = mixed_source
    digests = []
    for workers in (1, 2, 2):
        out = str(tmp_path / f"ds{len(digests)}")
        prepare(source, out, PrepareOptions(workers=workers, progress=False, records_per_shard=2))
        digests.append(_dir_digest(out))
    assert digests[0] == digests[1] == digests[2]
    assert len(digests[0]) >= 3  # several shards were written
    # preparing into the same folder again gives the same bytes
    out = str(tmp_path / "ds0")
    prepare(source, out, PrepareOptions(workers=2, progress=False, records_per_shard=2))
    assert _dir_digest(out) == digests[0]
    assert not os.path.exists(out + ".partial")


def test_split_is_by_piece_and_pure(tmp_path, few_midi_files):
    # the same piece twice (a copy) is one piece: kept once, never in both splits
    copy = tmp_path / "copy.mid"
    copy.write_bytes(open(few_midi_files[1], "rb").read())
    source = SourceFiles(paths=tuple(sorted([*few_midi_files, str(copy)])))
    out = str(tmp_path / "ds")
    manifest = prepare(source, out, PrepareOptions(workers=2, progress=False, eval_fraction=0.5))
    assert manifest["files_rejected"] == {"duplicate": 1}
    hashes = hashes_by_split(out)
    assert len(set(hashes["train"]) & set(hashes["eval"])) == 0
    assert len(hashes["train"]) + len(hashes["eval"]) == len(few_midi_files)
    assert len(hashes["eval"]) > 0 and len(hashes["train"]) > 0


def _die_on_seven(x: int) -> int:
    if x == 7:
        os._exit(3)  # a real worker death, as a segfaulting parser would cause
    return x * 10


def _failed(x: int, reason: str, detail: str) -> tuple[int, str]:
    return -x, reason


def test_resilient_map_survives_a_dying_worker():
    out = list(resilient_map(_die_on_seven, list(range(40)), _failed, workers=2, chunk_size=3))
    assert out == [(-7, "worker_crash") if x == 7 else x * 10 for x in range(40)]


def _refuse_to_unpickle():
    raise TypeError("this result cannot be read back")


class _Unreadable:
    """A result the parent cannot unpickle: pebble's pool breaks as a whole
    on it (its message thread ends), as on a worker that dies the moment it
    takes a task; the futures it holds are never resolved."""

    def __reduce__(self):
        return (_refuse_to_unpickle, ())


def _unreadable_on_five(x: int):
    return _Unreadable() if x == 5 else x * 10


def _failed_saying(x: int, reason: str, detail: str) -> tuple[int, str, str]:
    return -x, reason, detail


def test_resilient_map_replaces_a_broken_pool_and_finds_the_item():
    started = time.monotonic()
    out = list(resilient_map(_unreadable_on_five, list(range(40)), _failed_saying, workers=2, chunk_size=3))
    assert [o if isinstance(o, int) else o[:2] for o in out] == [(-5, "worker_crash") if x == 5 else x * 10
                                                                  for x in range(40)]
    assert "the worker pool broke while it ran alone" in out[5][2], out[5]
    assert time.monotonic() - started < 60


def _hang_on_five(x: int) -> int:
    if x == 5:
        time.sleep(60)  # a parser stuck in a loop
    return x * 10


def test_resilient_map_kills_a_hung_worker_and_goes_on():
    started = time.monotonic()
    out = list(resilient_map(_hang_on_five, list(range(12)), _failed, workers=2, chunk_size=4, timeout_s=1.0))
    assert out == [(-5, "timeout") if x == 5 else x * 10 for x in range(12)]
    assert time.monotonic() - started < 30  # the hung worker was killed, not waited for
