"""Devices and shardings: a 1-D `data` mesh over every device of every host.

Batches are sharded on their leading axis; params and optimizer state are
replicated, or sharded over the same axis on their largest dimension when
`fsdp` is on (each device then keeps 1/N of them; XLA gathers what a layer
needs). The same code runs on 1 CPU, 8 GPUs or 8 hosts (train/distributed.py
starts the multi-process runtime first).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: list | None = None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def param_sharding(mesh: Mesh, params: Any, fsdp: bool) -> Any:
    """Replicated, or (fsdp) sharded on the largest axis divisible by the mesh size."""
    n = mesh.shape[DATA_AXIS]

    def one(x):
        if not fsdp or n == 1:
            return replicated(mesh)
        shape = np.shape(x)
        axes = [i for i in np.argsort(shape)[::-1] if shape[i] % n == 0 and shape[i] >= n]
        if not axes:
            return replicated(mesh)
        spec = [None] * len(shape)
        spec[axes[0]] = DATA_AXIS
        return NamedSharding(mesh, P(*spec))

    return jax.tree.map(one, params)


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's part of the global batch -> global arrays sharded on `data`."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}
