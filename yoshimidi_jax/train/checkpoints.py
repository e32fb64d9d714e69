"""Orbax checkpoints of a run: the train state, the grain iterator state and
the config, saved together per step under <workdir>/checkpoints/<step>/.

Orbax writes each step into a temporary folder and renames it when complete,
so an interrupted save never hides the last good step. Kept: the last
`keep` steps plus the best by eval loss.
"""

from __future__ import annotations

import os
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from yoshimidi_jax.storage.paths import STATE_ITEM


class RunCheckpoints:
    def __init__(self, directory: str, keep: int, async_save: bool = True):
        self.directory = os.path.abspath(directory)
        policy = pp.AnyPreservationPolicy([
            pp.LatestN(n=keep),
            pp.BestN(get_metric_fn=lambda m: -m["eval_loss"], n=1, keep_checkpoints_without_metrics=False),
        ])
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policy, enable_async_checkpointing=async_save, create=True,
            cleanup_tmp_directories=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(
        self, step: int, state: Any, iterator: grain.DatasetIterator, config: ml_collections.ConfigDict,
        eval_loss: float | None = None,
    ) -> None:
        args = ocp.args.Composite(**{
            STATE_ITEM: ocp.args.StandardSave(state),
            "data": grain.checkpoint.CheckpointSave(iterator),
            "config": ocp.args.JsonSave(config.to_dict()),
        })
        metrics = {"eval_loss": float(eval_loss)} if eval_loss is not None else None
        self.manager.save(step, args=args, metrics=metrics, force=True)

    def restore(self, step: int, abstract_state: Any, iterator: grain.DatasetIterator) -> Any:
        """Restores the state (with the shardings of abstract_state) and sets the
        iterator to where it was at `step`."""
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(**{
                STATE_ITEM: ocp.args.StandardRestore(abstract_state),
                "data": grain.checkpoint.CheckpointRestore(iterator),
            }),
        )
        return restored[STATE_ITEM]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_like(state: Any, shardings: Any) -> Any:
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)
