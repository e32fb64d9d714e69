"""Data parallelism: 8 (host-platform) devices give the 1-device loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = r"""
import json, sys
import jax, numpy as np
from tests.train.conftest import small_config
from yoshimidi_jax.data.pipeline import make_batches
from yoshimidi_jax.model import init_params, make_model
from yoshimidi_jax.train import mesh as mesh_lib
from yoshimidi_jax.train.loop import batch_spec
from yoshimidi_jax.train.optimizer import learning_rate_at, make_optimizer
from yoshimidi_jax.train.state import TrainState
from yoshimidi_jax.train.step import make_train_step

assert jax.device_count() == 8, jax.devices()
cfg = small_config(sys.argv[1])
cfg.train.lr = 3e-3
it = iter(make_batches(cfg.data.path, "train", batch_spec(cfg, "train")))
batches = [next(it) for _ in range(4)]
out = {}
for fsdp in (False, True):
    for n in (1, 8):
        mesh = mesh_lib.make_mesh(jax.devices()[:n])
        model, tx = make_model(cfg.model), make_optimizer(cfg.train)
        state = TrainState.create(init_params(model, jax.random.key(0)), tx)
        sharding = mesh_lib.param_sharding(mesh, state, fsdp)
        state = jax.device_put(state, sharding)
        step = make_train_step(model, tx, learning_rate_at(cfg.train), sharding, mesh_lib.batch_sharding(mesh))
        losses = []
        for b in batches:
            state, m = step(state, mesh_lib.put_batch(b, mesh))
            losses.append(float(m["loss"]))
        shards = {len(x.sharding.device_set) for x in jax.tree.leaves(state.params)}
        out[f"fsdp={fsdp},n={n}"] = {"losses": losses, "devices_per_param": sorted(shards),
                                     "first_param_shards": len(jax.tree.leaves(state.params)[0].addressable_shards)}
print(json.dumps(out))
"""


def test_eight_devices_match_one(train_data):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, train_data], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    one = out["fsdp=False,n=1"]["losses"]
    assert one[-1] < one[0]  # it trained: the four steps are not all the same number
    for key in ("fsdp=False,n=8", "fsdp=True,n=1", "fsdp=True,n=8"):
        for a, b in zip(one, out[key]["losses"]):
            assert abs(a - b) <= 1e-4 * abs(a), (key, one, out[key]["losses"])
    assert out["fsdp=False,n=8"]["devices_per_param"] == [8]
    assert out["fsdp=True,n=8"]["first_param_shards"] == 8
