"""sample/guidance.py: classifier-free guidance of the style. The guided
logits at weights 0, 1 and 2; the sampler's pairs hold the same music; greedy
samples at weight 0 are the unconditioned model's and at weight 1 the styled
model's, and a larger weight goes where neither goes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.sample import SamplerConfig, generate, make_sampler, prepare_prompt, violations
from yoshimidi_jax.sample.guidance import WEIGHTS, check_weight, guided, pair_rows, tie, weight_for
from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES

STEPS = 48


def test_guided_logits_and_tied_draws():
    styled = jnp.array([[1.0, 2.0, 0.0], [0.0, 0.0, 4.0]])
    plain = jnp.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    pairs = jnp.concatenate([styled, plain])
    np.testing.assert_allclose(guided(pairs, 0.0), jnp.concatenate([plain, plain]))
    np.testing.assert_allclose(guided(pairs, 1.0), jnp.concatenate([styled, styled]))
    want = plain + 2.0 * (styled - plain)  # [[1, 4, 0], [-1, -1, 7]]
    np.testing.assert_allclose(guided(pairs, 2.0), jnp.concatenate([want, want]))
    np.testing.assert_array_equal(tie(jnp.array([3, 5, 7, 9])), [3, 5, 3, 5])
    (ids,), styles = pair_rows((np.array([[1, 2], [3, 4]]),), np.array([2, NO_STYLE]))
    np.testing.assert_array_equal(ids, [[1, 2], [3, 4], [1, 2], [3, 4]])
    np.testing.assert_array_equal(styles, [2, NO_STYLE, NO_STYLE, NO_STYLE])
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="style_guidance"):
            check_weight(bad)


def test_each_style_has_its_own_default_weight():
    assert weight_for(NO_STYLE) == 1.0  # nothing asked: nothing to lean into, no second row
    assert weight_for(STYLES.index("renaissance")) == 3.5 and weight_for(STYLES.index("classical")) == 1.0
    assert weight_for(STYLES.index("fiddle")) == weight_for(STYLES.index("chorale")) == 2.0
    assert set(WEIGHTS) == set(STYLES) and all(check_weight(w) == w for w in WEIGHTS.values())
    assert weight_for(STYLES.index("classical"), 2.5) == 2.5  # a weight given is every style's
    with pytest.raises(ValueError, match="style_guidance"):
        weight_for(STYLES.index("fiddle"), -1.0)


@pytest.fixture(scope="module")
def styled_model():
    """A small model whose style embedding moves its logits a lot (at init it barely does)."""
    model, params = model_and_params(small_config(max_len=128), seed=3)
    params = dict(params)
    params["style_embed"] = 3.0 * jax.random.normal(jax.random.key(9), params["style_embed"].shape)
    return model, params


def _greedy(model, params, style, weight, out=False):
    seqs, sampled = generate(model, params, jax.random.key(0), num_events=STEPS, batch=2, temperature=0.0,
                             style=style, style_guidance=weight)
    return ([s.ids for s in seqs], sampled) if out else [s.ids for s in seqs]


def test_greedy_samples_at_weights_0_1_and_3(styled_model):
    model, params = styled_model
    chorale = STYLES.index("chorale")
    unconditioned = _greedy(model, params, NO_STYLE, 1.0)
    styled = _greedy(model, params, chorale, 1.0)
    assert not np.array_equal(unconditioned[0], styled[0])  # the style moves this model
    np.testing.assert_array_equal(_greedy(model, params, chorale, 0.0)[0], unconditioned[0])
    leaning, out = _greedy(model, params, chorale, 3.0, out=True)
    assert len(leaning) == 2 and out.ids.shape == (2, STEPS)  # the asked rows only, not their unconditioned twins
    assert not np.array_equal(leaning[0], styled[0]) and not np.array_equal(leaning[0], unconditioned[0])
    _, _, start = prepare_prompt(None, 1, model.vocab)
    assert violations(out.ids[0], out.times[0], out.forced[0], start) == []
    # no style asked: guidance has nothing to lean on, and the rows are sampled once
    np.testing.assert_array_equal(_greedy(model, params, NO_STYLE, 3.0)[0], unconditioned[0])


def test_a_pair_holds_the_same_music_and_weight_1_is_the_style(styled_model):
    model, params = styled_model
    ids, times, track = prepare_prompt(None, 2, model.vocab)
    style = np.array([STYLES.index("fiddle"), STYLES.index("renaissance")], np.int32)
    (p_ids, p_times, p_track), p_style = pair_rows((ids, times, track), style)
    knobs = (jnp.float32(0.8), jnp.float32(0.9), jnp.int32(0))
    controls = np.full((4, 1), -1, np.int32)
    paired = make_sampler(model, SamplerConfig(num_steps=STEPS, style_guidance=2.0))
    out, _ = paired(params, p_ids, p_times, p_track, jax.random.key(1), *knobs, controls, jnp.asarray(p_style))
    np.testing.assert_array_equal(out.ids[:2], out.ids[2:])
    np.testing.assert_array_equal(out.times[:2], out.times[2:])
    assert not np.array_equal(out.ids[0], out.ids[1])  # two rows, two pieces
    # at weight 1 the pair samples what the model asked for the style alone samples (greedy)
    greedy = (jnp.float32(0.0), jnp.float32(1.0), jnp.int32(0))
    at_one = make_sampler(model, SamplerConfig(num_steps=STEPS, style_guidance=1.0))
    plain = make_sampler(model, SamplerConfig(num_steps=STEPS))
    a, _ = at_one(params, p_ids, p_times, p_track, jax.random.key(1), *greedy, controls, jnp.asarray(p_style))
    b, _ = plain(params, ids, times, track, jax.random.key(1), *greedy, controls[:2], jnp.asarray(style))
    np.testing.assert_array_equal(a.ids[:2], b.ids)
