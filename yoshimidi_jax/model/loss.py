"""Loss: token cross-entropy over the vocabulary, plus the time head's
cross-entropy against the two-hot of target_times where the target is TIME.

total = (sum of token CE + sum of time-value CE) / number of counted targets,
i.e. the per-token negative log-likelihood of the joint (id, time value).
Only targets where batch['loss_mask'] is true count (padding and cross-piece
targets never do). Metrics, per family of the *target* id:
  loss/<family>      token CE           accuracy/<family>  argmax accuracy
  count/<family>     counted targets
  loss/time_value    time-head CE at TIME targets
  time_mae_log       |log t_pred - log t_target| with t_pred the log-time expectation
  time_mae_s         the same in seconds
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from yoshimidi_jax.tokens import TIME, Family, TimeCodec, Vocab

FAMILY_NAMES = {
    Family.SPECIAL: "special",
    Family.NOTE_ON: "note_on",
    Family.NOTE_OFF: "note_off",
    Family.VELOCITY: "velocity",
    Family.TIME: "time",
    Family.CONTROL: "control",
}


def _safe_div(a: jax.Array, b: jax.Array) -> jax.Array:
    return a / jnp.maximum(b, 1.0)


@jax.named_scope("loss")
def loss_fn(
    logits_BxLxV: jax.Array,
    time_logits_BxLxS: jax.Array,
    batch: dict[str, jax.Array],
    vocab: Vocab = Vocab(),
    codec: TimeCodec = TimeCodec(),
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """batch: targets, target_times, loss_mask, each [B, L] -> (scalar total
    loss, metrics dict of jnp scalars). S: time supports."""
    targets = batch["targets"]
    mask = batch["loss_mask"].astype(jnp.float32)
    logits_BxLxV = logits_BxLxV.astype(jnp.float32)
    time_logits_BxLxS = time_logits_BxLxS.astype(jnp.float32)

    token_ce = optax.softmax_cross_entropy_with_integer_labels(logits_BxLxV, targets)  # [B, L]
    correct = (jnp.argmax(logits_BxLxV, -1) == targets).astype(jnp.float32)

    is_time = (targets == TIME).astype(jnp.float32) * mask
    time_target_BxLxS = codec.two_hot_dense(batch["target_times"], jnp)
    time_ce = optax.softmax_cross_entropy(time_logits_BxLxS, time_target_BxLxS)
    time_ce = jnp.where(is_time > 0, time_ce, 0.0)

    n = mask.sum()
    total = _safe_div((token_ce * mask).sum() + (time_ce * is_time).sum(), n)

    metrics: dict[str, jax.Array] = {
        "loss": total,
        "loss/token": _safe_div((token_ce * mask).sum(), n),
        "accuracy/token": _safe_div((correct * mask).sum(), n),
        "count/token": n,
    }
    fam = vocab.family(targets, jnp)
    for f, name in FAMILY_NAMES.items():
        m = mask * (fam == f)
        c = m.sum()
        metrics[f"loss/{name}"] = _safe_div((token_ce * m).sum(), c)
        metrics[f"accuracy/{name}"] = _safe_div((correct * m).sum(), c)
        metrics[f"count/{name}"] = c

    n_time = is_time.sum()
    log_pred = jax.nn.softmax(time_logits_BxLxS, -1) @ codec.log_supports(jnp)
    t_target = jnp.clip(batch["target_times"], codec.min_s, codec.max_s)
    log_err = jnp.abs(log_pred - jnp.log(t_target))
    sec_err = jnp.abs(jnp.exp(log_pred) - t_target)
    metrics["loss/time_value"] = _safe_div((time_ce * is_time).sum(), n_time)
    metrics["time_mae_log"] = _safe_div(jnp.where(is_time > 0, log_err, 0.0).sum(), n_time)
    metrics["time_mae_s"] = _safe_div(jnp.where(is_time > 0, sec_err, 0.0).sum(), n_time)
    return total, metrics
