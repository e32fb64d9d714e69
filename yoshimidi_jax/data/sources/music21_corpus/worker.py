"""The worker process: converts the pieces of one corpus file at a time and
reports each on a pipe."""

from __future__ import annotations

import dataclasses
import multiprocessing.connection
import pathlib
from collections.abc import Iterator
from typing import Any

from yoshimidi_jax.data.sources.music21_corpus.cures import _short, score_to_midi
from yoshimidi_jax.data.sources.music21_corpus.listing import ABC_VOICES_AS_PARTS, Piece
from yoshimidi_jax.files import write_atomic


@dataclasses.dataclass(frozen=True)
class _Unit:
    """One corpus file and the pieces still to be made from it."""

    corpus_path: str
    pieces: tuple[Piece, ...]

# ------------------------------------------------------------ worker side


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
