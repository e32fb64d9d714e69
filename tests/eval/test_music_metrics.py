"""Music-quality figures (eval/music_metrics.py) and overlapping areas
(eval/overlap.py): known values on hand-made pieces, equality with muspy 0.5.0
on real chorales, and real pieces scored apart from known-bad ones (a drone,
shuffled pitches, uniformly random notes)."""

from __future__ import annotations

import dataclasses
import glob
import math
import os

import numpy as np
import pytest

from yoshimidi_jax.eval import music_metrics as mm
from yoshimidi_jax.eval.overlap import histogram_overlap, overlapping_area, overlapping_areas
from yoshimidi_jax.midi import NoteEvents, read_midi

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS_CACHE = os.environ.get("YOSHIMIDI_TEST_CACHE", os.path.join(REPO, "cache", "music21"))
N_REAL = 20
NAN = float("nan")


def piece(onset_s, duration_s, pitch) -> NoteEvents:
    return NoteEvents.from_arrays(onset_s, duration_s, pitch, np.full(len(pitch), 80))


def line(pitches, step_s: float = 0.5) -> NoteEvents:
    """One note after another, each step_s long."""
    n = len(pitches)
    return piece(np.arange(n) * step_s, np.full(n, step_s), pitches)


def figures(events: NoteEvents) -> dict[str, float]:
    return dataclasses.asdict(mm.piece_figures(events))


def assert_figures(got: dict[str, float], want: dict[str, float]) -> None:
    for name, value in want.items():
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-12, equal_nan=True, err_msg=name)


# ------------------------------------------------------------ real and known-bad pieces


@pytest.fixture(scope="module")
def chorales(tmp_path_factory) -> list[NoteEvents]:
    """20 Bach chorales: from the converted corpus cache when it holds them,
    else written as MIDI by music21 now (~3 s)."""
    paths = sorted(glob.glob(os.path.join(CORPUS_CACHE, "bach", "*.mid")))[:N_REAL]
    if len(paths) < N_REAL:
        from music21 import corpus

        from tests.corpus_scores import parse_score

        out = tmp_path_factory.mktemp("chorales")
        scores = sorted(str(p) for p in corpus.getComposer("bach") if str(p).endswith(".mxl"))[:N_REAL]
        paths = []
        for score in scores:
            paths.append(str(out / (os.path.basename(score)[: -len(".mxl")] + ".mid")))
            parse_score(score).write("midi", fp=paths[-1])
    return [read_midi(path).events for path in paths]


def shuffled_pitches(events: NoteEvents, rng: np.random.Generator) -> NoteEvents:
    return piece(events.onset_s, events.duration_s, rng.permutation(events.pitch))


def uniformly_random(events: NoteEvents, rng: np.random.Generator) -> NoteEvents:
    """As many notes as `events` over its span: onsets, durations (0.1..1 s) and pitches (36..96) uniform."""
    n = len(events)
    return piece(rng.uniform(0, events.end_s.max(), n), rng.uniform(0.1, 1.0, n), rng.integers(36, 97, n))


def with_pedal(events: NoteEvents) -> NoteEvents:
    """The piece over a low C held from start to end: a stuck note."""
    end = events.end_s.max()
    return piece(np.append(events.onset_s, 0.0), np.append(events.duration_s, end), np.append(events.pitch, 36))


@pytest.fixture(scope="module")
def known_bad(chorales) -> dict[str, list[NoteEvents]]:
    rng = np.random.default_rng(0)
    return {
        "shuffled": [shuffled_pitches(events, rng) for events in chorales],
        "random": [uniformly_random(events, rng) for events in chorales],
        "drone": [with_pedal(events) for events in chorales],
    }


@pytest.fixture(scope="module")
def tables(chorales, known_bad) -> dict[str, dict[str, np.ndarray]]:
    sets = {"real": chorales, **known_bad}
    return {name: mm.figures_of_pieces(pieces) for name, pieces in sets.items()}


# ------------------------------------------------------------ hand-made pieces


def test_c_major_scale():
    assert_figures(figures(line([60, 62, 64, 65, 67, 69, 71, 72])), {
        "pitch_class_entropy": -(2 / 8 * math.log2(2 / 8) + 6 / 8 * math.log2(1 / 8)),  # C twice, 6 others once
        "scale_consistency": 1.0,
        "out_of_scale_rate": 0.0,
        # 192 steps -> 3 measures; measures 0 and 1 start notes on each beat, measure 2 is empty
        "groove_consistency": 1 - 4 / (96 * 2),
        "polyphony": 1.0,
        "polyphony_rate": 0.0,
        "pitch_range": 12.0,
        "n_pitches_used": 8.0,
        "empty_beat_rate": 0.0,  # 9 beats (0 .. 192 // 24): each note touches its beat and the next
        "longest_note_s": 0.5,
        "motif_recurrence": 0.0,  # 4-interval windows (2,2,1,2) (2,1,2,2) (1,2,2,2) (2,2,2,1): all once
        "beat_grid_consistency": 1.0,
    })


