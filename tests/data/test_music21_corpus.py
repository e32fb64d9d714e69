"""The music21 corpus source, on real corpus files (converted for real, in
real worker processes)."""

from __future__ import annotations

import collections
import io
import json
import os
import pathlib

import mido
import pytest
from music21 import bar, harmony, meter, midi, note, stream

from tests.corpus_scores import parse_score
from yoshimidi_jax.data.sources import music21_corpus as mc
from yoshimidi_jax.data.sources.music21_corpus.worker import _abc_tunes
from yoshimidi_jax.files import write_atomic
from yoshimidi_jax.midi import read_midi

CHORALES = ("bach/bwv66.6.mxl", "bach/bwv1.6.mxl", "bach/bwv244.3.mxl")
# a short piece of each other default collection (.mxl, .xml, .abc; josquin's
# voices merged into one score); tests/conftest.py's corpus_sample converts a
# seeded sample of every collection too
OTHER_COLLECTIONS = ("haydn/opus1no1/movement4.mxl", "josquin/oVenusBant.abc", "monteverdi/madrigal.4.9.mxl",
                     "mozart/k545/movement1_exposition.mxl", "ryansMammoth/TwoPennyPostmansJig.abc",
                     "trecento/PMFC_12_22-Benedicamus PMFC12.22.xml")
ABC_TUNES = "nottingham-dataset"  # one .abc file holding two tunes
SUBSET = CHORALES + OTHER_COLLECTIONS + (ABC_TUNES,)
SHARED_TS_TUNE = 1  # X:1 of the first oneills1850 file shares one TimeSignature between measures


def note_count(path: str) -> int:
    return sum(1 for track in mido.MidiFile(path).tracks for m in track
               if m.type == "note_on" and m.velocity > 0)


def mtimes(paths: tuple[str, ...]) -> dict[str, int]:
    return {p: os.stat(p).st_mtime_ns for p in paths}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, mc.SourceFiles]:
    cache = str(tmp_path_factory.mktemp("m21cache"))
    return cache, mc.convert_corpus(cache, SUBSET, workers=2, progress=False)


def test_list_pieces_splits_abc_files_into_tunes() -> None:
    pieces = mc.list_pieces((ABC_TUNES,))
    assert [p.number for p in pieces] == [80, 81]
    assert pieces[0].name == "nottingham-dataset/reelsa-c/tune_0080.mid"
    assert mc.list_pieces(("bach/bwv66.6.mxl",)) == [mc.Piece("bach/bwv66.6.mxl", None, "bach/bwv66.6.mid")]


def test_list_pieces_default_all_and_unknown() -> None:
    default = mc.list_pieces(None)
    assert {p.collection for p in default} == set(mc.DEFAULT_COLLECTIONS)
    every = mc.list_pieces(("all",))
    assert len(every) > 10_000 and len({p.name for p in every}) == len(every)
    assert not any(p.corpus_path.endswith(".rntxt") for p in every)
    # one format per piece: bwv277 exists as .krn and .mxl
    assert [p.corpus_path for p in every if p.name == "bach/bwv277.mid"] == ["bach/bwv277.mxl"]
    # josquin's X: numbers are voices of one piece: one piece per file
    assert all(p.number is None for p in every if p.collection == "josquin")
    with pytest.raises(ValueError, match="nosuchcollection"):
        mc.list_pieces(("nosuchcollection",))


def test_abc_tune_numbers() -> None:
    assert mc.abc_tune_numbers("X:1\nT:a\nK:C\nC\n\nX: 7\nK:C\nD\n") == [1, 7]
    assert mc.abc_tune_numbers("X:1\nT:a\nK:C\nC\n") == []


