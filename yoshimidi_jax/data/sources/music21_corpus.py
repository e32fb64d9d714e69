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
import copy
import dataclasses
import json
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import re
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from yoshimidi_jax.data.sources.base import SourceFiles

# Chosen by measuring each collection alone (workers=2, timeout_s=60, 2 cores):
# bach 410 pieces 35 s, haydn 9/8 s, mozart 16/20 s, monteverdi 49/18 s,
# josquin 8/3 s, trecento 102/38 s, ryansMammoth 1059/49 s: 1,653 pieces,
# ~170 s, no failures. Left out for time: oneills1850 (2,009 tunes, 137 s),
# beethoven (22 quartet movements, > 6 min, 12 done after 4 min), essenFolksong
# (8,514 tunes, est. ~4 min from one file), palestrina (1,318), airdsAirs (1,180).
DEFAULT_COLLECTIONS: tuple[str, ...] = (
    "bach",
    "haydn",
    "mozart",
    "monteverdi",
    "josquin",
    "trecento",
    "ryansMammoth",
)

ALL = "all"
FAILURES_FILE = "failures.json"
# Roman-numeral analyses (monteverdi, bach): they restate the scores they
# analyse as block chords, so they would duplicate those pieces.
EXCLUDED_EXTENSIONS: tuple[str, ...] = (".rntxt",)
# When one piece is stored in several formats, keep the first of these.
FORMAT_PREFERENCE: tuple[str, ...] = (".mxl", ".musicxml", ".xml", ".krn", ".abc")
# Collections whose .abc X: numbers are the voices of one piece, not tunes.
ABC_VOICES_AS_PARTS: tuple[str, ...] = ("josquin",)
_X_LINE = re.compile(r"^X:\s*(\d+)", flags=re.MULTILINE)
_KILL_GRACE_S = 2.0


@dataclasses.dataclass(frozen=True)
class Piece:
    """One piece of the corpus and the .mid it becomes.

    corpus_path: path relative to the music21 corpus root ("bach/bwv66.6.mxl").
    number: the abc X: reference number of a tune in a many-tune file, else None.
    name: the relative output path in the cache folder ("bach/bwv66.6.mid").
    """

    corpus_path: str
    number: int | None
    name: str

    @property
    def collection(self) -> str:
        return self.corpus_path.split("/", 1)[0]


@dataclasses.dataclass(frozen=True)
class _Unit:
    """One corpus file and the pieces still to be made from it."""

    corpus_path: str
    pieces: tuple[Piece, ...]


# ----------------------------------------------------------------- listing


def corpus_root() -> pathlib.Path:
    """The folder of the corpus that ships inside music21."""
    from music21 import corpus

    return pathlib.Path(corpus.__file__).parent


def music21_version() -> str:
    import music21

    return str(music21.__version__)


def _core_relpaths() -> list[str]:
    """Corpus files relative to the corpus root, one format per piece."""
    from music21 import corpus

    root = corpus_root()
    rel = sorted(
        pathlib.Path(p).relative_to(root).as_posix()
        for p in corpus.getCorePaths()
        if pathlib.Path(p).suffix not in EXCLUDED_EXTENSIONS
    )
    return _one_format_per_piece(rel)


def _one_format_per_piece(relpaths: Sequence[str]) -> list[str]:
    """Keep one file per (path without extension), by FORMAT_PREFERENCE."""

    def rank(p: str) -> int:
        ext = os.path.splitext(p)[1]
        return FORMAT_PREFERENCE.index(ext) if ext in FORMAT_PREFERENCE else len(FORMAT_PREFERENCE)

    best: dict[str, str] = {}
    for p in relpaths:
        stem = os.path.splitext(p)[0]
        if stem not in best or rank(p) < rank(best[stem]):
            best[stem] = p
    return sorted(best.values())


def available_collections() -> list[str]:
    """Names of the corpus collections (top-level folders)."""
    return sorted({p.split("/", 1)[0] for p in _core_relpaths()})


def abc_tune_numbers(text: str) -> list[int]:
    """Distinct X: reference numbers of an abc text, in file order; like
    music21, a file with at most one is a single piece (returns [])."""
    numbers = list(dict.fromkeys(int(n) for n in _X_LINE.findall(text)))
    return numbers if len(numbers) > 1 else []