def test_chromatic_scale_is_out_of_scale():
    got = figures(line(list(range(60, 72))))
    assert_figures(got, {"pitch_class_entropy": math.log2(12), "scale_consistency": 7 / 12,
                         "out_of_scale_rate": 5 / 12, "n_pitches_used": 12.0, "pitch_range": 11.0})


def test_chord_polyphony_counts_more_than_two_pitches_as_muspy():
    triad = figures(piece([0, 0, 0], [1.0, 1.0, 1.0], [60, 64, 67]))
    assert_figures(triad, {"polyphony": 3.0, "polyphony_rate": 1.0, "pitch_class_entropy": math.log2(3),
                           "scale_consistency": 1.0, "pitch_range": 7.0, "empty_beat_rate": 0.0,
                           "motif_recurrence": NAN, "beat_grid_consistency": NAN, "groove_consistency": NAN})
    dyad = figures(piece([0, 0], [1.0, 1.0], [60, 64]))
    assert_figures(dyad, {"polyphony": 2.0, "polyphony_rate": 0.0})  # muspy: steps with > 2 pitches


def test_overlapping_notes_of_one_pitch_sound_once():
    notes = mm.quantise(piece([0.0, 0.5, 3.0], [1.0, 1.0, 0.5], [60, 60, 62]))
    sounding = mm.distinct_pitches_sounding(notes)
    assert sounding.shape == (168,)
    np.testing.assert_array_equal(sounding, np.r_[np.ones(72), np.zeros(72), np.ones(24)])
    assert mm.polyphony(notes) == 1.0
    assert mm.polyphony_rate(notes) == 0.0


def test_empty_beats():
    # beats 0 and 3 sound (half a beat each), beats 1 and 2 are empty
    assert figures(piece([0.0, 1.5], [0.25, 0.25], [60, 62]))["empty_beat_rate"] == 0.5
    # a note ending on a beat line touches the next beat too (muspy): 5 beats, 4 touched
    assert figures(piece([0.0, 1.5], [0.5, 0.5], [60, 62]))["empty_beat_rate"] == pytest.approx(1 - 4 / 5)


def test_groove_consistency():
    # measures 0 and 2 start notes on each beat, measure 1 on beats 0 and 2: 2 + 2 differing steps
    onsets = np.r_[0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 4.5, 5.0, 5.5]
    assert figures(piece(onsets, np.full(10, 0.25), np.full(10, 60)))["groove_consistency"] == 1 - 4 / (96 * 2)
    same = np.r_[0.0, 0.5, 2.0, 2.5, 4.0, 4.5]  # the same rhythm in 3 measures (the last ends inside measure 2)
    assert figures(piece(same, np.full(6, 0.25), np.full(6, 60)))["groove_consistency"] == 1.0


def test_top_line_is_the_skyline():
    melody_over_bass = mm.quantise(piece([0.0, 0.0, 0.5, 1.0], [2.0, 0.5, 0.5, 0.5], [48, 72, 74, 76]))
    np.testing.assert_array_equal(mm.top_line(melody_over_bass), [72, 74, 76])
    np.testing.assert_array_equal(mm.melody_intervals(melody_over_bass), [2, 2])
    # a lower voice moving under a held top note adds nothing; after the top note ends it is the top
    under_held = mm.quantise(piece([0.0, 0.0, 0.5, 1.0], [1.0, 0.5, 0.5, 0.5], [79, 60, 62, 60]))
    np.testing.assert_array_equal(mm.top_line(under_held), [79, 60])
    assert mm.top_line(mm.quantise(piece([], [], []))).size == 0


def test_interval_histogram_clips_to_an_octave():
    counts = mm.interval_histogram(np.array([-20, -12, 0, 3, 13, 12]))
    assert counts.shape == (25,) and counts.sum() == 6
    assert counts[0] == 2 and counts[12] == 1 and counts[15] == 1 and counts[24] == 2


def test_motif_recurrence():
    twice = figures(line([60, 62, 64, 65, 67] * 2))  # intervals 2 2 1 2 -7 2 2 1 2
    assert twice["motif_recurrence"] == pytest.approx(2 / 6)  # (2,2,1,2) at windows 0 and 5 of 6
    assert mm.motif_recurrence(np.zeros(10)) == 1.0  # one repeated note: one pattern everywhere
    assert mm.motif_recurrence(np.arange(10)) == 0.0
    assert math.isnan(mm.motif_recurrence(np.array([1, 2, 3])))  # no 4-interval window


