"""The learning-rate schedule, with and without gradient accumulation."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.tiny import get_config
from yoshimidi_jax.train.optimizer import learning_rate_at, make_optimizer


def _updates(train, micro_steps: int) -> np.ndarray:
    """|update| of a scalar with a constant gradient: Adam makes it ~ the lr."""
    tx = make_optimizer(train)
    params = {"w": jnp.zeros(())}
    state = tx.init(params)
    out = []
    for _ in range(micro_steps):
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        params = optax.apply_updates(params, updates)
        out.append(float(abs(updates["w"])))
    return np.array(out)


@pytest.mark.parametrize("accumulate", [1, 4])
def test_schedule_spans_train_steps_in_micro_steps(accumulate):
    train = get_config().train
    train.steps, train.warmup_steps, train.lr, train.final_lr_fraction = 100, 8, 1e-2, 0.1
    train.grad_accum_steps = accumulate
    lr = learning_rate_at(train)
    assert float(lr(train.warmup_steps)) == pytest.approx(train.lr, rel=1e-6)
    assert float(lr(train.steps)) == pytest.approx(train.lr * train.final_lr_fraction, rel=1e-6)
    updates = _updates(train, train.steps)
    applied = updates[accumulate - 1 :: accumulate]  # one real update per `accumulate` micro-steps
    skipped = np.ones(train.steps, bool)
    skipped[accumulate - 1 :: accumulate] = False
    assert (updates[skipped] == 0).all() and len(applied) == train.steps // accumulate
    assert (applied[1:] > 0).all()  # the first real update comes at lr 0 (warmup starts there)
    # the last update is taken at the end of the cosine, not part way down it
    assert applied[-1] == pytest.approx(float(lr(train.steps - 1)), rel=0.05)
    assert applied[-1] < 0.15 * train.lr


def test_decay_steps_fix_the_schedule_when_steps_grow():
    train = get_config().train
    train.steps, train.warmup_steps, train.lr = 100, 10, 1e-2
    train.decay_steps = 100
    before = float(learning_rate_at(train)(100))
    train.steps = 200
    assert float(learning_rate_at(train)(100)) == before  # a longer run keeps its schedule