def test_convert_subset_writes_midi_with_notes(converted: tuple[str, mc.SourceFiles]) -> None:
    cache, files = converted
    names = sorted(str(pathlib.Path(p).relative_to(cache)) for p in files.paths)
    assert names == sorted([
        "bach/bwv1.6.mid", "bach/bwv244.3.mid", "bach/bwv66.6.mid",
        *(os.path.splitext(p)[0] + ".mid" for p in OTHER_COLLECTIONS),
        "nottingham-dataset/reelsa-c/tune_0080.mid", "nottingham-dataset/reelsa-c/tune_0081.mid",
    ])
    assert {n.split("/")[0] for n in names} >= set(mc.DEFAULT_COLLECTIONS)
    assert list(files.paths) == sorted(files.paths)
    assert files.failed == ()
    for path in files.paths:
        assert note_count(path) > 20, path
    record = json.loads((pathlib.Path(cache) / mc.FAILURES_FILE).read_text())
    assert record["music21_version"] == mc.music21_version()
    assert not list(pathlib.Path(cache).rglob("*.tmp"))


def test_rerun_converts_nothing(converted: tuple[str, mc.SourceFiles]) -> None:
    cache, files = converted
    before = mtimes(files.paths)
    again = mc.convert_corpus(cache, SUBSET, workers=2, progress=False)
    assert again == files
    assert mtimes(again.paths) == before


def test_output_does_not_depend_on_workers(converted: tuple[str, mc.SourceFiles], tmp_path: pathlib.Path) -> None:
    cache, files = converted
    one = mc.convert_corpus(str(tmp_path), SUBSET, workers=1, progress=False)
    assert len(one.paths) == len(files.paths)
    for a, b in zip(one.paths, files.paths):
        assert pathlib.Path(a).read_bytes() == pathlib.Path(b).read_bytes(), (a, b)


def test_timeout_kills_worker_and_others_still_convert(tmp_path: pathlib.Path) -> None:
    cache = str(tmp_path)
    done = mc.convert_corpus(cache, ("bach/bwv66.6.mxl",), workers=1, progress=False)
    # a real timeout: no piece converts in 1 ms, so each worker is killed and
    # replaced, and the second tune of the abc file is queued again
    files = mc.convert_corpus(cache, ("bach/bwv66.6.mxl", ABC_TUNES), workers=2, timeout_s=0.001, progress=False)
    assert files.paths == done.paths
    assert files.failures_by_reason == {"timeout": 2}
    assert {f["piece"] for f in files.failed} == {
        "nottingham-dataset/reelsa-c/tune_0080.mid", "nottingham-dataset/reelsa-c/tune_0081.mid"}
    assert all("0.001" in f["detail"] for f in files.failed)
    assert not list(tmp_path.rglob("*.tmp"))
    # remembered with the same timeout; retried (and converted) with a longer one
    assert mc.convert_corpus(cache, (ABC_TUNES,), timeout_s=0.001, progress=False).failures_by_reason == {"timeout": 2}
    retried = mc.convert_corpus(cache, (ABC_TUNES,), timeout_s=60, progress=False)
    assert retried.failed == () and len(retried.paths) == 2


def _first_oneills_tune():
    path = sorted((mc.corpus_root() / "oneills1850").glob("*.abc"))[0]
    from music21 import abcFormat

    return abcFormat.translate.abcToStreamScore(_abc_tunes(path)[SHARED_TS_TUNE])


def test_shared_time_signature_cure_on_real_tune() -> None:
    with pytest.raises(Exception, match="already found in this Stream"):
        midi.translate.streamToMidiFile(_first_oneills_tune())
    data, reason, cure = mc.score_to_midi(_first_oneills_tune())
    assert reason is None and cure == ""
    assert len(data) > 100


def offs_without_a_note(data: bytes) -> int:
    """NOTE_OFFs (or velocity-0 NOTE_ONs) that find no note of their pitch
    sounding on their track: a note written off-before-on, which every reader
    then holds until the next event of its pitch."""
    count = 0
    for track in mido.MidiFile(file=io.BytesIO(data)).tracks:
        sounding: collections.Counter = collections.Counter()
        for m in track:
            if m.type == "note_on" and m.velocity > 0:
                sounding[(m.channel, m.note)] += 1
            elif m.type in ("note_on", "note_off"):
                if sounding[(m.channel, m.note)]:
                    sounding[(m.channel, m.note)] -= 1
                else:
                    count += 1
    return count


