"""Loading a trained model from a workdir: workdir/config.json (the run's
ml_collections config as JSON) and the latest orbax checkpoint under
workdir/checkpoints (CheckpointManager layout: checkpoints/<step>/<item>/).

The params are found inside the restored item by shape: the first subtree
whose leaf paths and shapes equal the model's (so a train state
{'params': ..., 'opt_state': ..., 'step': ...} or bare params both work).
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

from yoshimidi_jax.model import Transformer, init_params, make_model
from yoshimidi_jax import config as config_lib


@dataclasses.dataclass
class Restored:
    config: ml_collections.ConfigDict
    model: Transformer
    params: Any
    step: int | None  # None: random init
    message: str


def load_config(workdir: str) -> ml_collections.ConfigDict | None:
    """The run's config.json, or None where the workdir has none."""
    path = os.path.join(workdir, "config.json")
    return config_lib.load_config(path) if os.path.exists(path) else None


def latest_step(workdir: str) -> int | None:
    from yoshimidi_jax.storage import local_steps

    steps = local_steps(workdir)
    return steps[-1] if steps else None


def _flat(tree: Any) -> dict[str, tuple[int, ...]]:
    return {
        jax.tree_util.keystr(path): tuple(np.shape(leaf))
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def find_params(tree: Any, like: Any) -> Any | None:
    """The first subtree of `tree` shaped like `like` (dicts walked depth first,
    a key named 'params' before the others: optimizer moments share the shape)."""
    if _flat(tree) == _flat(like):
        return tree
    if isinstance(tree, dict):
        keys = sorted(tree, key=lambda k: k != "params")
        for value in (tree[k] for k in keys):
            found = find_params(value, like)
            if found is not None:
                return found
    return None


def restore_params(workdir: str, step: int, like: Any) -> Any:
    import orbax.checkpoint as ocp

    step_dir = os.path.abspath(os.path.join(workdir, "checkpoints", str(step)))
    items = sorted(d for d in os.listdir(step_dir) if os.path.isdir(os.path.join(step_dir, d)))
    errors = []
    with ocp.StandardCheckpointer() as ckptr:
        for item in items:
            try:
                tree = ckptr.restore(os.path.join(step_dir, item))
            except Exception as e:  # noqa: BLE001  (an item of another kind: json, grain state...)
                errors.append(f"{item}: {type(e).__name__}: {e}")
                continue
            found = find_params(tree, like)
            if found is not None:
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
    saved = load_config(workdir) if workdir else None
    cfg = saved if saved is not None else config
    if cfg is None:
        raise FileNotFoundError(
            f"no config: {os.path.join(workdir or '.', 'config.json')} does not exist and no --config was given"
        )
    model = make_model(cfg.model)
    like = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
    step = latest_step(workdir) if workdir else None
    if step is None:
        where = os.path.join(workdir, "checkpoints") if workdir else "(no --workdir)"
        params = init_params(model, jax.random.key(seed))
        return Restored(cfg, model, params, None, f"no checkpoint in {where}: using random-init params (seed {seed})")
    params = restore_params(workdir, step, like)
    return Restored(cfg, model, params, step, f"restored params of step {step} from {workdir}/checkpoints")
