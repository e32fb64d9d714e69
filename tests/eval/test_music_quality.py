"""The music-quality measurement (eval/music_quality.py): excerpts of the
asked length, the stuck threshold, OA of real excerpts against themselves and
against a drone, per-style comparisons, and the whole report from a tiny
untrained model on real pieces (the orchestration, not the music)."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.eval import music_quality as mq
from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.tokens import BOS, EOS, TIME, TokenSequence, Vocab, decode
from yoshimidi_jax.tokens.styles import STYLES

# a style folder for each of tests/conftest.py's FEW_WORKS (prepare reads a piece's style from its top folder)
FOLDERS = ("chorale", "chorale", "fiddle", "classical", "fiddle")


@pytest.fixture(scope="module")
def styled_prepared(tmp_path_factory, few_midi_files) -> str:
    """The five pieces of few_prepared with styles, 30% held out (the same split:
    it goes by the tokens). Held out: a chorale and two 'fiddle' pieces; train:
    a chorale and the classical piece."""
    from yoshimidi_jax.data.prepare import PrepareOptions, prepare
    from yoshimidi_jax.data.sources.base import SourceFiles

    root = tmp_path_factory.mktemp("styled_midi")
    paths = []
    for path, folder in zip(few_midi_files, FOLDERS):
        os.makedirs(root / folder, exist_ok=True)
        paths.append(str(root / folder / os.path.basename(path)))
        with open(path, "rb") as src, open(paths[-1], "wb") as dst:
            dst.write(src.read())
    out = str(tmp_path_factory.mktemp("styled_prepared") / "few")
    prepare(SourceFiles(paths=tuple(paths), root=str(root)), out,
            PrepareOptions(workers=1, progress=False, eval_fraction=0.3))
    return out


@pytest.fixture(scope="module")
def heldout_pieces(few_prepared) -> list[TokenSequence]:
    return mq.Split.read(few_prepared, "eval", Vocab()).pieces


def _excerpt_events(pieces, length: int, count: int, seed: int) -> tuple[list[NoteEvents], list[int]]:
    excerpts = mq.draw_excerpts(pieces, [length] * count, np.random.default_rng(seed))
    return [mq.events_of(e, Vocab()) for e in excerpts], [len(e) for e in excerpts]


def test_music_tokens_keep_only_the_tokens_that_make_notes():
    vocab = Vocab()
    ids = np.array([BOS, vocab.control + 7, vocab.velocity + 20, vocab.note_on + 60, TIME, vocab.note_off + 60,
                    vocab.control, EOS])
    times = np.array([0, 0, 0, 0, 0.5, 0, 0, 0], np.float32)
    seq = mq.music_tokens(ids, times, vocab)
    np.testing.assert_array_equal(seq.ids, [vocab.velocity + 20, vocab.note_on + 60, TIME, vocab.note_off + 60])
    np.testing.assert_allclose(seq.times, [0, 0, 0.5, 0])


def test_excerpts_are_windows_of_the_asked_length(heldout_pieces):
    lengths = [1, 50, 120, 333, 10**6]
    excerpts = mq.draw_excerpts(heldout_pieces, lengths, np.random.default_rng(3))
    assert [len(e) for e in excerpts[:-1]] == lengths[:-1]
    for e in excerpts[:-1]:  # each is a contiguous window of one held-out piece
        assert any(np.array_equal(p.ids[s:s + len(e)], e.ids) and np.array_equal(p.times[s:s + len(e)], e.times)
                   for p in heldout_pieces for s in range(len(p) - len(e) + 1))
    longest = max(heldout_pieces, key=len)  # none is that long: the longest piece, whole
    assert np.array_equal(excerpts[-1].ids, longest.ids)
    again = mq.draw_excerpts(heldout_pieces, lengths, np.random.default_rng(3))
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(excerpts, again))  # seeded
    other = mq.draw_excerpts(heldout_pieces, [120] * 8, np.random.default_rng(4))
    assert any(not np.array_equal(a.ids, excerpts[2].ids) for a in other)
    assert not any(Vocab().is_control(p.ids).any() or np.isin(p.ids, (BOS, EOS)).any() for p in heldout_pieces)


def test_pieces_are_written_in_the_models_vocabulary(few_prepared):
    shifts = Vocab(time_shifts=100, time_shift_s=0.01)
    plain = mq.Split.read(few_prepared, "eval", Vocab()).pieces[0]
    shifted = mq.Split.read(few_prepared, "eval", shifts).pieces[0]
    assert not (shifted.ids == TIME).any() and shifts.is_time_shift(shifted.ids).any()
    a, b = decode(plain.ids, plain.times), decode(shifted.ids, shifted.times, shifts)
    np.testing.assert_array_equal(a.pitch, b.pitch)
    # each gap moves to the 10 ms grid (by 5 ms at most)
    np.testing.assert_allclose(a.onset_s, b.onset_s, atol=0.005 * int((plain.ids == TIME).sum()) + 1e-6)


def test_events_start_at_zero():
    vocab = Vocab()
    ids = np.array([TIME, vocab.velocity + 20, vocab.note_on + 60, TIME, vocab.note_off + 60])
    events = mq.events_of(TokenSequence(ids, np.array([3.0, 0, 0, 0.5, 0], np.float32)), vocab)
    assert events.onset_s.tolist() == [0.0] and events.duration_s.tolist() == pytest.approx([0.5])


def test_stuck_share_is_five_percent_of_the_reference_by_construction(heldout_pieces):
    values = np.random.default_rng(0).lognormal(size=1000)  # continuous: no ties
    threshold = mq.stuck_threshold(values)
    assert mq.stuck_share(values, threshold) == pytest.approx(0.05)
    assert mq.stuck_share(np.array([np.nan, threshold * 2, threshold / 2]), threshold) == pytest.approx(1 / 3)
    assert np.isnan(mq.stuck_threshold(np.array([np.nan]))) and np.isnan(mq.stuck_share(np.zeros(0), 1.0))
    # real excerpts (three pieces: their note values tie, which can only lower it)
    events, _ = _excerpt_events(heldout_pieces, 150, 300, seed=1)
    longest = np.array([e.duration_s.max() for e in events])
    threshold = mq.stuck_threshold(longest)
    assert np.min(longest) <= threshold <= np.max(longest) and mq.stuck_share(longest, threshold) <= 0.05 + 1e-9
    assert mq.stuck_share(longest * 3, threshold) > 0.5  # notes held three times as long


def _drone(seconds: float) -> NoteEvents:
    """One pitch struck every 4 s over a held bass: the drone a stuck model gives."""
    onsets = np.arange(0.0, seconds, 4.0)
    return NoteEvents.from_arrays(onset_s=np.append(onsets, 0.0), duration_s=np.append(np.full(onsets.size, 4.0),
                                  onsets[-1] + 4.0), pitch=np.append(np.full(onsets.size, 67), 43),
                                  velocity=np.full(onsets.size + 1, 80))


def test_oa_of_heldout_with_itself_is_high_and_of_a_drone_is_low(heldout_pieces):
    a_events, a_len = _excerpt_events(heldout_pieces, 150, 40, seed=1)
    b_events, b_len = _excerpt_events(heldout_pieces, 150, 40, seed=2)
    c_events, c_len = _excerpt_events(heldout_pieces, 150, 40, seed=3)
    a, b, c = mq.SetFigures.of(a_events, a_len), mq.SetFigures.of(b_events, b_len), mq.SetFigures.of(c_events, c_len)
    same = mq.compare_sets(a, b, c)
    drones = [_drone(s) for s in np.linspace(12, 40, 40)]
    drone = mq.compare_sets(mq.SetFigures.of(drones), b, c)
    assert same["mean_oa"] > 0.7 and same["mean_oa_train"] > 0.7 and same["melody_oa"] > 0.8
    assert drone["mean_oa"] < 0.25 and drone["melody_oa"] < 0.3
    assert drone["mean_oa_train"] == same["mean_oa_train"]  # the ceiling does not depend on the samples
    assert drone["stuck_share"]["samples"] == 1.0 and same["stuck_share"]["heldout"] <= 0.05 + 1e-9
    assert same["tokens"] == {"samples": 150, "heldout": 150, "train": 150}
    assert set(mq.OA_FIGURES) <= set(same) and "out_of_scale_rate" not in same
    assert drone["polyphony"]["samples"] == pytest.approx(2.0) and drone["scale_consistency"]["samples"] == 1.0
    for name in mq.OA_FIGURES:
        assert set(same[name]) == {"samples", "heldout", "train", "oa", "oa_train"}


def test_monophony_on_the_metrics_clock():
    legato = NoteEvents.from_arrays(onset_s=[0.0, 0.5, 1.0], duration_s=[0.5, 0.5, 0.5], pitch=[60, 62, 64],
                                    velocity=[80] * 3)
    overlapping = NoteEvents.from_arrays(onset_s=[0.0, 0.4], duration_s=[0.5, 0.5], pitch=[60, 62],
                                         velocity=[80] * 2)
    assert mq.is_monophonic(legato) and not mq.is_monophonic(overlapping)
    assert mq.is_monophonic(NoteEvents.from_arrays([], [], [], []))
    assert mq.monophonic_share([legato, overlapping, legato, legato]) == 0.75


def test_style_with_few_heldout_pieces_is_also_compared_with_training_excerpts(heldout_pieces):
    events, lengths = _excerpt_events(heldout_pieces, 120, 12, seed=5)
    mono = [NoteEvents.from_arrays(np.arange(20) * 0.25, np.full(20, 0.25), 60 + np.arange(20) % 7,
                                   np.full(20, 80))] * 6
    held, train, samples = mq.SetFigures.of(events, lengths), mq.SetFigures.of(events[:6]), mq.SetFigures.of(mono)
    many = mq.compare_style(samples, held, train, heldout_pieces=12, train_pieces=40)
    few = mq.compare_style(samples, held, train, heldout_pieces=2, train_pieces=40)
    assert "vs_train" not in many and "note" not in many
    assert "only 2 held-out piece" in few["note"] and set(few["vs_train"]) == {"monophonic_share", "polyphony",
                                                                             "mean_oa"}
    assert few["n"] == {"heldout_pieces": 2, "train_pieces": 40, "samples": 6, "heldout": 12, "train": 6}
    assert many["monophonic_share"]["samples"] == 1.0 and many["polyphony"]["samples"] == 1.0
    assert many["monophonic_share"]["heldout"] < 0.5 and many["polyphony"]["heldout"] > 2  # chorales: four voices
    assert many["mean_oa_train"] > many["mean_oa"]
    assert np.isnan(mq.compare_style(samples, mq.SetFigures.of([]), train, 0, 40)["mean_oa"])


def test_rounded_is_json():
    out = mq.rounded({"a": np.float64(np.nan), "b": [np.float32(0.123456), np.int64(3)], "c": np.bool_(True)})
    assert out == {"a": None, "b": [0.1235, 3], "c": True}
    json.dumps(out, allow_nan=False)


def test_each_style_sampled_at_its_weight_and_put_back_in_its_place():
    """sample_styles: the styles of one weight share a sampler call (the lowest
    weight's with the key itself), and each style gets its own rows back."""
    model, params = model_and_params(small_config(max_len=64), seed=1)
    chorale, classical, fiddle = (STYLES.index(name) for name in ("chorale", "classical", "fiddle"))
    key, args = jax.random.key(4), (2, 16, 0.8, 0.9, None)
    got = mq.sample_styles(model, params, key, {chorale: 2.0, classical: 1.0, fiddle: 2.0}, *args)
    alone = mq.sample_rows(model, params, key, np.array([classical] * 2), 16, 0.8, 0.9, None, 0, 0.0, 1.0)
    paired = mq.sample_rows(model, params, jax.random.fold_in(key, 1), np.array([chorale, chorale, fiddle, fiddle]),
                            16, 0.8, 0.9, None, 0, 0.0, 2.0)
    ids = lambda rows: [r.ids.tolist() for r in rows]  # noqa: E731
    assert ids(got[classical]) == ids(alone)
    assert ids(got[chorale]) == ids(paired[:2]) and ids(got[fiddle]) == ids(paired[2:])
    assert ids(got[chorale]) != ids(got[fiddle])
    # one weight for every style: the one call of the lowest weight, with the key itself
    same = mq.sample_styles(model, params, jax.random.fold_in(key, 1), {chorale: 2.0, fiddle: 2.0}, *args)
    assert ids(same[chorale]) == ids(paired[:2]) and ids(same[fiddle]) == ids(paired[2:])
    with pytest.raises(ValueError, match="style_guidance"):
        mq.measure_music_quality(model, params, "/nonexistent", style_guidance=-1.0)


def test_the_report_from_a_tiny_model(styled_prepared):
    model, params = model_and_params(small_config(max_len=64), seed=1)
    result = mq.measure_music_quality(model, params, styled_prepared, samples=2, events=40, heldout_excerpts=4,
                                      train_excerpts=2, walks=2, seed=0)
    json.dumps(result, allow_nan=False)  # one JSON line, no NaN
    assert result["pieces"] == {"heldout": 3, "train": 2}
    for block in (result, result["player"]):
        assert block["n"] == {"samples": 2, "heldout": 4, "train": 2}
        tokens = block["tokens"]
        assert 0 < tokens["samples"] == pytest.approx(tokens["heldout"]) == pytest.approx(tokens["train"])
        for key in ("mean_oa", "mean_oa_train", "melody_oa_train", "stuck_threshold_s"):
            assert block[key] is not None and block[key] >= 0
        assert "melody_oa" in block and set(block["stuck_share"]) == {"samples", "heldout", "train"}
        for key in ("scale_consistency", "motif_recurrence", "polyphony", "beat_grid_consistency"):
            assert {"samples", "heldout", "train", "oa", "oa_train"} == set(block[key])
        assert block["stuck_share"]["heldout"] <= 0.25  # 4 excerpts: the top one at most
    assert result["tokens"]["samples"] <= 40  # unconditioned rows: 40 tokens, less the model's own CONTROLs
    assert result["player"]["tokens"]["samples"] >= 40  # a walk plays until it holds 40
    styles = result["per_style"]
    assert set(styles) == {"chorale", "fiddle", "classical"} and set(STYLES) >= set(styles)
    # each style sampled at its own guidance weight (sample/guidance.py WEIGHTS): classical unguided
    assert result["style_guidance"] == {"chorale": 2.0, "fiddle": 2.0, "classical": 1.0}
    held_pieces = {"chorale": 1, "fiddle": 2, "classical": 0}
    train_pieces = {"chorale": 1, "fiddle": 0, "classical": 1}
    for name, entry in styles.items():
        assert entry["n"]["heldout_pieces"] == held_pieces[name] and entry["n"]["train_pieces"] == train_pieces[name]
        assert entry["n"]["samples"] == 2 and "vs_train" in entry and "held-out piece" in entry["note"]
        assert ("no held-out piece" in entry["note"]) == (held_pieces[name] == 0)
        assert set(entry["monophonic_share"]) == set(entry["polyphony"]) == {"samples", "heldout"}
        assert 0 <= entry["monophonic_share"]["samples"] <= 1
    assert styles["chorale"]["polyphony"]["heldout"] > 2  # a chorale excerpt: four voices
    assert styles["classical"]["mean_oa"] is None and styles["classical"]["vs_train"]["mean_oa"] is not None
    assert styles["fiddle"]["mean_oa"] is not None and styles["fiddle"]["vs_train"]["mean_oa"] is None
    with pytest.raises(ValueError, match="styles"):
        mq.measure_music_quality(model, params, styled_prepared, styles="some")