def pieces_of_file(corpus_path: str, text: str | None = None) -> list[Piece]:
    """The pieces a corpus file holds; `text` is read only for .abc files."""
    stem, ext = os.path.splitext(corpus_path)
    collection = corpus_path.split("/", 1)[0]
    if ext == ".abc" and collection not in ABC_VOICES_AS_PARTS:
        if text is None:
            text = (corpus_root() / corpus_path).read_text(encoding="utf-8", errors="replace")
        numbers = abc_tune_numbers(text)
        if numbers:
            return [Piece(corpus_path, n, f"{stem}/tune_{n:04d}.mid") for n in numbers]
    return [Piece(corpus_path, None, f"{stem}.mid")]


def _selects(spec: str, corpus_path: str) -> bool:
    """Whether a selection item names this corpus file: a collection name
    ("bach"), a folder or file relative to the corpus root ("bach/bwv66.6.mxl",
    "beethoven/opus18no1")."""
    return corpus_path == spec or corpus_path.startswith(spec.rstrip("/") + "/")


def list_pieces(collections: Sequence[str] | None) -> list[Piece]:
    """Pieces of the given collections, sorted by name.

    None: DEFAULT_COLLECTIONS; ("all",): every collection. An item may also be
    a file or folder relative to the corpus root ("bach/bwv66.6.mxl")."""
    relpaths = _core_relpaths()
    specs = list(DEFAULT_COLLECTIONS if collections is None else collections)
    if ALL in specs:
        specs = sorted({p.split("/", 1)[0] for p in relpaths})
    unknown = [s for s in specs if not any(_selects(s, p) for p in relpaths)]
    if unknown:
        known = sorted({p.split("/", 1)[0] for p in relpaths})
        raise ValueError(f"unknown music21 collections or paths {unknown}; collections: {known} or 'all'")
    pieces = [
        piece
        for p in relpaths
        if any(_selects(s, p) for s in specs)
        for piece in pieces_of_file(p)
    ]
    return sorted(pieces, key=lambda piece: piece.name)


# ------------------------------------------------------------ music21 cures


def give_measures_own_time_signatures(score: Any) -> None:
    """Replace every TimeSignature in every measure by its own copy (in place).

    music21's abc reader reuses one TimeSignature object in several measures
    (alternating meters); the MIDI conductor track then raises "the object ...
    is already found in this Stream". Copies make the MIDI the same as if the
    objects had never been shared."""
    from music21 import meter, stream

    seen: set[int] = set()
    for measure in score.recurse().getElementsByClass(stream.Measure):
        for ts in list(measure.getElementsByClass(meter.TimeSignature)):
            if id(ts) in seen:
                measure.replace(ts, copy.deepcopy(ts))
            seen.add(id(ts))


def has_repeat_marks(score: Any) -> bool:
    """Whether the score holds repeat barlines, repeat brackets or repeat
    expressions (segno, coda, da capo, ...)."""
    from music21 import bar, repeat, spanner

    if score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket)).first():
        return True
    return any(isinstance(b, bar.Repeat) for b in score.recurse().getElementsByClass(bar.Barline))


def drop_repeat_marks(score: Any) -> None:
    """Remove repeat barlines, repeat brackets and repeat expressions (in
    place), so the music is written once, as notated."""
    from music21 import bar, repeat, spanner, stream

    for measure in score.recurse().getElementsByClass(stream.Measure):
        if isinstance(measure.leftBarline, bar.Repeat):
            measure.leftBarline = None
        if isinstance(measure.rightBarline, bar.Repeat):
            measure.rightBarline = bar.Barline("final" if measure.rightBarline.type == "final" else "regular")
    marks = list(score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket)))
    for mark in marks:
        for site in list(mark.sites.get()):
            if site is not None and mark in site:
                site.remove(mark)
    score.coreElementsChanged()


def is_repeat_error(exc: BaseException) -> bool:
    """Whether an exception came out of music21's repeat expansion."""
    from music21 import repeat

    if isinstance(exc, repeat.ExpanderException):
        return True
    return any(frame.filename.endswith(os.path.join("music21", "repeat.py"))
               for frame in traceback.extract_tb(exc.__traceback__))