def test_chord_symbol_cure_on_real_madrigal() -> None:
    """A Monteverdi madrigal carries its harmonic analysis as chord symbols:
    music21 writes each as a chord whose NOTE_OFFs come first, and the piece
    read back holds those pitches for minutes. Cured, the file has the
    score's notes only, and its longest note is the score's."""
    path = mc.corpus_root() / "monteverdi" / "madrigal.3.6.mxl"
    score = parse_score(path)
    symbols = list(score.recurse().getElementsByClass(harmony.ChordSymbol))
    symbol_pitches = sum(len(s.pitches) for s in symbols)
    longest_quarters = max(n.duration.quarterLength for n in parse_score(path).stripTies().recurse().notes
                           if not isinstance(n, harmony.Harmony))
    uncured = midi.translate.streamToMidiFile(score).writestr()
    assert len(symbols) == 14 and offs_without_a_note(uncured) > 0
    held = read_midi(uncured).events
    assert held.duration_s.max() > 60  # a chord symbol's pitch held for a minute and more

    data, reason, cure = mc.score_to_midi(parse_score(path))
    assert reason is None and cure == ""
    assert offs_without_a_note(data) == 0
    events = read_midi(data).events
    assert len(events.pitch) == len(held.pitch) - symbol_pitches
    assert events.duration_s.max() == pytest.approx(longest_quarters * 0.5)  # 120 bpm: the score names no tempo


def _part_with_two_start_repeats() -> stream.Score:
    """A part whose repeats music21 cannot expand (two starts, no end)."""
    part = stream.Part()
    for i in range(4):
        m = stream.Measure(number=i + 1)
        if i == 0:
            m.append(meter.TimeSignature("4/4"))
        m.append(note.Note(60 + i, type="whole"))
        if i in (1, 2):
            m.leftBarline = bar.Repeat(direction="start")
        part.append(m)
    return stream.Score([part])


def test_repeat_cure_writes_music_once(tmp_path: pathlib.Path) -> None:
    with pytest.raises(Exception, match="badly formed repeats"):
        midi.translate.streamToMidiFile(_part_with_two_start_repeats())
    score = _part_with_two_start_repeats()
    assert mc.has_repeat_marks(score)
    data, reason, cure = mc.score_to_midi(score)
    assert reason is None and cure == "repeats"
    assert not mc.has_repeat_marks(score)
    out = tmp_path / "x.mid"
    write_atomic(out, data)
    assert note_count(str(out)) == 4


def test_empty_score_is_a_failure() -> None:
    score = stream.Score([stream.Part([stream.Measure([meter.TimeSignature("3/4")])])])
    assert mc.score_to_midi(score) == (None, "empty", "no notes")


def test_needs_conversion_rules(tmp_path: pathlib.Path) -> None:
    piece = mc.Piece("bach/bwv66.6.mxl", None, "bach/bwv66.6.mid")
    assert mc.needs_conversion(piece, str(tmp_path), {}, 60.0)
    failed = {piece.name: {"reason": "parse_error", "detail": "x", "timeout_s": 60.0}}
    assert not mc.needs_conversion(piece, str(tmp_path), failed, 600.0)
    failed = {piece.name: {"reason": "timeout", "detail": "x", "timeout_s": 60.0}}
    assert not mc.needs_conversion(piece, str(tmp_path), failed, 60.0)
    assert mc.needs_conversion(piece, str(tmp_path), failed, 120.0)
    write_atomic(tmp_path / piece.name, b"MThd")
    assert not mc.needs_conversion(piece, str(tmp_path), {}, 60.0)


def test_failures_from_another_music21_version_are_forgotten(tmp_path: pathlib.Path) -> None:
    mc.save_failures(str(tmp_path), {"a.mid": {"reason": "timeout", "detail": "", "timeout_s": 1.0}})
    assert "a.mid" in mc.load_failures(str(tmp_path))
    path = tmp_path / mc.FAILURES_FILE
    path.write_text(json.dumps({"music21_version": "0.0.1", "failed": {"a.mid": {}}}))
    assert mc.load_failures(str(tmp_path)) == {}
