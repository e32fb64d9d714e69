import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import jaxprs_in_params

from tests.model.helpers import model_and_params, small_config, tokens_of
from yoshimidi_jax.model import cache_for, model_cost
from yoshimidi_jax.tokens import TIME, TimeCodec

jax.config.update("jax_default_matmul_precision", "highest")


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
def test_two_hot_against_hand_computed_values(xp):
    """On a support: all mass there; half way in log-time between two: half
    each; outside the range: the end support; and the expectation in
    log-time gives the seconds back."""
    codec = TimeCodec(num_supports=5, min_s=0.01, max_s=100.0)  # supports 0.01, 0.1, 1, 10, 100
    t = np.array([0.01, 1.0, np.sqrt(0.1 * 1.0), 10 ** 1.75, 0.001, 1000.0], np.float32)
    want = np.array([
        [1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0.5, 0.5, 0, 0],
        [0, 0, 0, 0.25, 0.75],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
    ])
    got = np.asarray(codec.two_hot_dense(xp.asarray(t), xp))
    np.testing.assert_allclose(got, want, atol=1e-5)
    inside = np.array([0.013, 0.5, 7.0, 99.0], np.float32)
    back = codec.expectation(codec.two_hot_dense(xp.asarray(inside), xp), xp)
    np.testing.assert_allclose(np.asarray(back), inside, rtol=1e-5)


@pytest.mark.parametrize("positional", ["rope", "learned"])
def test_cached_decoding_matches_full_forward(few_midi_files, positional):
    n = 96
    cfg = small_config(positional)
    # decoded here from a piece's start each call; decoding from a Track's values (what
    # sounds and for how long included) is tested in test_position_context
    cfg.model.sounding_input = False
    cfg.model.note_age_input = False
    model, params = model_and_params(cfg)
    ids, times = tokens_of(few_midi_files[0], n)
    assert (ids == TIME).any()
    inputs, input_times = jnp.asarray(ids)[None], jnp.asarray(times)[None]
    positions = jnp.arange(n, dtype=jnp.int32)[None]
    # both paths jitted: XLA's fused kernels differ from eager op-by-op by ~1e-5
    fwd = jax.jit(lambda p, x, t, q, s: model.apply({"params": p}, x, t, q, s))
    full_logits, full_time = fwd(params, inputs, input_times, positions, jnp.ones_like(inputs))

    step = jax.jit(lambda p, x, t, c, i: model.apply({"params": p}, x, t, c, i, method=model.decode))
    cache = cache_for(cfg.model, 1, n)
    # prefill the first 16, then one token at a time
    lg, tl, cache = step(params, inputs[:, :16], input_times[:, :16], cache, jnp.int32(0))
    got_logits, got_time = [lg], [tl]
    for i in range(16, n):
        lg, tl, cache = step(params, inputs[:, i : i + 1], input_times[:, i : i + 1], cache, jnp.int32(i))
        got_logits.append(lg)
        got_time.append(tl)
    got_logits = np.concatenate(got_logits, axis=1)
    got_time = np.concatenate(got_time, axis=1)
    np.testing.assert_allclose(got_logits, np.asarray(full_logits), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_time, np.asarray(full_time), rtol=1e-5, atol=1e-5)


def test_decoding_beside_the_cache_matches_writing_into_it(few_midi_files):
    """rows_only (the exported graph's decode: the cache read, the new rows
    returned) gives the logits of writing the rows in place, calls of 1..4
    tokens from a cache whose entries past the index hold stale rows."""
    n = 64
    cfg = small_config()
    model, params = model_and_params(cfg)
    ids, times = tokens_of(few_midi_files[0], n)
    inputs, input_times = jnp.asarray(ids)[None], jnp.asarray(times)[None]
    in_place = jax.jit(lambda c, x, t, i: model.apply({"params": params}, x, t, c, i, method=model.decode))
    beside = jax.jit(lambda c, x, t, i: model.apply({"params": params}, x, t, c, i, rows_only=True,
                                                    method=model.decode))
    cache = cache_for(cfg.model, 1, n)
    # what the caller keeps: rows written where they stand, the rest stale (here: noise)
    kept = jax.tree.map(lambda x: jax.random.normal(jax.random.key(1), x.shape), cache)
    i, size, diffs = 0, 0, []
    while i < n:
        size = size % 4 + 1
        x, t = inputs[:, i: i + size], input_times[:, i: i + size]
        want, want_time, cache = in_place(cache, x, t, jnp.int32(i))
        got, got_time, rows = beside(kept, x, t, jnp.int32(i))
        diffs.append(max(float(jnp.abs(got - want).max()), float(jnp.abs(got_time - want_time).max())))
        kept = [{kv: layer[kv].at[:, :, i: i + x.shape[1]].set(new[kv]) for kv in ("k", "v")}
                for layer, new in zip(kept, rows)]
        i += x.shape[1]
    assert max(diffs) < 1e-5, diffs
    for got_layer, want_layer in zip(kept, cache):
        for kv in ("k", "v"):
            np.testing.assert_allclose(got_layer[kv], want_layer[kv], atol=1e-5)