def _midi_bytes(score: Any) -> bytes:
    from music21 import midi

    return midi.translate.streamToMidiFile(score).writestr()


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def score_to_midi(score: Any) -> tuple[bytes | None, str | None, str]:
    """MIDI bytes of a score, applying the cures; (bytes, None, cure) on
    success ("" or "repeats" for cure), (None, reason, detail) on failure."""
    if not score.recurse().notes.first():
        return None, "empty", "no notes"
    give_measures_own_time_signatures(score)
    try:
        return _midi_bytes(score), None, ""
    except Exception as first:  # noqa: BLE001 - music21 raises many kinds
        repeat_error = is_repeat_error(first)
        if not has_repeat_marks(score):
            return None, "repeat_expansion" if repeat_error else "midi_write_error", _short(first)
        try:
            drop_repeat_marks(score)
            return _midi_bytes(score), None, "repeats"
        except Exception as second:  # noqa: BLE001
            reason = "repeat_expansion" if repeat_error else "midi_write_error"
            return None, reason, f"{_short(first)} | without repeats: {_short(second)}"


# ------------------------------------------------------------ worker side


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Write `data` to `path` so that a killed process never leaves a partial
    file under that name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _parse_score(path: pathlib.Path, merge_voices: bool) -> Any:
    """A music21 Score from a corpus file (an Opus of one score is unwrapped;
    with merge_voices an Opus becomes one score of parts)."""
    from music21 import converter, stream

    parsed = converter.parseFile(str(path), forceSource=True, storePickle=False)
    if isinstance(parsed, stream.Opus):
        return parsed.mergeScores() if merge_voices else parsed.scores.first()
    return parsed


def _abc_tunes(path: pathlib.Path) -> dict[int | None, Any]:
    """The tunes of an abc file, tokenized once: X: number -> ABCHandler."""
    from music21 import abcFormat

    af = abcFormat.ABCFile()
    af.open(str(path))
    try:
        handler = af.read()
    finally:
        af.close()
    return handler.splitByReferenceNumber() if handler.definesReferenceNumbers() else {None: handler}


def _convert_unit(unit: _Unit, root: pathlib.Path, cache_dir: pathlib.Path) -> Iterator[tuple]:
    """Convert the pieces of one corpus file, yielding events for the parent:
    ("start", name | None) before each stage (None: the file itself), then
    ("result", name, reason | None, detail) for each piece."""
    from music21 import abcFormat

    path = root / unit.corpus_path
    tunes: dict[int | None, Any] = {}
    if any(p.number is not None for p in unit.pieces):
        yield ("start", None)
        try:
            tunes = _abc_tunes(path)
        except Exception as exc:  # noqa: BLE001
            for piece in unit.pieces:
                yield ("result", piece.name, "parse_error", _short(exc))
            return
    for piece in unit.pieces:
        yield ("start", piece.name)
        try:
            if piece.number is None:
                score = _parse_score(path, merge_voices=piece.collection in ABC_VOICES_AS_PARTS)
            elif piece.number in tunes:
                score = abcFormat.translate.abcToStreamScore(tunes.pop(piece.number))
            else:
                raise KeyError(f"tune X:{piece.number} not found")
        except Exception as exc:  # noqa: BLE001
            yield ("result", piece.name, "parse_error", _short(exc))
            continue
        try:
            data, reason, detail = score_to_midi(score)
        except Exception as exc:  # noqa: BLE001
            data, reason, detail = None, "midi_write_error", _short(exc)
        if data is not None:
            write_atomic(cache_dir / piece.name, data)
        yield ("result", piece.name, reason, detail)


def _worker_main(conn: multiprocessing.connection.Connection, root: str, cache_dir: str) -> None:
    """Worker loop: receive units, send events, until it receives None."""
    import music21  # noqa: F401 - import before taking work, so it is not timed

    conn.send(("ready",))
    while True:
        unit = conn.recv()
        if unit is None:
            return
        for event in _convert_unit(unit, pathlib.Path(root), pathlib.Path(cache_dir)):
            conn.send(event)
        conn.send(("done",))


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
