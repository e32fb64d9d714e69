"""optax AdamW with linear warmup + cosine decay, global-norm clipping, and
optional gradient accumulation (optax.MultiSteps)."""

from __future__ import annotations

import ml_collections
import optax


def learning_rate_schedule(train: ml_collections.ConfigDict) -> optax.Schedule:
    """Learning rate per optimizer *update*: linear warmup from 0 to train.lr,
    then cosine decay to train.lr * train.final_lr_fraction. warmup_steps and
    decay_steps (0: train.steps) count micro-steps, like train.steps; with
    gradient accumulation of k there is one update per k micro-steps."""
    k = max(int(train.grad_accum_steps), 1)
    decay = int(train.decay_steps) or int(train.steps)
    warmup = max(int(train.warmup_steps) // k, 1)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=train.lr,
        warmup_steps=warmup,
        decay_steps=max(decay // k, warmup + 1),
        end_value=train.lr * train.final_lr_fraction,
    )


def learning_rate_at(train: ml_collections.ConfigDict) -> optax.Schedule:
    """The learning rate in force at a micro-step (for logging)."""
    schedule = learning_rate_schedule(train)
    k = max(int(train.grad_accum_steps), 1)
    return lambda step: schedule(step // k)


def make_optimizer(train: ml_collections.ConfigDict) -> optax.GradientTransformation:
    tx = optax.chain(
        optax.clip_by_global_norm(train.grad_clip) if train.grad_clip > 0 else optax.identity(),
        optax.adamw(
            learning_rate_schedule(train),
            b1=train.b1,
            b2=train.b2,
            weight_decay=train.weight_decay,
            # no decay on norms, biases and the time-support/position tables' scale: only matrices
            mask=lambda params: _decay_mask(params),
        ),
    )
    if train.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=train.grad_accum_steps)
    return tx


def _decay_mask(params):
    import jax

    return jax.tree.map(lambda p: p.ndim >= 2, params)
