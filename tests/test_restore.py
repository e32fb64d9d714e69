import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from tests.model.helpers import model_and_params, small_config
from yoshimidi_jax.restore import restore


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
    # device arrays, as init gives: a function that closes over them can be jitted
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(r.params))
    ids = jax.numpy.zeros((1, 8), jax.numpy.int32)
    jax.jit(lambda x: r.model.apply({"params": r.params}, x, x.astype(float), x, x + 1))(ids)


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


def test_restore_bare_params_and_refuse_other_shapes(tmp_path):
    """A checkpoint whose item is the bare params restores; a model of other
    shapes gets an error naming the checkpoint, not wrong params."""
    cfg = small_config()
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(cfg.to_json())
    _, params = model_and_params(cfg, seed=2)
    with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mgr:
        mgr.save(4, args=ocp.args.Composite(params=ocp.args.StandardSave(params)))
        mgr.wait_until_finished()
    r = restore(workdir)
    assert r.step == 4
    jax.tree.map(np.testing.assert_array_equal, r.params, jax.tree.map(np.asarray, params))

    wider = small_config()
    wider.model.d_model = 96
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(wider.to_json())
    try:
        restore(workdir)
    except ValueError as e:
        assert "no params shaped like the model" in str(e) and "checkpoints/4" in str(e)
    else:
        raise AssertionError("expected ValueError")


def test_restore_refuses_a_checkpoint_of_more_layers(tmp_path):
    """Partial restore would quietly read the first layers of a deeper model's
    checkpoint: the array count is checked first."""
    deep, shallow = small_config(), small_config()
    deep.model.num_layers, shallow.model.num_layers = 3, 2
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    _, params = model_and_params(deep, seed=1)
    with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mgr:
        mgr.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave({"params": params, "step": np.int32(2)})))
        mgr.wait_until_finished()
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(shallow.to_json())
    try:
        restore(workdir)
    except ValueError as e:
        assert "arrays saved" in str(e)
    else:
        raise AssertionError("expected ValueError")
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(deep.to_json())
    jax.tree.map(np.testing.assert_array_equal, restore(workdir).params, jax.tree.map(np.asarray, params))
