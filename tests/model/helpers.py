"""Small shared helpers for model/sample tests."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from configs.common import base_config
from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.model import init_params, make_model
from yoshimidi_jax.tokens import encode


def small_config(positional: str = "rope", max_len: int = 128) -> ml_collections.ConfigDict:
    c = base_config(num_layers=2, d_model=64, num_heads=4, max_len=max_len, dtype="float32")
    c.model.positional = positional
    return c


def model_and_params(cfg: ml_collections.ConfigDict, seed: int = 0):
    model = make_model(cfg.model)
    return model, init_params(model, jax.random.key(seed))


def tokens_of(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    seq = encode(read_midi(path).events)
    assert len(seq) >= n, (path, len(seq))
    return seq.ids[:n], seq.times[:n]


def save_run(workdir: str, cfg: ml_collections.ConfigDict, params=None, step: int = 5) -> None:
    """A workdir as training leaves one: config.json and (params given) an
    orbax checkpoint of `step` holding them (optimizer moments zero)."""
    import os

    import orbax.checkpoint as ocp

    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(cfg.to_json())
    if params is not None:
        state = {"params": params, "opt_state": {"mu": jax.tree.map(np.zeros_like, params)}, "step": np.int32(step)}
        with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mgr:
            mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
            mgr.wait_until_finished()
