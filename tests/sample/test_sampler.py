import jax
import jax.numpy as jnp
import mido
import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.midi import read_midi, write_midi
from yoshimidi_jax.sample import Constraints, generate, to_events, violations
from yoshimidi_jax.sample.sampler import filter_logits, prepare_prompt
from yoshimidi_jax.tokens import EOS, PAD, TIME, Vocab, encode
from yoshimidi_jax.tokens import controls as ctl


@pytest.fixture(scope="module")
def model_params():
    return model_and_params(small_config(max_len=256), seed=1)


def test_seeded_sampling_is_reproducible(model_params):
    model, params = model_params
    kw = dict(num_events=48, temperature=0.9, top_p=0.95, top_k=50)
    a, out_a = generate(model, params, jax.random.key(3), **kw)
    b, out_b = generate(model, params, jax.random.key(3), **kw)
    c, out_c = generate(model, params, jax.random.key(4), **kw)
    np.testing.assert_array_equal(out_a.ids, out_b.ids)
    np.testing.assert_array_equal(out_a.times, out_b.times)
    assert not np.array_equal(out_a.ids, out_c.ids)


def test_constraints_never_violated(model_params, few_midi_files):
    model, params = model_params
    cons = Constraints(pitch_lo=48, pitch_hi=72)
    prompt = encode(read_midi(few_midi_files[0]).events)
    prompt = type(prompt)(prompt.ids[:40], prompt.times[:40])
    _, _, track0 = prepare_prompt(prompt, 1)
    total_on = total_off = 0
    for seed in range(10):
        p = prompt if seed % 2 else None
        seqs, out = generate(model, params, jax.random.key(seed), num_events=96, prompt=p, constraints=cons,
                             temperature=1.0 + 0.2 * (seed % 3), time_mode="sample" if seed % 3 else "expectation")
        start = track0 if p is not None else None
        bad = violations(out.ids[0], out.times[0], out.forced[0], start, cons)
        assert bad == [], (seed, bad[:5])
        ids = out.ids[0]
        total_on += int(((ids >= Vocab().note_on) & (ids < Vocab().note_off)).sum())
        total_off += int(((ids >= Vocab().note_off) & (ids < Vocab().velocity)).sum())
        # times: positive exactly at TIME, zero elsewhere
        t = out.times[0]
        assert (t[ids == TIME] > 0).all() and (t[ids != TIME] == 0).all()
    assert total_on > 20 and total_off > 5  # the rules were exercised


def _check(ids, times=None, **kw):
    ids = np.asarray(ids)
    times = np.where(ids == TIME, 0.5, 0.0) if times is None else np.asarray(times)
    return violations(ids, times, **kw)


def test_checker_catches_violations():
    v = Vocab()
    vel = v.velocity + 16
    assert _check([v.note_off + 60]) != []  # nothing sounding
    assert _check([vel, v.note_on + 60, v.note_on + 60]) != []  # struck twice in one press
    assert _check([vel, v.note_on + 60, TIME, v.note_on + 60]) != []  # still sounding
    assert _check([vel, v.note_on + 64, v.note_on + 60]) != []  # a press goes low to high
    assert _check([v.note_on + 60]) != []  # no VELOCITY in force
    assert _check([v.control + 3, TIME]) != []  # a CONTROL must be followed by its press
    assert _check([v.control + 3], constraints=Constraints(allow_controls=False)) != []
    assert _check([EOS, v.note_on + 1]) != []
    assert _check([vel, TIME]) != []  # a VELOCITY is followed by a NOTE_ON
    assert _check([vel, v.note_on + 60, TIME, v.note_off + 60, EOS], constraints=Constraints(allow_eos=False)) != []
    # a second press 20 ms after the first would be the same press
    assert _check([vel, v.note_on + 60, TIME, v.note_on + 64], [0, 0, 0.02, 0]) != []
    assert _check([vel, v.note_on + 60, TIME, v.note_on + 64], [0, 0, 0.05, 0]) == []
    assert _check([vel, v.note_on + 60, TIME, v.note_off + 60, EOS, PAD]) == []
    assert _check([v.control + 3, vel, v.note_on + 55, v.note_on + 60, TIME, v.note_off + 55]) == []
    assert _check([vel, v.note_on + 20], constraints=Constraints(30, 90)) != []
    # forced tokens are exempt
    assert _check([v.control + 3, TIME], forced=[True, False]) != []  # TIME after it still is not
    assert _check([vel, v.note_on + 60, v.control + 3], forced=[False, False, True]) == []


def test_eos_ends_piece(model_params):
    model, params = model_params
    # make EOS overwhelmingly likely: bias the token head
    params = jax.tree.map(lambda x: x, params)
    params["token_head"]["bias"] = params["token_head"]["bias"].at[EOS].set(50.0)
    seqs, out = generate(model, params, jax.random.key(0), num_events=16)
    assert out.ids[0, 0] == EOS and (out.ids[0, 1:] == PAD).all()
    assert seqs[0].ids[-1] == EOS and len(seqs[0]) == 2


