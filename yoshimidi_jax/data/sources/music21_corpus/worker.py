"""What a worker process does: convert the pieces of one corpus file."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

from yoshimidi_jax.data.sources.music21_corpus.cures import error_detail, score_to_midi
from yoshimidi_jax.data.sources.music21_corpus.listing import ABC_VOICES_AS_PARTS, Piece
from yoshimidi_jax.files import write_atomic


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


def import_music21() -> None:
    """Worker initializer: music21 is imported before a task starts, so its
    import time does not count against a task's timeout."""
    import music21  # noqa: F401


def convert_pieces(pieces: Sequence[Piece], root: str, cache_dir: str) -> list[tuple[str, str | None, str]]:
    """Convert pieces that all come from one corpus file (a many-tune .abc
    file is tokenized once), writing each .mid atomically; returns one
    (name, reason | None, detail) per piece."""
    from music21 import abcFormat

    path = pathlib.Path(root) / pieces[0].corpus_path
    tunes: dict[int | None, Any] = {}
    if any(p.number is not None for p in pieces):
        try:
            tunes = _abc_tunes(path)
        except Exception as exc:  # noqa: BLE001
            return [(piece.name, "parse_error", error_detail(exc)) for piece in pieces]
    results = []
    for piece in pieces:
        try:
            if piece.number is None:
                score = _parse_score(path, merge_voices=piece.collection in ABC_VOICES_AS_PARTS)
            elif piece.number in tunes:
                score = abcFormat.translate.abcToStreamScore(tunes.pop(piece.number))
            else:
                raise KeyError(f"tune X:{piece.number} not found")
        except Exception as exc:  # noqa: BLE001
            results.append((piece.name, "parse_error", error_detail(exc)))
            continue
        try:
            data, reason, detail = score_to_midi(score)
        except Exception as exc:  # noqa: BLE001
            data, reason, detail = None, "midi_write_error", error_detail(exc)
        if data is not None:
            write_atomic(pathlib.Path(cache_dir) / piece.name, data)
        results.append((piece.name, reason, detail))
    return results
