import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.model import FAMILY_NAMES, loss_fn
from yoshimidi_jax.tokens import TIME, Vocab


def _batch(rng, b=2, l=32, v=Vocab().size, k=64):
    targets = rng.integers(0, v, (b, l)).astype(np.int32)
    targets[:, ::4] = TIME
    target_times = np.where(targets == TIME, rng.uniform(0.01, 2.0, (b, l)), 0).astype(np.float32)
    mask = np.ones((b, l), bool)
    mask[:, -8:] = False  # padding
    mask[0, 10] = False  # a cross-piece target
    batch = {"targets": targets, "target_times": target_times, "loss_mask": mask}
    logits = rng.normal(size=(b, l, v)).astype(np.float32)
    time_logits = rng.normal(size=(b, l, k)).astype(np.float32)
    return batch, logits, time_logits


def test_loss_ignores_masked_positions_and_has_family_keys():
    rng = np.random.default_rng(0)
    batch, logits, time_logits = _batch(rng)
    f = jax.jit(loss_fn)
    total, metrics = f(logits, time_logits, batch)
    for name in FAMILY_NAMES.values():
        for kind in ("loss", "accuracy", "count"):
            assert f"{kind}/{name}" in metrics
    for key in ("loss", "loss/time_value", "time_mae_log", "time_mae_s"):
        assert key in metrics
    assert np.isfinite(float(total)) and float(total) > 0

    # change everything at masked positions: targets, times, logits
    b2 = {k: v.copy() for k, v in batch.items()}
    m = ~batch["loss_mask"]
    b2["targets"][m] = rng.integers(0, Vocab().size, m.sum())
    b2["target_times"][m] = 5.0
    logits2, tl2 = logits.copy(), time_logits.copy()
    logits2[m] = rng.normal(size=(m.sum(), logits.shape[-1])) * 10
    tl2[m] = 3.0
    total2, metrics2 = f(logits2, tl2, b2)
    np.testing.assert_allclose(float(total2), float(total), rtol=1e-6)
    for k in metrics:
        np.testing.assert_allclose(float(metrics2[k]), float(metrics[k]), rtol=1e-5, atol=1e-6, err_msg=k)
    assert float(metrics["count/token"]) == batch["loss_mask"].sum()

    # an all-padding batch gives zero, not NaN
    b3 = dict(batch, loss_mask=np.zeros_like(batch["loss_mask"]))
    total3, metrics3 = f(logits, time_logits, b3)
    assert float(total3) == 0.0 and all(np.isfinite(float(v)) for v in metrics3.values())


def test_perfect_time_prediction_has_small_error():
    from yoshimidi_jax.tokens import TimeCodec

    rng = np.random.default_rng(1)
    batch, logits, _ = _batch(rng)
    target = np.asarray(TimeCodec().two_hot_dense(jnp.asarray(batch["target_times"]), jnp))
    time_logits = np.log(target + 1e-9)
    _, metrics = loss_fn(logits, time_logits, batch)
    assert float(metrics["time_mae_log"]) < 1e-3
    assert float(metrics["count/time"]) > 0


def test_gradients_through_model_and_loss_are_finite():
    from tests.model.helpers import model_and_params, small_config

    cfg = small_config()
    model, params = model_and_params(cfg)
    rng = np.random.default_rng(2)
    ids = rng.integers(4, 300, (2, 33)).astype(np.int32)
    ids[:, ::3] = TIME
    times = np.where(ids == TIME, 0.25, 0.0).astype(np.float32)
    seg = np.ones((2, 32), np.int32)
    seg[1, 20:] = 2
    batch = {
        "inputs": ids[:, :-1], "input_times": times[:, :-1], "targets": ids[:, 1:], "target_times": times[:, 1:],
        "segment_ids": seg, "positions": np.tile(np.arange(32, dtype=np.int32), (2, 1)),
        "loss_mask": np.ones((2, 32), bool),
    }

    def objective(p):
        logits, tl = model.apply({"params": p}, batch["inputs"], batch["input_times"], batch["positions"],
                                 batch["segment_ids"])
        return loss_fn(logits, tl, batch)

    (total, metrics), grads = jax.jit(jax.value_and_grad(objective, has_aux=True))(params)
    assert np.isfinite(float(total))
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["time_embed"]).sum()) > 0 and float(jnp.abs(grads["time_head"]["kernel"]).sum()) > 0


def test_loss_equals_a_hand_computation():
    """Three positions (a NOTE_ON, a TIME, a masked one) with logits whose
    cross-entropies are known in closed form: uniform logits over V give
    log V; a TIME target on a support gets -log softmax at that support."""
    from yoshimidi_jax.tokens import TimeCodec

    vocab, codec = Vocab(), TimeCodec()
    v, k = vocab.size, codec.num_supports
    targets = np.array([[vocab.note_on + 60, TIME, vocab.note_on + 61]], np.int32)
    target_times = np.array([[0.0, codec.supports[10], 0.0]], np.float32)  # exactly on support 10
    mask = np.array([[True, True, False]])
    logits = np.zeros((1, 3, v), np.float32)  # uniform: CE = log V at every position
    logits[0, 1, TIME] = 2.0  # the TIME position: CE = log(V - 1 + e^2) - 2
    time_logits = np.zeros((1, 3, k), np.float32)
    time_logits[0, 1, 10] = 1.0  # CE against one-hot at 10 = log(K - 1 + e) - 1
    total, metrics = loss_fn(logits, time_logits,
                             {"targets": targets, "target_times": target_times, "loss_mask": mask})
    ce_note = np.log(v)
    ce_time_token = np.log(v - 1 + np.e ** 2) - 2.0
    ce_time_value = np.log(k - 1 + np.e) - 1.0
    np.testing.assert_allclose(float(total), (ce_note + ce_time_token + ce_time_value) / 2, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["loss/token"]), (ce_note + ce_time_token) / 2, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["loss/time_value"]), ce_time_value, rtol=1e-4)
    np.testing.assert_allclose(float(metrics["loss/note_on"]), ce_note, rtol=1e-4)
    assert float(metrics["count/token"]) == 2 and float(metrics["accuracy/time"]) == 1.0