def test_longest_note():
    drone = figures(piece([0.0, 0.0, 1.0], [60.0, 0.5, 0.5], [36, 60, 62]))
    assert drone["longest_note_s"] == 60.0


def test_beat_grid_consistency():
    dotted = np.array([0.0, 0.75, 1.0, 1.75, 2.0])  # the opening's step is a sixteenth, all on it
    assert mm.beat_grid_consistency(dotted) == 1.0
    quarters = np.arange(10) * 0.5
    assert mm.beat_grid_consistency(quarters) == 1.0
    late = quarters.copy()
    late[4] += 0.1  # 0.6 s then 0.4 s: two intervals off a 0.25 s grid, 7 of 9 on
    assert mm.beat_grid_consistency(late) == pytest.approx(7 / 9)
    assert mm.opening_step_s(mm.onset_intervals(late)) == pytest.approx(0.5)
    spread_chords = np.array([0.0, 0.01, 0.02, 0.5, 0.51, 1.0])  # onsets within 25 ms are one
    assert mm.beat_grid_consistency(spread_chords) == 1.0
    np.testing.assert_allclose(mm.onset_intervals(spread_chords), [0.5, 0.5])
    eighths_after_quarters = np.r_[np.arange(16) * 0.5, 7.5 + np.arange(1, 9) * 0.25]
    assert mm.beat_grid_consistency(eighths_after_quarters) == 1.0  # the grid is the opening's step / 2
    assert math.isnan(mm.beat_grid_consistency(np.zeros(3)))  # one onset


def test_empty_piece_is_nan_where_undefined():
    got = figures(piece([], [], []))
    assert got["pitch_range"] == 0.0 and got["n_pitches_used"] == 0.0
    assert all(math.isnan(value) for name, value in got.items() if name not in ("pitch_range", "n_pitches_used"))


def test_quantise_keeps_every_note_at_least_one_step():
    notes = mm.quantise(piece([0.0, 1.0], [0.001, 0.5], [60, 62]))
    np.testing.assert_array_equal(notes.onset_step, [0, 48])
    np.testing.assert_array_equal(notes.end_step, [1, 72])
    assert notes.length == 72


def test_figures_of_pieces_is_a_table():
    table = mm.figures_of_pieces([line([60, 62]), line([60, 64, 67])])
    assert tuple(table) == mm.FIGURES
    assert all(values.shape == (2,) and values.dtype == np.float64 for values in table.values())
    np.testing.assert_array_equal(table["n_pitches_used"], [2, 3])
    assert all(values.shape == (0,) for values in mm.figures_of_pieces([]).values())
    np.testing.assert_array_equal(mm.melody_interval_histogram([line([60, 62]), line([60, 64, 67])])[[14, 15, 16]],
                                  [1, 1, 1])


# ------------------------------------------------------------ muspy parity


def to_muspy(events: NoteEvents, steps_per_beat: int = 24):
    """A one-track muspy.Music on the 120 bpm clock, quantised note by note
    (plain Python, independent of mm.quantise): onset and end rounded to steps,
    every note at least one step long."""
    import muspy

    step_s = 0.5 / steps_per_beat
    notes = []
    for onset, duration, pitch in zip(events.onset_s.tolist(), events.duration_s.tolist(), events.pitch.tolist()):
        start = round(onset / step_s)
        end = max(round((onset + duration) / step_s), start + 1)
        notes.append(muspy.Note(time=start, pitch=pitch, duration=end - start, velocity=80))
    return muspy.Music(resolution=steps_per_beat, tracks=[muspy.Track(notes=notes)])


def muspy_figures(events: NoteEvents) -> dict[str, float]:
    import muspy

    music = to_muspy(events)
    return {
        "pitch_class_entropy": muspy.pitch_class_entropy(music),
        "scale_consistency": muspy.scale_consistency(music),
        "groove_consistency": muspy.groove_consistency(music, measure_resolution=4 * 24),
        "polyphony": muspy.polyphony(music),
        "polyphony_rate": muspy.polyphony_rate(music),
        "pitch_range": muspy.pitch_range(music),
        "n_pitches_used": muspy.n_pitches_used(music),
        "empty_beat_rate": muspy.empty_beat_rate(music),
    }


