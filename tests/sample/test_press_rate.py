"""Sampling keeps the model's probabilities: with fixed (synthetic) logits the share
of press starts equals the model's probability of starting one, with or without
given controls; the first note always has a VELOCITY before it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.sample import Constraints, generate
from yoshimidi_jax.tokens import TIME, Vocab, decode
from yoshimidi_jax.tokens import controls as ctl
from yoshimidi_jax.tokens.stream import velocity_in_force

VOCAB = Vocab()
P_CONTROL, P_NOTE_ON, P_TIME = 0.3, 0.1, 0.6


@pytest.fixture(scope="module")
def model_params():
    return model_and_params(small_config(max_len=256), seed=2)


@pytest.fixture(scope="module")
def fixed_logits(model_params):
    """Token logits that ignore the input: CONTROL 0.3, NOTE_ON 0.1 (over all
    pitches), TIME 0.6, the rest ~0; the time head always gives ~0.3 s (far
    beyond the press window, so a new press may start after every TIME)."""
    model, params = model_params
    params = jax.tree.map(lambda x: x, params)
    bias = np.full(VOCAB.size, -60.0)  # ~0 but finite: a forced VELOCITY/NOTE_ON is still uniform
    bias[VOCAB.control:VOCAB.size] = np.log(P_CONTROL / (VOCAB.size - VOCAB.control))
    bias[VOCAB.note_on:VOCAB.note_off] = np.log(P_NOTE_ON / 128)
    bias[TIME] = np.log(P_TIME)
    head = dict(params["token_head"])
    head["kernel"] = jnp.zeros_like(head["kernel"])
    head["bias"] = jnp.asarray(bias, jnp.float32)
    params["token_head"] = head
    supports = model.codec.supports
    tbias = np.full(len(supports), -60.0)
    tbias[int(np.argmin(np.abs(np.asarray(supports) - 0.3)))] = 0.0
    params["time_head"] = {"kernel": jnp.zeros_like(params["time_head"]["kernel"]),
                           "bias": jnp.asarray(tbias, jnp.float32)}
    return model, params


def _press_start_stats(ids: np.ndarray, forced: np.ndarray) -> tuple[int, float, int]:
    """Walks one row: -> (press starts, their expected number, steps where one could start).
    A step can start a press when no press is open or pending, the last token was
    not a VELOCITY and a VELOCITY is in force (so every NOTE_ON of the model's is
    allowed but those still sounding)."""
    starts, expected, steps = 0, 0.0, 0
    open_press = pending = after_vel = False
    have_vel = False
    sounding = set()
    for tok, f in zip(ids.tolist(), forced.tolist()):
        if not (open_press or pending or after_vel) and have_vel:
            free = 128 - len(sounding)
            on = P_NOTE_ON * free / 128
            expected += (P_CONTROL + on) / (P_CONTROL + on + P_TIME)
            steps += 1
            starts += bool(VOCAB.is_control(tok) or VOCAB.is_note_on(tok) or VOCAB.is_velocity(tok))
        if tok == TIME:
            open_press = False
        if VOCAB.is_control(tok):
            pending = True
        after_vel = bool(VOCAB.is_velocity(tok))
        have_vel |= after_vel
        if VOCAB.is_note_on(tok):
            open_press, pending = True, False
            sounding.add(tok - VOCAB.note_on)
        if VOCAB.is_note_off(tok):
            sounding.discard(tok - VOCAB.note_off)
    return starts, expected, steps


@pytest.mark.parametrize("given", [False, True])
def test_press_start_rate_matches_the_model(fixed_logits, given):
    model, params = fixed_logits
    batch = 32
    controls = None
    if given:  # plenty of given controls: every press of the piece gets one
        rng = np.random.default_rng(0)
        controls = ctl.control_id(rng.integers(0, 10, (batch, 64)), rng.integers(0, 6, (batch, 64)),
                                  rng.integers(0, 4, (batch, 64))).astype(np.int32)
    _, out = generate(model, params, jax.random.key(11), num_events=96, batch=batch, controls=controls,
                      constraints=Constraints(allow_eos=False))
    starts = expected = steps = 0
    for r in range(batch):
        s, e, n = _press_start_stats(out.ids[r], out.forced[r])
        starts, expected, steps = starts + s, expected + e, steps + n
    assert steps > 1000
    rate, want = starts / steps, expected / steps
    assert 0.36 < want < 0.41  # ~ 0.4: the model's probability of starting a press
    assert abs(rate - want) < 4 * np.sqrt(want * (1 - want) / steps), (rate, want, steps)
    # times: the time head's single support
    t = out.times[out.ids == TIME]
    assert np.allclose(t, t[0]) and 0.25 < t[0] < 0.35
    if given:  # a given control at every press start, none of the model's own
        is_ctrl = VOCAB.is_control(out.ids)
        np.testing.assert_array_equal(is_ctrl, out.forced)
        for r in range(batch):
            np.testing.assert_array_equal(out.ids[r][out.forced[r]], controls[r][: out.forced[r].sum()])
    else:
        assert not out.forced.any() and VOCAB.is_control(out.ids).sum() > 100


@pytest.mark.parametrize("given", [False, True])
def test_first_note_has_a_velocity(model_params, given):
    model, params = model_params
    batch = 8
    controls = None
    if given:
        controls = np.tile(ctl.control_id(np.array([9, 1, 5]), np.array([0, 2, 5]), np.array([2, 0, 3])),
                           (batch, 1)).astype(np.int32)
    notes = 0
    for seed in range(3):
        seqs, _ = generate(model, params, jax.random.key(seed), num_events=64, batch=batch, controls=controls)
        for seq in seqs:
            on = np.flatnonzero(VOCAB.is_note_on(seq.ids))
            assert (velocity_in_force(seq.ids, on) >= 0).all()  # a VELOCITY before every NOTE_ON
            ev = decode(seq.ids, seq.times, default_velocity=-7)  # -7: decoded without a VELOCITY
            assert (ev.velocity != -7).all()
            notes += len(on)
    assert notes > 50