def test_segments_never_see_each_other(few_midi_files):
    cfg = small_config()
    model, params = model_and_params(cfg)
    a_ids, a_t = tokens_of(few_midi_files[1], 40)
    b_ids, b_t = tokens_of(few_midi_files[2], 60)
    ids = np.concatenate([a_ids, b_ids])[None]
    times = np.concatenate([a_t, b_t])[None]
    seg = np.concatenate([np.full(40, 1), np.full(60, 2)])[None]
    pos = np.concatenate([np.arange(40), np.arange(60)])[None]
    fwd = jax.jit(lambda p, x, t, q, s: model.apply({"params": p}, x, t, q, s))
    logits, tl = fwd(params, ids, times, pos, seg)
    # change piece A's tokens and times
    ids2, times2 = ids.copy(), times.copy()
    ids2[0, 5:40] = np.random.default_rng(0).integers(5, 300, 35)
    times2[0, :40] = 0.3
    logits2, tl2 = fwd(params, ids2, times2, pos, seg)
    np.testing.assert_array_equal(np.asarray(logits)[0, 40:], np.asarray(logits2)[0, 40:])
    np.testing.assert_array_equal(np.asarray(tl)[0, 40:], np.asarray(tl2)[0, 40:])
    assert not np.allclose(np.asarray(logits)[0, 5:40], np.asarray(logits2)[0, 5:40])
    # piece B alone, at its own positions, gives the same logits
    alone, _ = fwd(params, ids[:, 40:], times[:, 40:], pos[:, 40:], seg[:, 40:])
    np.testing.assert_allclose(np.asarray(alone)[0], np.asarray(logits)[0, 40:], rtol=1e-5, atol=1e-5)


def _dot_dtypes(dtype: str) -> set[str]:
    """The operand dtypes of every matmul in the forward pass of a model whose
    compute dtype is `dtype` (params fp32 either way)."""
    cfg = small_config()
    cfg.model.dtype = dtype
    model, params = model_and_params(cfg)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    x = jnp.zeros((1, 8), jnp.int32)
    fwd = lambda p: model.apply({"params": p}, x, jnp.zeros((1, 8)), x, x + 1)  # noqa: E731
    logits, _ = fwd(params)
    assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()
    dots = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                dots.update(str(v.aval.dtype) for v in eqn.invars)
            for sub in jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fwd)(params).jaxpr)
    return dots


def test_bf16_compute_keeps_fp32_params():
    """bf16 compute: the body's matmuls run in bf16 (fp32 params cast on use),
    the output projections in fp32; fp32 compute has no bf16 matmul at all."""
    bf16 = _dot_dtypes("bfloat16")
    assert bf16 == {"bfloat16", "float32"}, bf16
    assert _dot_dtypes("float32") == {"float32"}


def test_model_cost_configs():
    import configs.base
    import configs.large
    import configs.tiny

    tiny = model_cost(configs.tiny.get_config().model)
    large = model_cost(configs.large.get_config().model)
    assert 0.5e6 < tiny.params < 2e6
    assert large.params > 300e6
    assert tiny.flops_per_token > 6 * tiny.nonembedding_params
    cfg = small_config()
    model, params = model_and_params(cfg)
    assert model_cost(cfg.model).params == sum(p.size for p in jax.tree.leaves(params))
    base = model_cost(configs.base.get_config().model)
    assert tiny.params < base.params < large.params
    assert tiny.flops_per_token < base.flops_per_token < large.flops_per_token


def test_every_attention_gives_the_same_logits_and_gradients(few_midi_files):
    """Queries in blocks of 32 against only the keys up to their block's end,
    jax.nn.dot_product_attention (XLA), and the cuDNN choice (which falls back
    to blocks off a GPU): the same logits and gradients as the whole masked
    [L, L] at once, on a packed row of two pieces whose boundary falls inside
    a block."""
    from yoshimidi_jax.model.attention import fused_attention_available, use_blocks

    cfg = small_config()
    ids_a, t_a = tokens_of(few_midi_files[1], 50)
    ids_b, t_b = tokens_of(few_midi_files[2], 78)
    ids = jnp.asarray(np.concatenate([ids_a, ids_b]))[None]
    times = jnp.asarray(np.concatenate([t_a, t_b]))[None]
    seg = jnp.asarray(np.concatenate([np.full(50, 1), np.full(78, 2)]))[None]
    pos = jnp.asarray(np.concatenate([np.arange(50), np.arange(78)]))[None]
    outs = {}
    for block, impl in ((0, "blocks"), (32, "blocks"), (0, "jax"), (32, "cudnn")):
        cfg.model.attention_block, cfg.model.attention = block, impl
        model, params = model_and_params(cfg)
        loss = lambda p: model.apply({"params": p}, ids, times, pos, seg)[0].sum()  # noqa: E731
        logits = jax.jit(lambda p: model.apply({"params": p}, ids, times, pos, seg))(params)
        outs[block, impl] = (logits, jax.jit(jax.grad(loss))(params))
    whole = outs[0, "blocks"]
    for key, (logits, grads) in outs.items():
        np.testing.assert_allclose(np.asarray(logits[0]), np.asarray(whole[0][0]), rtol=1e-5, atol=1e-5, err_msg=key)
        # the gradient of the summed logits reaches ~1e4; other orders of float32
        # sums (blocks normalise after their weighted sum) differ by ~2e-4 relative there
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=5e-4, atol=1e-3, err_msg=str(key)),
                     grads, whole[1])
    assert not fused_attention_available(jnp.bfloat16)  # a CPU: 'cudnn' ran the blocks
    assert use_blocks(128, 32) and not use_blocks(100, 32) and not use_blocks(32, 32) and not use_blocks(128, 0)
