"""The real jitted train step of a config, ready to time or profile
(benchmarks.train_throughput, benchmarks.step_profile)."""

from __future__ import annotations

import os
import time

import jax
import numpy as np


def real_or_random_batches(cfg, n: int, data: str):
    """n batches: real windows of the prepared dataset `data` when it exists,
    else random ids of the same shape (speed does not depend on the values)."""
    if os.path.exists(os.path.join(data, "manifest.json")):
        from yoshimidi_jax.data.pipeline import make_batches
        from yoshimidi_jax.train.loop import batch_spec

        it = iter(make_batches(data, "train", batch_spec(cfg, "train")))
        return [next(it) for _ in range(n)], "real"
    rng = np.random.default_rng(0)
    b, L = cfg.data.batch_size, cfg.data.seq_len
    one = {
        "inputs": rng.integers(5, cfg.model.vocab_size, (b, L)).astype(np.int32),
        "input_times": np.zeros((b, L), np.float32), "targets": rng.integers(5, cfg.model.vocab_size, (b, L)).astype(np.int32),
        "target_times": np.zeros((b, L), np.float32), "segment_ids": np.ones((b, L), np.int32),
        "positions": np.tile(np.arange(L, dtype=np.int32), (b, 1)), "loss_mask": np.ones((b, L), bool),
        "styles": np.full((b, L), -1, np.int32), "sounding_start": np.zeros((b, 128), bool),
        "age_start": np.zeros((b, 128), np.float32),
    }
    return [one] * n, "random"


def make_step(cfg, devices, batches, expose: bool = False):
    """-> run(n): n timed steps over the batches after the first 3 (warm-up,
    compile) -> seconds per step. expose: (run, the jitted step, a function
    giving the current state, one device batch), for profiling."""
    from yoshimidi_jax.model import init_params, make_model
    from yoshimidi_jax.train import mesh as mesh_lib
    from yoshimidi_jax.train.optimizer import learning_rate_at, make_optimizer
    from yoshimidi_jax.train.state import TrainState
    from yoshimidi_jax.train.step import make_train_step

    mesh = mesh_lib.make_mesh(devices)
    model, tx = make_model(cfg.model), make_optimizer(cfg.train)
    state = TrainState.create(init_params(model, jax.random.key(0)), tx)
    sharding = mesh_lib.param_sharding(mesh, state, cfg.train.fsdp)
    box = {"state": jax.device_put(state, sharding)}
    step = make_train_step(model, tx, learning_rate_at(cfg.train), sharding, mesh_lib.batch_sharding(mesh))
    device_batches = [mesh_lib.put_batch(b, mesh) for b in batches]

    def run(n: int, timed: bool = True) -> float:
        start = time.perf_counter()
        for i in range(n):
            box["state"], m = step(box["state"], device_batches[3 + i % (len(device_batches) - 3)]
                                   if timed else device_batches[i % 3])
        jax.block_until_ready(m["loss"])
        return (time.perf_counter() - start) / n

    run(3, timed=False)
    if expose:
        return run, step, lambda: box["state"], device_batches[0]
    return run
