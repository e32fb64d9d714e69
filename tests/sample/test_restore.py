import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.sample.restore import restore


def test_restore_latest_checkpoint_and_fallback(tmp_path):
    cfg = small_config()
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(cfg.to_json())

    r = restore(workdir)  # no checkpoint yet
    assert r.step is None and "random-init" in r.message

    model, params = model_and_params(cfg, seed=5)
    state = {"params": params, "opt_state": {"mu": jax.tree.map(np.zeros_like, params)}, "step": np.int32(7)}
    with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mgr:
        for step in (3, 7):
            mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
        mgr.wait_until_finished()
    r = restore(workdir)
    assert r.step == 7 and r.config.model.d_model == cfg.model.d_model
    jax.tree.map(np.testing.assert_array_equal, r.params, jax.tree.map(np.asarray, params))


def test_restore_without_workdir_config(tmp_path):
    cfg = small_config()
    r = restore(None, cfg)
    assert r.step is None
    try:
        restore(str(tmp_path))
    except FileNotFoundError as e:
        assert "config.json" in str(e)
    else:
        raise AssertionError("expected FileNotFoundError")
