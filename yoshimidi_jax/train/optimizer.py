"""optax AdamW with linear warmup + cosine decay, global-norm clipping, and
optional gradient accumulation (optax.MultiSteps)."""

from __future__ import annotations

import ml_collections
import optax


def learning_rate_schedule(train: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warmup from 0 to train.lr, then cosine decay to train.lr * train.final_lr_fraction
    at train.steps (in optimizer updates)."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=train.lr,
        warmup_steps=max(int(train.warmup_steps), 1),
        decay_steps=max(int(train.steps), int(train.warmup_steps) + 1),
        end_value=train.lr * train.final_lr_fraction,
    )


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