def test_controls_are_inserted_before_notes(model_params):
    model, params = model_params
    v = Vocab()
    controls = ctl.control_id(np.array([1, 5, 0]), np.array([0, 0, 5]), np.array([2, 3, 1]))
    _, out = generate(model, params, jax.random.key(1), num_events=96, controls=controls)
    ids, forced = out.ids[0], out.forced[0]
    assert forced.sum() == 3
    np.testing.assert_array_equal(ids[forced], controls)
    for i in np.flatnonzero(forced):  # the note follows: its VELOCITY (if any), then its NOTE_ON
        j = i + 1 + int(v.velocity <= ids[i + 1] < v.control)
        assert v.note_on <= ids[j] < v.note_off, [v.describe(int(t)) for t in ids[i : j + 1]]
    assert violations(ids, out.times[0], forced) == []


def test_filter_logits_top_k_top_p():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    mask = jnp.ones((1, 4), bool)
    keep = lambda **kw: np.asarray(filter_logits(logits, mask, **kw) > -1e29)[0].tolist()  # noqa: E731
    assert keep(temperature=1.0, top_p=1.0, top_k=2) == [True, True, False, False]
    assert keep(temperature=1.0, top_p=0.7, top_k=0) == [True, True, False, False]
    assert keep(temperature=1.0, top_p=0.1, top_k=0) == [True, False, False, False]
    assert keep(temperature=1.0, top_p=1.0, top_k=0) == [True] * 4
    m = jnp.array([[False, True, True, True]])
    assert np.asarray(filter_logits(logits, m, 1.0, 0.1, 0) > -1e29)[0].tolist() == [False, True, False, False]


def test_sampled_files_parse_back(model_params, tmp_path):
    model, params = model_params
    seqs, _ = generate(model, params, jax.random.key(7), num_events=128, batch=3, temperature=1.0)
    for i, seq in enumerate(seqs):
        events = to_events(seq)
        path = str(tmp_path / f"s{i}.mid")
        write_midi(events, path)
        mido.MidiFile(path)
        back = read_midi(path).events
        # a random-init model rarely samples TIME: many notes share one onset, and
        # notes of one pitch at one onset merge; every pitch comes back
        assert 0 < len(back) <= len(events)
        assert set(back.pitch.tolist()) == set(events.pitch.tolist())


def test_stepper_matches_scan_sampler(model_params):
    from yoshimidi_jax.sample import SamplerConfig, make_sampler, make_stepper

    model, params = model_params
    cfg = SamplerConfig(24)
    ids, times, track = prepare_prompt(None, 2)
    controls = np.full((2, 1), -1, np.int32)
    args = (jnp.float32(1.0), jnp.float32(0.9), jnp.int32(0), controls)
    out, _ = make_sampler(model, cfg)(params, ids, times, track, jax.random.key(5), *args)
    pre, step = make_stepper(model, cfg)
    state = pre(params, ids, times, track, jax.random.key(5), 1 + 24)
    got = []
    for _ in range(24):
        state, (tok, _, _, _) = step(params, state, *args)
        got.append(np.asarray(tok))
    np.testing.assert_array_equal(np.stack(got, 1), np.asarray(out.ids))


def test_nucleus_per_family_keeps_each_familys_probability():
    """Three sounding notes share "end a note" (~0.2 each), TIME has 0.4:
    a plain nucleus at 0.5 keeps TIME and one NOTE_OFF; per family, ending a note
    keeps its 0.6 and TIME its 0.4."""
    from yoshimidi_jax.sample.sampler import filter_logits_per_family

    vocab = Vocab()
    probs = np.full(vocab.size, 0.0)
    probs[TIME] = 0.4
    offs = np.array([vocab.note_off + p for p in (60, 64, 67)])
    probs[offs] = [0.21, 0.2, 0.19]
    logits = jnp.asarray(np.log(np.maximum(probs, 1e-12)))[None]
    mask = jnp.asarray(probs > 0)[None]
    plain = jax.nn.softmax(filter_logits(logits, mask, 1.0, 0.5, 0))[0]
    assert float(plain[TIME]) > 0.6 and float(plain[offs].sum()) < 0.4  # the chord's ends were cut
    per_family = jax.nn.softmax(filter_logits_per_family(logits, mask, 1.0, 0.5, 0, vocab))[0]
    np.testing.assert_allclose(float(per_family[TIME]), 0.4, atol=1e-5)
    np.testing.assert_allclose(float(per_family[offs].sum()), 0.6, atol=1e-5)
    assert float(per_family[offs[2]]) == 0.0  # within the family, the nucleus still cuts the tail
    # top_p = 1: the model's own distribution
    full = jax.nn.softmax(filter_logits_per_family(logits, mask, 1.0, 1.0, 0, vocab))[0]
    np.testing.assert_allclose(np.asarray(full)[probs > 0], probs[probs > 0], atol=1e-5)
