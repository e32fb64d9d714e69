"""Loading a trained model from a workdir: workdir/config.json (the run's
ml_collections config as JSON) and the latest orbax checkpoint under
workdir/checkpoints (CheckpointManager layout: checkpoints/<step>/<item>/).

The params are read with orbax's partial restore: the `params` subtree of
the train state ({'params', 'opt_state', 'step'}), or an item that is the
bare params; the optimizer state is never read.
Where no checkpoint exists, params are a random init, with a message saying so.
A remote workdir (s3://bucket/prefix) is first brought into its local staging
dir (yoshimidi_jax/storage: the newest committed step, config.json), then read there.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from yoshimidi_jax import config as config_lib
from yoshimidi_jax.model import Transformer, init_params, make_model
from yoshimidi_jax.storage.paths import CHECKPOINTS, STATE_ITEM


@dataclasses.dataclass
class Restored:
    config: ml_collections.ConfigDict
    model: Transformer
    params: Any
    step: int | None  # None: random init
    message: str


def load_run_config(workdir: str) -> ml_collections.ConfigDict | None:
    """The run's config.json, or None where the workdir has none."""
    path = os.path.join(workdir, "config.json")
    return config_lib.load_config(path) if os.path.exists(path) else None


def latest_step(workdir: str) -> int | None:
    from yoshimidi_jax.storage import local_steps

    steps = local_steps(workdir)
    return steps[-1] if steps else None


def restore_params(workdir: str, step: int, like: Any) -> Any:
    """The params of checkpoint `step`, read with orbax's partial restore:
    only the `params` subtree of the train state (the optimizer's moments,
    twice the size, are never read), or a checkpoint item that is the bare
    params. `like`: the params' shapes (jax.eval_shape of the init)."""
    import orbax.checkpoint as ocp

    step_dir = os.path.abspath(os.path.join(workdir, CHECKPOINTS, str(step)))
    items = sorted(d for d in os.listdir(step_dir) if os.path.isdir(os.path.join(step_dir, d)))
    errors = []
    as_numpy = lambda tree: jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)  # noqa: E731
    with ocp.PyTreeCheckpointer() as ckptr:
        for item in sorted(items, key=lambda name: name != STATE_ITEM):  # the train loop's item first
            path = os.path.join(step_dir, item)
            try:
                saved = ckptr.metadata(path).item_metadata
            except Exception as e:  # noqa: BLE001  (not a pytree item)
                errors.append(f"{item}: {type(e).__name__}: {str(e)[:200]}")
                continue
            for target, pick in (({"params": like}, lambda t: t["params"]), (like, lambda t: t)):
                try:
                    # partial restore ignores arrays the target does not name: count them first
                    n_saved = len(jax.tree.leaves(pick(saved)))
                    if n_saved != len(jax.tree.leaves(like)):
                        raise ValueError(f"{n_saved} arrays saved, the model has {len(jax.tree.leaves(like))}")
                    tree = ckptr.restore(path, args=ocp.args.PyTreeRestore(
                        item=target, restore_args=as_numpy(target), partial_restore=True))
                except Exception as e:  # noqa: BLE001  (another kind of item: json, grain state; or other shapes)
                    errors.append(f"{item}: {type(e).__name__}: {str(e)[:200]}")
                    continue
                found = pick(tree)
                if any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(found)):
                    errors.append(f"{item}: no {'params subtree' if 'params' in target else 'bare params'}")
                    continue  # partial restore leaves what the checkpoint lacks as it was given
                wrong = [jax.tree_util.keystr(k) for (k, a), b in zip(jax.tree_util.tree_flatten_with_path(found)[0],
                                                                      jax.tree.leaves(like)) if a.shape != b.shape]
                if wrong:  # orbax restores the saved shapes whatever the target says
                    errors.append(f"{item}: shapes differ from the model's at {wrong[:3]}")
                    continue
                return jax.tree.map(lambda x: np.asarray(x, np.float32), found)
    raise ValueError(
        f"no params shaped like the model in checkpoint {step_dir} (items {items}); " + "; ".join(errors)
    )


def fetch_remote(workdir: str) -> str:
    """A local dir holding `workdir`'s newest committed checkpoint and config:
    the workdir itself when local; for s3://... its staging dir, filled from
    the remote (raises, naming the URL, where the remote cannot be read)."""
    from yoshimidi_jax.storage import WorkdirMirror, is_remote, local_staging_dir

    if not is_remote(workdir):
        return workdir
    local = local_staging_dir(workdir)
    mirror = WorkdirMirror(workdir, local)
    try:
        mirror.restore_latest()
    except Exception as e:  # noqa: BLE001
        raise OSError(f"cannot read the run at {workdir}: {type(e).__name__}: {e}") from e
    finally:
        mirror.close(timeout_s=5.0)
    return local


def restore(
    workdir: str | None, config: ml_collections.ConfigDict | None = None, seed: int = 0
) -> Restored:
    """config: used when the workdir has no config.json (or there is no workdir).
    workdir may be local or remote (s3://...)."""
    if workdir:
        workdir = fetch_remote(workdir)
    saved = load_run_config(workdir) if workdir else None
    cfg = saved if saved is not None else config
    if cfg is None:
        raise FileNotFoundError(
            f"no config: {os.path.join(workdir or '.', 'config.json')} does not exist and no --config was given"
        )
    model = make_model(cfg.model)
    like = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
    step = latest_step(workdir) if workdir else None
    if step is None:
        where = os.path.join(workdir, CHECKPOINTS) if workdir else "(no --workdir)"
        params = init_params(model, jax.random.key(seed))
        return Restored(cfg, model, params, None, f"no checkpoint in {where}: using random-init params (seed {seed})")
    params = jax.device_put(restore_params(workdir, step, like))  # device arrays, like init_params gives
    return Restored(cfg, model, params, step, f"restored params of step {step} from {workdir}/checkpoints")
