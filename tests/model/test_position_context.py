"""position_context (the whole-window model input) equals the Track kept step by step,
and KV-cache decoding from a Track's values equals the full forward pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.model import cache_for
from yoshimidi_jax.model.position_context import PositionContext, piece_start, position_context
from yoshimidi_jax.sample.tracker import advance, init_track
from yoshimidi_jax.tokens import Vocab, encode
from yoshimidi_jax.tokens import controls as ctl

jax.config.update("jax_default_matmul_precision", "highest")
VOCAB = Vocab()


def _with_controls(path: str, n: int):
    seq = encode(read_midi(path).events)
    ids, times = ctl.insert_controls(seq.ids, seq.times, ctl.annotate(seq.ids, seq.times))
    assert len(ids) >= n
    return ids[:n].astype(np.int32), times[:n].astype(np.float32)


@jax.jit
def _track_after_each(ids, times):
    """[B, L] -> the Track's PositionContext after each token (tracker.advance), [B, L] each."""
    def body(t, x):
        t = advance(t, *x)
        return t, t.position_start

    after = jax.lax.scan(body, init_track(ids.shape[0]), (ids.T, times.T))[1]
    return PositionContext(*(jnp.swapaxes(a, 0, 1) for a in after))


def _assert_same(got, want, what):
    """Equal; the ages (sums of seconds in another order) to float32 rounding."""
    if np.asarray(want).dtype == np.float32:
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, err_msg=what)
    else:
        np.testing.assert_array_equal(np.asarray(got), want, err_msg=what)


def _before(after, k):
    """The Track values before position k (after k-1; a fresh track at 0)."""
    return PositionContext(*(a[:, k - 1] for a in after)) if k > 0 else piece_start(after.control.shape[0])


@pytest.fixture(scope="module")
def streams(few_midi_files):
    return [_with_controls(p, 160) for p in few_midi_files]


def test_position_context_equals_the_track(streams):
    ids = jnp.asarray(np.stack([s[0] for s in streams]))
    times = jnp.asarray(np.stack([s[1] for s in streams]))
    want = [np.asarray(a) for a in _track_after_each(ids, times)]
    got = position_context(ids, times)
    for name, g, w in zip(PositionContext._fields, got, want):
        _assert_same(g, w, name)
    assert want[4].sum(-1).max() >= 3  # several pitches sounded at once, and ended
    assert (want[4].sum(-1)[:, 1:] < want[4].sum(-1)[:, :-1]).any()
    ref_at_ctrl = want[2][VOCAB.is_control(np.asarray(ids))]
    assert ref_at_ctrl.size > 50 and (ref_at_ctrl >= 0).mean() > 0.9  # the reference is known at CONTROLs
    assert want[1].max() >= 2  # chords were exercised
    ages = want[5][want[4]]
    assert ages.max() > 1.0 and (ages == 0).mean() < 0.5  # notes sounded for seconds, and aged
    # continuing from a Track's values mid-piece (inside a press too) gives the same
    after = _track_after_each(ids, times)
    for k in (1, 7, 33, 50, 51, 52, 99):
        chunk = position_context(ids[:, k:], times[:, k:], None, _before(after, k))
        for name, g, w in zip(PositionContext._fields, chunk, want):
            _assert_same(g, w[:, k:], f"{name} from {k}")
    # packed pieces: the second starts afresh
    both = jnp.concatenate([ids[0:1, :80], ids[1:2, :80]], axis=1)
    seg = jnp.asarray(np.concatenate([np.ones(80, np.int32), np.full(80, 2, np.int32)])[None])
    both_times = jnp.concatenate([times[0:1, :80], times[1:2, :80]], axis=1)
    packed = position_context(both, both_times, seg)
    alone = position_context(ids[1:2, :80], times[1:2, :80])
    for name, g, w in zip(PositionContext._fields, packed, alone):
        _assert_same(np.asarray(g)[0, 80:], np.asarray(w)[0], f"packed {name}")