def test_standard_figures_equal_muspy(chorales, known_bad):
    hand_made = [line([60, 62, 64, 65, 67, 69, 71, 72]), piece([0, 0, 0], [1.0, 1.0, 1.0], [60, 64, 67]),
                 piece([0.0, 1.5], [0.5, 0.5], [60, 62]), piece([0.0, 0.5, 3.0], [1.0, 1.0, 0.5], [60, 60, 62])]
    pieces = chorales + [events for bad in known_bad.values() for events in bad] + hand_made
    assert len(chorales) >= 20
    for i, events in enumerate(pieces):
        ours = figures(events)
        for name, theirs in muspy_figures(events).items():
            # equal, not close: the same sums in the same order (observed exact; 1e-12 for safety)
            np.testing.assert_allclose(ours[name], float(theirs), rtol=0, atol=1e-12, err_msg=f"piece {i}: {name}")


# ------------------------------------------------------------ overlapping area


def test_overlapping_area_known_values():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 1000), rng.normal(1, 1, 1000)
    assert overlapping_area(a, b) == pytest.approx(2 * 0.3085375, abs=0.04)  # 2 Phi(-1/2)
    assert overlapping_area(a, a) == pytest.approx(1.0, abs=1e-9)
    assert overlapping_area(a, a + 100) < 1e-6
    assert overlapping_area(a, b) == pytest.approx(overlapping_area(b, a), abs=1e-12)


def test_overlapping_area_of_degenerate_and_tiny_sets():
    assert overlapping_area(np.full(5, 0.3), np.full(7, 0.3)) == 1.0
    assert overlapping_area(np.full(5, 0.0), np.full(7, 1.0)) < 1e-6
    mostly_zero = np.r_[np.zeros(9), 0.03]
    assert overlapping_area(np.zeros(10), mostly_zero) > 0.8  # the constant set borrows the other's bandwidth
    assert 0.0 <= overlapping_area(np.array([0.5]), np.array([0.6])) <= 1.0
    assert overlapping_area(np.array([1.0, NAN, 2.0]), np.array([1.0, 2.0])) == pytest.approx(1.0, abs=1e-9)
    assert math.isnan(overlapping_area(np.array([NAN]), np.array([1.0])))
    assert math.isnan(overlapping_area(np.zeros(0), np.array([1.0])))


def test_histogram_overlap():
    assert histogram_overlap(np.array([1, 1, 0]), np.array([0, 2, 2])) == pytest.approx(0.5)
    assert histogram_overlap(np.array([3, 1]), np.array([6, 2])) == pytest.approx(1.0)
    assert math.isnan(histogram_overlap(np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match="shape"):
        histogram_overlap(np.ones(3), np.ones(4))


# ------------------------------------------------------------ real against known-bad


def test_real_pieces_are_scored_apart_from_known_bad(tables):
    real, shuffled, random, drone = (tables[name] for name in ("real", "shuffled", "random", "drone"))
    # harmony: real pieces keep to a scale, random notes do not
    assert real["scale_consistency"].min() > 0.85 > 0.72 > random["scale_consistency"].max()
    assert real["pitch_class_entropy"].mean() < random["pitch_class_entropy"].mean() - 0.4
    # stuck notes: the held pedal is far longer than the real pieces' 95th percentile
    assert drone["longest_note_s"].min() > 5 * np.percentile(real["longest_note_s"], 95)
    # motifs: real melodies repeat 4-interval patterns, shuffled and random ones hardly ever
    assert np.nanmean(real["motif_recurrence"]) > 0.4
    assert np.nanmean(shuffled["motif_recurrence"]) < 0.05 and np.nanmean(random["motif_recurrence"]) < 0.05
    # rhythm: real onsets keep the opening's grid, random ones fall on it by chance (~20%)
    assert real["beat_grid_consistency"].mean() > 0.95 and random["beat_grid_consistency"].max() < 0.4


def test_overlap_of_random_with_real_is_far_below_real_halves(tables):
    real, random = tables["real"], tables["random"]
    half_a = {name: values[: N_REAL // 2] for name, values in real.items()}
    half_b = {name: values[N_REAL // 2:] for name, values in real.items()}
    halves, against_random = overlapping_areas(half_a, half_b), overlapping_areas(real, random)
    for name in ("scale_consistency", "pitch_class_entropy", "n_pitches_used", "beat_grid_consistency",
                 "motif_recurrence"):
        assert halves[name] > 0.6, name
        assert against_random[name] < halves[name] - 0.4, name


def test_melody_overlap_separates_real_from_shuffled_and_random(chorales, known_bad):
    half_a = mm.melody_interval_histogram(chorales[: N_REAL // 2])
    half_b = mm.melody_interval_histogram(chorales[N_REAL // 2:])
    real = mm.melody_interval_histogram(chorales)
    assert histogram_overlap(half_a, half_b) > 0.85
    assert histogram_overlap(real, mm.melody_interval_histogram(known_bad["shuffled"])) < 0.7
    assert histogram_overlap(real, mm.melody_interval_histogram(known_bad["random"])) < 0.5
