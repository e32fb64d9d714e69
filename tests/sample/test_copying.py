"""sample/copying.py: what followed the same context before, at one step and
over whole windows (the two agree), and the sampler copying a prompt's
continuation when the copy has all the weight."""

import jax
import jax.numpy as jnp
import numpy as np

from tests.model.helpers import model_and_params, small_config, tokens_of
from yoshimidi_jax.sample import generate
from yoshimidi_jax.sample.copying import copy_distribution, copy_distributions, mix_logits
from yoshimidi_jax.tokens import TokenSequence

V = 12


def test_a_context_seen_before_gets_what_followed_it():
    #            0  1  2  3  4  5  6  7  8  9
    history = [[5, 1, 2, 3, 1, 2, 4, 1, 2, 0],
               [5, 6, 7, 8, 9, 9, 2, 6, 7, 6]]
    h = jnp.asarray(history, jnp.int32)
    # row 0, the first 9 tokens: the context (1, 2) occurred at 1-2 (then 3) and 4-5 (then 4)
    p, matched = copy_distribution(h, jnp.int32(9), 2, V)
    assert bool(matched[0]) and np.allclose(p[0, 3], 0.5) and np.allclose(p[0, 4], 0.5) and np.isclose(p[0].sum(), 1)
    # row 1: (6, 7) occurred at 1-2, then 8 (the 6 at 9 is past the length: not a follower)
    assert bool(matched[1]) and np.isclose(p[1, 8], 1.0)
    # a context of 3, (4, 1, 2), never occurred before: no copy, the model's logits kept
    p3, matched3 = copy_distribution(h, jnp.int32(9), 3, V)
    assert not bool(matched3[0]) and float(p3[0].sum()) == 0.0
    logits = jax.random.normal(jax.random.key(0), (2, V))
    kept = mix_logits(logits, h, jnp.int32(9), 3, 0.5)
    np.testing.assert_allclose(jax.nn.softmax(kept[0]), jax.nn.softmax(logits[0]), rtol=1e-6)
    # weight 0.5 where it matched: half the model's probability, half the copy's
    mixed = jax.nn.softmax(mix_logits(logits, h, jnp.int32(9), 2, 0.5)[0])
    want = 0.5 * jax.nn.softmax(logits[0]) + 0.5 * p[0]
    np.testing.assert_allclose(mixed, want, rtol=1e-5)


def test_whole_windows_give_each_steps_copy(few_midi_files):
    ids, _ = tokens_of(few_midi_files[0], 200)
    inputs = jnp.asarray(np.stack([ids, np.roll(ids, 7)]), jnp.int32)
    segments = jnp.asarray(np.stack([np.ones(200), np.repeat([1, 2], 100)]), jnp.int32)  # row 1: two pieces
    for context in (2, 4):
        p_all, matched_all = copy_distributions(inputs, segments, context, 600)
        assert int(matched_all[0].sum()) > 20  # real music repeats its short contexts
        for t in (10, 57, 99, 100, 104, 150, 199):
            row0 = copy_distribution(inputs[:1], jnp.int32(t + 1), context, 600)
            np.testing.assert_allclose(p_all[0, t], row0[0][0], atol=1e-6)
            assert bool(matched_all[0, t]) == bool(row0[1][0])
            # row 1's second piece starts at 100: only its own tokens count
            start = 0 if t < 100 else 100
            row1 = copy_distribution(inputs[1:, start:], jnp.int32(t + 1 - start), context, 600)
            np.testing.assert_allclose(p_all[1, t], row1[0][0], atol=1e-6)
            assert bool(matched_all[1, t]) == bool(row1[1][0])


def test_the_sampler_copies_when_the_copy_has_all_the_weight(few_midi_files):
    model, params = model_and_params(small_config(max_len=256), seed=1)
    ids, times = tokens_of(few_midi_files[0], 200)
    # the first place where the piece's last 6 tokens occurred before, always followed by
    # what follows them now (real music repeats itself; the follower is then grammatical)
    history = jnp.asarray(ids, jnp.int32)[None]
    t = next(t for t in range(20, 200) if float(copy_distribution(history, jnp.int32(t), 6, model.vocab_size)[0][
        0, ids[t]]) == 1.0)
    prompt = TokenSequence(ids[:t].astype(np.int32), times[:t].astype(np.float32))
    kw = dict(num_events=1, prompt=prompt, batch=8, temperature=1.0, top_p=1.0)
    _, copied = generate(model, params, jax.random.key(0), copy_context=6, copy_weight=0.999, **kw)
    _, free = generate(model, params, jax.random.key(0), **kw)
    assert (copied.ids[:, 0] == ids[t]).all(), (t, copied.ids[:, 0], ids[t])  # every row follows the copy
    assert not (free.ids[:, 0] == ids[t]).all()  # the untrained model alone does not
