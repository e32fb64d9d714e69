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
once and writes all its tunes, reporting each tune on its own. Workers are
processes this module manages (not concurrent.futures, which cannot stop a
running task): a piece that runs past ``timeout_s`` has its worker killed and
replaced, the rest of that file's tunes go back in the queue, and a worker
that dies only costs the piece it was on.

Two known music21 failures are cured before writing MIDI:

- ~1,000 abc tunes: music21 reuses one TimeSignature object in several
  measures, and the MIDI conductor track then refuses to hold it twice
  ("already found in this Stream"). Each measure gets its own copy.
- ~50 pieces: badly formed repeats make repeat expansion raise. The repeat
  marks (bar.Repeat, RepeatBracket, Segno/Coda/Da Capo...) are dropped and the
  music is written once.

Idempotent: a piece whose .mid exists is not converted again (each .mid is
written atomically), and failures are remembered in ``failures.json`` (with
the music21 version; a new version retries them, and a timeout is retried
when a longer ``timeout_s`` is given).
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import multiprocessing.connection
import dataclasses
import pathlib
import time
from collections.abc import Sequence
from typing import Any

from yoshimidi_jax.data.sources.base import SourceFiles
from yoshimidi_jax.data.sources.music21_corpus.cures import has_repeat_marks, score_to_midi
from yoshimidi_jax.data.sources.music21_corpus.listing import (ALL, DEFAULT_COLLECTIONS, FAILURES_FILE, Piece, abc_tune_numbers,
                                                              corpus_root, list_pieces, music21_version)
from yoshimidi_jax.data.sources.music21_corpus.worker import _Unit, _worker_main

_KILL_GRACE_S = 2.0  # a stopped worker gets this long to exit before it is killed
from yoshimidi_jax.files import write_atomic

__all__ = ["ALL", "DEFAULT_COLLECTIONS", "FAILURES_FILE", "Piece", "SourceFiles", "abc_tune_numbers", "convert_corpus",
           "corpus_root", "has_repeat_marks", "list_pieces", "load_failures", "music21_version", "needs_conversion",
           "save_failures", "score_to_midi"]


# ------------------------------------------------------------ parent side


@dataclasses.dataclass
class _Worker:
    """A worker process, its pipe and what it is doing."""

    process: Any
    conn: multiprocessing.connection.Connection
    ready: bool = False
    unit: _Unit | None = None
    todo: list[Piece] = dataclasses.field(default_factory=list)
    current: str | None = None  # piece name, None while on the file itself
    deadline: float = float("inf")


def _start_worker(ctx: Any, root: str, cache_dir: str) -> _Worker:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_worker_main, args=(child, root, cache_dir), daemon=True)
    process.start()
    child.close()
    return _Worker(process=process, conn=parent)


def _stop_worker(worker: _Worker) -> None:
    """Kill a worker process and close its pipe."""
    if worker.process.is_alive():
        worker.process.terminate()
        worker.process.join(_KILL_GRACE_S)
        if worker.process.is_alive():
            worker.process.kill()
    worker.process.join()
    worker.conn.close()


def _units(pieces: Sequence[Piece]) -> list[_Unit]:
    """Group pieces by corpus file; largest files first (better balance)."""
    by_file: dict[str, list[Piece]] = collections.defaultdict(list)
    for piece in pieces:
        by_file[piece.corpus_path].append(piece)
    root = corpus_root()
    return sorted(
        (_Unit(path, tuple(ps)) for path, ps in by_file.items()),
        key=lambda u: (-(root / u.corpus_path).stat().st_size, u.corpus_path),
    )


def _run_pool(
    units: list[_Unit], cache_dir: str, workers: int, timeout_s: float, on_result: Any
) -> None:
    """Convert `units` with `workers` processes; calls on_result(name, reason,
    detail) once for each piece (reason None on success)."""
    ctx = multiprocessing.get_context("spawn")
    root = str(corpus_root())
    queue = collections.deque(units)
    pool = [_start_worker(ctx, root, cache_dir) for _ in range(min(workers, len(units)))]

    def fail_and_replace(worker: _Worker, reason: str, detail: str) -> _Worker:
        """The current piece (or, on the file stage, all its pieces) fails;
        the rest of the unit is queued again; a fresh worker takes over."""
        failed = [p for p in worker.todo if worker.current is None or p.name == worker.current]
        for piece in failed:
            on_result(piece.name, reason, detail)
        rest = tuple(p for p in worker.todo if p not in failed)
        if rest and worker.unit is not None:
            queue.appendleft(_Unit(worker.unit.corpus_path, rest))
        _stop_worker(worker)
        return _start_worker(ctx, root, cache_dir) if queue else None

    try:
        while pool:
            for w in pool:
                if w.ready and w.unit is None and queue:
                    w.unit = queue.popleft()
                    w.todo = list(w.unit.pieces)
                    w.conn.send(w.unit)
            idle = [w for w in pool if w.ready and w.unit is None]
            if idle and not queue:
                for w in idle:
                    w.conn.send(None)
                    w.process.join(_KILL_GRACE_S)
                    _stop_worker(w)
                pool = [w for w in pool if w not in idle]
                continue
            now = time.monotonic()
            wait_s = max(0.0, min(w.deadline for w in pool) - now) if pool else 0.0
            ready = multiprocessing.connection.wait([w.conn for w in pool], timeout=min(wait_s, 1.0))
            replaced: dict[int, _Worker | None] = {}
            for i, w in enumerate(pool):
                if w.conn not in ready:
                    continue
                try:
                    while w.conn.poll():
                        event = w.conn.recv()
                        _handle_event(w, event, timeout_s, on_result)
                except (EOFError, OSError):
                    w.process.join(_KILL_GRACE_S)
                    code = w.process.exitcode
                    if not w.ready:  # died before taking work: a broken environment
                        raise RuntimeError(f"music21 worker exited at start (exit code {code})")
                    replaced[i] = fail_and_replace(w, "worker_crash", f"worker exited with code {code}")
            now = time.monotonic()
            for i, w in enumerate(pool):
                if i not in replaced and w.unit is not None and now > w.deadline:
                    stage = w.current or f"{w.unit.corpus_path} (tokenizing)"
                    replaced[i] = fail_and_replace(w, "timeout", f"{stage} ran past {timeout_s} s")
            if replaced:
                pool = [replaced.get(i, w) for i, w in enumerate(pool)]
                pool = [w for w in pool if w is not None]
    finally:
        for w in pool:
            _stop_worker(w)


def _handle_event(worker: _Worker, event: tuple, timeout_s: float, on_result: Any) -> None:
    """Update a worker's state from one of its events."""
    kind = event[0]
    if kind == "ready":
        worker.ready = True
    elif kind == "start":
        worker.current = event[1]
        worker.deadline = time.monotonic() + timeout_s
    elif kind == "result":
        _, name, reason, detail = event
        worker.todo = [p for p in worker.todo if p.name != name]
        on_result(name, reason, detail)
    elif kind == "done":
        worker.unit, worker.todo, worker.current, worker.deadline = None, [], None, float("inf")


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

        try:
            _run_pool(_units(todo), cache_dir, workers, timeout_s, on_result)
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
    return SourceFiles(paths=tuple(sorted(paths)), failed=tuple(failures))