def test_cached_decoding_from_the_track_matches_full_forward(streams):
    n = 128
    cfg = small_config()
    assert cfg.model.control_reference and cfg.model.factored_controls
    model, params = model_and_params(cfg)
    # the control biases start at zero: give them values so that they count
    rng = np.random.default_rng(0)
    params = dict(params)
    for name in ("interval_bias", "velocity_bias", "chord_bias", "note_off_age_bias"):
        if name in params:
            params[name] = jnp.asarray(rng.normal(0, 1, params[name].shape), jnp.float32)
    ids, times = streams[0][0][:n], streams[0][1][:n]
    assert VOCAB.is_control(ids[16:]).sum() > 10
    inputs, input_times = jnp.asarray(ids)[None], jnp.asarray(times)[None]
    after = _track_after_each(inputs, input_times)
    positions = jnp.arange(n, dtype=jnp.int32)[None]
    fwd = jax.jit(lambda p, x, t, q, s: model.apply({"params": p}, x, t, q, s))
    full_logits, full_time = fwd(params, inputs, input_times, positions, jnp.ones_like(inputs))
    full_logits, full_time = np.asarray(full_logits), np.asarray(full_time)

    step = jax.jit(lambda p, x, t, c, i, s: model.apply({"params": p}, x, t, c, i, s, method=model.decode))
    prefill = jax.jit(lambda p, x, t, c: model.apply({"params": p}, x, t, c, jnp.int32(0), method=model.decode))
    cache = cache_for(cfg.model, 1, n)
    lg, tl, cache = prefill(params, inputs[:, :16], input_times[:, :16], cache)
    got_logits, got_time = [lg], [tl]
    i, k = 16, 0
    sizes = [1, 3, 1, 2, 5, 1]  # single steps and chunks (a chunk may hold a whole press)
    while i < n:
        t = min(sizes[k % len(sizes)], n - i)
        lg, tl, cache = step(params, inputs[:, i : i + t], input_times[:, i : i + t], cache, jnp.int32(i),
                             _before(after, i))
        got_logits.append(lg)
        got_time.append(tl)
        i, k = i + t, k + 1
    got_logits = np.concatenate(got_logits, axis=1)
    got_time = np.concatenate(got_time, axis=1)
    np.testing.assert_allclose(got_logits, full_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_time, full_time, rtol=1e-5, atol=1e-5)

    # the Track's values matter: one token at a time from a fresh start differs at CONTROLs
    cache = cache_for(cfg.model, 1, n)
    _, _, cache = prefill(params, inputs[:, :16], input_times[:, :16], cache)
    fresh = _before(after, 0)
    bad = []
    m = 72
    for j in range(16, m):
        lg, _, cache = step(params, inputs[:, j : j + 1], input_times[:, j : j + 1], cache, jnp.int32(j), fresh)
        bad.append(np.asarray(lg)[0, 0])
    diff = np.abs(np.stack(bad) - full_logits[0, 16:m]).max(axis=-1)
    ref_before = np.asarray(after[2])[0, 16:m]
    ctrl = VOCAB.is_control(ids[16:m]) & (ref_before >= 0)
    assert ctrl.sum() > 5 and (diff[ctrl] > 1e-4).all()


def test_common_note_lengths_sit_inside_their_age_bucket():
    """The age buckets' edges are musical lengths (0.125 s, a sixteenth at 120
    bpm; 0.25, 0.5 ... s), where most real ages are. With the model's default
    age_edges_scale each such length, exact (the data's sums) or a few ms off
    (a sampled TIME is never exactly 0.125 s), reads one bucket; on the edges
    themselves (scale 1, the runs saved before the field) it did not."""
    from yoshimidi_jax.model.position_context import AGE_EDGES_S, age_bucket, age_edges
    from yoshimidi_jax.model.transformer import Transformer

    scale = Transformer.age_edges_scale
    assert scale < 1.0 and age_edges(scale)[0] == pytest.approx(0.125 * scale)
    lengths = np.asarray(AGE_EDGES_S, np.float32)
    jitter = np.asarray([-0.003, -1e-6, 0.0, 1e-6, 0.003], np.float32)
    ages = jnp.asarray(lengths[:, None] * (1 + jitter[None] * 4))  # up to +-1.2% of each length
    buckets = np.asarray(age_bucket(ages, scale))
    assert (buckets == buckets[:, :1]).all(), buckets  # each length: one bucket, however it was summed
    assert np.array_equal(buckets[:, 0], np.arange(1, len(lengths) + 1))  # and each its own
    on_edges = np.asarray(age_bucket(ages, 1.0))
    assert (on_edges != on_edges[:, :1]).any(axis=1).all()  # at scale 1 every length straddled two
