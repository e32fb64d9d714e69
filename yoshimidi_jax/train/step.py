"""The jitted train and eval steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from yoshimidi_jax.model import Transformer, loss_fn
from yoshimidi_jax.train.state import TrainState

MODEL_INPUTS = ("inputs", "input_times", "positions", "segment_ids", "styles", "sounding_start", "age_start")


def _forward_loss(params: Any, model: Transformer, batch: dict[str, jax.Array]):
    logits, time_logits = model.apply({"params": params}, *(batch[k] for k in MODEL_INPUTS))
    return loss_fn(logits, time_logits, batch, model.vocab, model.codec)


def train_step(
    state: TrainState, batch: dict[str, jax.Array], model: Transformer, optimizer: optax.GradientTransformation,
    schedule: Callable[[jax.Array], jax.Array],
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer (micro-)step. Pure: jit it with donate_argnums=0.

    schedule: the learning rate at a micro-step (optimizer.learning_rate_at), for logging.
    """
    (loss, metrics), grads = jax.value_and_grad(_forward_loss, has_aux=True)(state.params, model, batch)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics)
    metrics["grad_norm"] = optax.global_norm(grads)
    metrics["param_norm"] = optax.global_norm(params)
    metrics["learning_rate"] = schedule(state.step)
    # the updated params too: a finite loss and gradient can still overflow them
    metrics["finite"] = jnp.isfinite(loss) & jnp.isfinite(metrics["grad_norm"]) & jnp.isfinite(metrics["param_norm"])
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(params: Any, batch: dict[str, jax.Array], model: Transformer) -> dict[str, jax.Array]:
    """Metrics of one eval batch (means, with their counts: see loop.combine_eval)."""
    _, metrics = _forward_loss(params, model, batch)
    return metrics


def make_train_step(model, optimizer, schedule, state_sharding, batch_sharding):
    return jax.jit(
        lambda state, batch: train_step(state, batch, model, optimizer, schedule),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=(state_sharding, None),
        donate_argnums=0,
    )


def make_eval_step(model, params_sharding, batch_sharding):
    return jax.jit(
        lambda params, batch: eval_step(params, batch, model),
        in_shardings=(params_sharding, batch_sharding),
    )
