"""music21 scores -> MIDI bytes, with the two known music21 failures cured
(a TimeSignature shared by several measures; badly formed repeats)."""

from __future__ import annotations

import copy
import os
import traceback
from typing import Any

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
