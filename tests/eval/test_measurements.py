"""The measurements behind the adherence and sample-statistics benchmarks and
the ablation notebooks (eval/adherence.py, eval/sample_stats.py), on real
held-out pieces of the music21 corpus and a real (untrained) model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.midi import NoteEvents, read_midi
from yoshimidi_jax.eval.adherence import heldout_controls, measure_adherence, score
from yoshimidi_jax.eval.sample_stats import FIGURES, gaps, on_grid, sample_statistics, window_stats
from yoshimidi_jax.tokens import TIME, Vocab, decode, encode
from yoshimidi_jax.tokens.controls import Control
from yoshimidi_jax.tokens.presses import ANY_CHORD, ANY_INTERVAL


@pytest.fixture(scope="module")
def model_params():
    return model_and_params(small_config(max_len=128), seed=5)


def test_gaps_sum_runs_of_time_and_on_grid_is_within_two_percent():
    vocab = Vocab(time_shifts=100, time_shift_s=0.01)
    ids = np.array([TIME, vocab.note_on + 60, vocab.time_shift + 9, vocab.time_shift + 4, vocab.note_off + 60])
    times = np.array([0.5, 0.0, 0.10, 0.05, 0.0])
    np.testing.assert_allclose(gaps(ids, times, vocab), [0.5, 0.15])  # the two shifts are one gap
    grid = np.array([0.25, 0.5])
    assert on_grid(np.array([0.25, 0.5, 0.504, 0.26, 1.0]), grid) == pytest.approx(3 / 5)
    assert on_grid(np.zeros(0), grid) == 0.0


def test_window_stats_of_a_real_piece(few_midi_files):
    seq = encode(read_midi(few_midi_files[0]).events)
    events = decode(seq.ids, seq.times)  # the notes the tokens hold (unisons merged)
    figures, gap_values = window_stats([(seq.ids, seq.times)], Vocab())
    span = float(events.end_s.max() - events.onset_s.min())
    assert figures["notes_per_s"] == pytest.approx(len(events) / span, rel=1e-3)
    assert figures["pitch_range"] == int(events.pitch.max() - events.pitch.min())
    assert 1.0 <= figures["polyphony"] <= 10 and figures["onsets_per_press"] >= 1.0
    assert 0 < figures["pitch_class_entropy"] <= np.log2(12) + 1e-9
    assert gap_values.size > 0 and (gap_values > 0).all()


def test_an_interval_with_no_room_for_its_chord_is_infeasible_not_a_miss():
    """Up 3-5 from 105 on a piano (top key 108) leaves one key, 108: a chord of
    three asked with it has no room for its other two notes above, so nothing
    could obey it; from 100 the same press fits (103 104 105) and is scored."""
    def two_presses(ref, chord):
        return NoteEvents.from_arrays(onset_s=[0.0] + [1.0] * len(chord), duration_s=[0.5] * (1 + len(chord)),
                                      pitch=[ref] + chord, velocity=[80] * (1 + len(chord)))
    asked = [Control(ANY_INTERVAL, 0, 1), Control(2, 2, 1)]  # then: up-skip, three notes, medium
    missed = score(two_presses(105, [70, 99, 101]), asked, pitch_range=(21, 108))
    assert missed.infeasible == 1 and missed.given["interval"] == 0
    assert missed.hits["chord"] == missed.given["chord"] == 2  # the chord is still scored
    fits = score(two_presses(100, [70, 99, 101]), asked, pitch_range=(21, 108))
    assert fits.infeasible == 0 and fits.given["interval"] == 1 and fits.hits["interval"] == 0
    kept = score(two_presses(100, [103, 104, 105]), asked, pitch_range=(21, 108))
    assert kept.hits["all"] == kept.given["all"] == 2
    edge = score(two_presses(103, [106, 107, 108]), asked, pitch_range=(21, 108))  # just fits
    assert edge.infeasible == 0 and edge.hits["all"] == edge.given["all"] == 2
    alone = score(two_presses(105, [108]), [asked[0], Control(2, ANY_CHORD, 1)], pitch_range=(21, 108))
    assert alone.infeasible == 0 and alone.hits["interval"] == 1  # one note fits at 108


def test_heldout_controls_come_from_the_eval_split(few_prepared):
    rows = heldout_controls(few_prepared, rows=2, per_row=8, seed=0)
    assert 1 <= len(rows) <= 2 and all(len(r) == 8 for r in rows)
    assert heldout_controls(few_prepared, rows=2, per_row=8, seed=0) == rows  # the seed fixes them


def test_strict_adherence_is_one_and_chance_is_measured(model_params, few_prepared):
    model, params = model_params
    result = measure_adherence(model, params, few_prepared, presses=30, batch=2, num_events=60, seed=1,
                               conditions=("heldout", "chance", "strict"))
    assert result["adherence_strict"]["all"] == 1.0 and result["presses_strict"] > 0
    # an untrained model follows free controls only by the control bias and by chance
    for name in ("heldout", "chance"):
        rates = result[f"adherence_{name}"]
        assert result[f"presses_{name}"] > 0 and all(0.0 <= v <= 1.0 for v in rates.values())
    assert result["adherence_chance"]["all"] < 0.5
    assert 0.0 < result["agreement"] < 1.0 and result["agreement_steps"] > 0
    with pytest.raises(ValueError, match="unknown conditions"):
        measure_adherence(model, params, few_prepared, conditions=("loud",))


def test_zero_wait_keys_keep_the_chord_count(model_params, few_prepared):
    """The player-like scripts played key by key through the instrument's
    API (each press a press that grows, each further key a join): every
    press ends with as many notes as keys, as when the chord is sent whole;
    strict masks keep the interval (from the first key) and the velocity."""
    model, params = model_params
    result = measure_adherence(model, params, few_prepared, presses=40, batch=2, seed=2,
                               conditions=("player_press", "player_zero_wait", "player_zero_wait_strict"))
    assert result["presses_player_zero_wait"] >= 36 and result["presses_player_press"] >= 36
    assert result["adherence_player_zero_wait"]["chord"] >= 0.95, result
    assert result["adherence_player_press"]["chord"] >= 0.95, result
    strict = result["adherence_player_zero_wait_strict"]
    assert strict["interval"] == 1.0 and strict["velocity"] == 1.0 and strict["chord"] >= 0.95, result
    assert "adherence_player" not in result and "agreement" not in result  # only the conditions asked


def test_sample_statistics_set_samples_beside_heldout(model_params, few_prepared):
    model, params = model_params
    result = sample_statistics(model, params, few_prepared, rows=2, seed=0)
    assert set(result["ratio"]) == set(FIGURES) == set(result["heldout"])
    held = result["heldout"]
    assert held["time_on_grid"] > 0.5  # real pieces keep to their most common gaps
    assert held["notes_per_s"] > 0 and result["windows"]["samples"] == 2
    for k, r in result["ratio"].items():
        if r is not None:
            assert r == pytest.approx(result["samples"][k] / held[k], rel=1e-2, abs=1e-3)
