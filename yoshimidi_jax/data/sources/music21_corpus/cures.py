"""music21 scores -> MIDI bytes, with the known music21 faults cured (a
TimeSignature shared by several measures; badly formed repeats; grace notes
and chord symbols written as notes that never end)."""

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


def drop_grace_notes(score: Any) -> int:
    """Removes grace notes (in place); returns how many.

    A grace note has no duration in music21, and its MIDI writer puts its
    NOTE_OFF before its NOTE_ON at the same tick: every reader then holds the
    note until the next event of its pitch or the end of the track. In the
    fiddle tunes (ryansMammoth), whose ornaments are grace notes, 16% of
    400-token excerpts held a note longer than 4 s (up to 36 s) that the
    score never asked for: drones the model learned to play."""
    return _remove_all([n for n in score.recurse().notes if n.duration.isGrace])


def drop_chord_symbols(score: Any) -> int:
    """Removes chord symbols and other harmony annotations (in place);
    returns how many.

    A chord symbol (music21's harmony.ChordSymbol: "A", "D7" above the staff,
    the harmonic analysis of the Monteverdi madrigals, a Josquin abc file's
    chord letters) is an annotation with no duration, yet music21's MIDI
    writer writes it as a chord whose NOTE_OFFs come before its NOTE_ONs at
    the same tick, so every reader holds those pitches until the next event
    of each pitch or the end of the track. 44 of the 49 Monteverdi madrigals
    held such chords (a 57 s note in one, 275 s in Josquin's Deploration):
    renaissance pieces sounded with low drones the score never asks for."""
    from music21 import harmony

    return _remove_all(list(score.recurse().getElementsByClass(harmony.Harmony)))


def _remove_all(elements: list) -> int:
    """Removes each element from the stream that holds it; returns how many."""
    for element in elements:
        element.activeSite.remove(element)
    return len(elements)


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


def error_detail(exc: BaseException) -> str:
    """An exception as a reject's detail: "Type: message", at most 500 characters."""
    return f"{type(exc).__name__}: {exc}"[:500]


def score_to_midi(score: Any) -> tuple[bytes | None, str | None, str]:
    """MIDI bytes of a score, applying the cures; (bytes, None, cure) on
    success ("" or "repeats" for cure), (None, reason, detail) on failure."""
    if not score.recurse().notes.first():
        return None, "empty", "no notes"
    give_measures_own_time_signatures(score)
    drop_grace_notes(score)
    drop_chord_symbols(score)
    if not score.recurse().notes.first():
        return None, "empty", "no notes but grace notes and chord symbols"
    try:
        return _midi_bytes(score), None, ""
    except Exception as first:  # noqa: BLE001 - music21 raises many kinds
        repeat_error = is_repeat_error(first)
        if not has_repeat_marks(score):
            return None, "repeat_expansion" if repeat_error else "midi_write_error", error_detail(first)
        try:
            drop_repeat_marks(score)
            return _midi_bytes(score), None, "repeats"
        except Exception as second:  # noqa: BLE001
            reason = "repeat_expansion" if repeat_error else "midi_write_error"
            return None, reason, f"{error_detail(first)} | without repeats: {error_detail(second)}"
