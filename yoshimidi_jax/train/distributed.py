"""Several processes as one run: JAX's own multi-process runtime
(`jax.distributed`, gloo collectives on CPU), started before anything touches
a backend, with a check first that turns the usual mistakes into errors a
person can act on.

A run is multi-process when JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID are set (each process: the same address, host:port of process
0; the same count; its own id), or on a SLURM step of several tasks (jax reads
the cluster from SLURM's variables; no check then).

The check (a rendezvous on the coordinator's port, before jax binds it):
process 0 waits for every other process to say hello with its id and config;
then every process either goes on or stops with the same message: which
process ids did not come (and where they were awaited), which config fields
differ between processes, duplicate ids, or a global batch that does not
split over the processes. jax's own runtime, given the same mistakes, aborts
the process from C++ after its timeout with a gRPC status.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Mapping

import ml_collections

from yoshimidi_jax.config import ConfigError, flatten, process_split_errors

log = logging.getLogger(__name__)

TIMEOUT_ENV = "YOSHIMIDI_DISTRIBUTED_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0


class DistributedError(RuntimeError):
    """The processes of a run cannot start together: says which and why."""


@dataclasses.dataclass(frozen=True)
class Cluster:
    coordinator: str  # host:port of process 0
    num_processes: int
    process_id: int

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.coordinator.rpartition(":")
        return host.strip("[]"), int(port)


def cluster_from_env(environ: Mapping[str, str] = os.environ) -> Cluster | None:
    """The cluster the JAX_* variables describe; None when not set."""
    address = environ.get("JAX_COORDINATOR_ADDRESS", "")
    if not address:
        return None
    values = {}
    for name in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        raw = environ.get(name, "")
        try:
            values[name] = int(raw)
        except ValueError:
            raise DistributedError(f"JAX_COORDINATOR_ADDRESS={address} is set, so {name} must be an integer; "
                                   f"got {raw!r}") from None
    n, pid = values["JAX_NUM_PROCESSES"], values["JAX_PROCESS_ID"]
    if n < 1 or not 0 <= pid < n:
        raise DistributedError(f"JAX_PROCESS_ID={pid} must be in [0, JAX_NUM_PROCESSES={n})")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DistributedError(f"JAX_COORDINATOR_ADDRESS={address!r} must be host:port (of process 0)")
    return Cluster(address, n, pid)


def _slurm_tasks(environ: Mapping[str, str]) -> int:
    try:
        return int(environ.get("SLURM_NTASKS", "1")) if "SLURM_JOB_ID" in environ else 1
    except ValueError:
        return 1


def config_fields(cfg: ml_collections.ConfigDict, workdir: str) -> dict[str, str]:
    """What must be the same in every process: each config field (as text) and the workdir."""
    fields = {k: json.dumps(v, sort_keys=True, default=str) for k, v in flatten(cfg.to_dict()).items()}
    return {"workdir": workdir, **fields}


def initialize(cfg: ml_collections.ConfigDict, workdir: str, environ: Mapping[str, str] = os.environ) -> None:
    """Starts the multi-process runtime when the environment asks for one (a
    no-op otherwise, and when already started). Must run before any JAX call
    that starts a backend (jax.devices(), an array op). Raises
    DistributedError or ConfigError, in every process alike."""
    import jax

    if jax.distributed.is_initialized():
        return
    cluster = cluster_from_env(environ)
    if cluster is None:
        if _slurm_tasks(environ) > 1:
            log.info("SLURM step of %d tasks: jax.distributed.initialize() from SLURM's variables",
                     _slurm_tasks(environ))
            jax.distributed.initialize()
        return
    if cluster.num_processes == 1:
        return
    errors = process_split_errors(cfg, cluster.num_processes)
    if errors:
        raise ConfigError("invalid config for " f"{cluster.num_processes} processes:\n  " + "\n  ".join(errors))
    timeout_s = float(environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    rendezvous(cluster, config_fields(cfg, workdir), timeout_s)
    jax.distributed.initialize(cluster.coordinator, cluster.num_processes, cluster.process_id,
                               initialization_timeout=max(int(timeout_s), 1))
    log.info("process %d of %d (coordinator %s): %d local device(s) of %d", jax.process_index(),
             jax.process_count(), cluster.coordinator, jax.local_device_count(), jax.device_count())


def check_initialized(environ: Mapping[str, str] = os.environ) -> None:
    """Raises DistributedError when the environment asks for several
    processes and `initialize` has not run (it must run first, in the entry
    point, before anything starts a backend). Starts nothing."""
    import jax

    cluster = cluster_from_env(environ)
    several = cluster.num_processes > 1 if cluster is not None else _slurm_tasks(environ) > 1
    if several and not jax.distributed.is_initialized():
        raise DistributedError("this environment asks for several processes, but "
                               "yoshimidi_jax.train.distributed.initialize(cfg, workdir) has not run: call it "
                               "first, before anything starts a JAX backend (experiments/train.py does)")


# ----------------------------------------------------------------- rendezvous


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall((json.dumps(message) + "\n").encode())


def _receive(conn: socket.socket, deadline: float) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        conn.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return json.loads(data)


def _differences(fields: dict[str, dict[str, str]]) -> list[str]:
    """'field: process 0 has X, process 1 has Y' for each field that differs."""
    out = []
    names = sorted(set().union(*fields.values()))
    for name in names:
        values = {pid: f.get(name, "<missing>") for pid, f in sorted(fields.items())}
        if len(set(values.values())) > 1:
            out.append(f"{name}: " + ", ".join(f"process {pid} has {v}" for pid, v in values.items()))
    return out


def rendezvous(cluster: Cluster, fields: dict[str, str], timeout_s: float) -> None:
    """Every process meets process 0 on the coordinator's port and compares
    configs; raises DistributedError in each of them if it cannot start."""
    if cluster.process_id == 0:
        _host(cluster, fields, timeout_s)
    else:
        _join(cluster, fields, timeout_s)


def _host(cluster: Cluster, fields: dict[str, str], timeout_s: float) -> None:
    n, address = cluster.num_processes, cluster.coordinator
    deadline = time.monotonic() + timeout_s
    server = socket.create_server(("", cluster.host_port[1]))  # SO_REUSEADDR: jax binds the port next
    server.settimeout(0.5)
    arrived: dict[int, tuple[socket.socket, dict[str, str]]] = {}
    problems: list[str] = []
    try:
        while len(arrived) < n - 1 and time.monotonic() < deadline:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            try:
                hello = _receive(conn, time.monotonic() + 10.0)
            except (OSError, ValueError):
                conn.close()
                continue
            pid = hello.get("process_id")
            if hello.get("num_processes") != n:
                problems.append(f"process {pid} was started with JAX_NUM_PROCESSES={hello.get('num_processes')}, "
                                f"process 0 with {n}")
            if pid in arrived or pid == 0:
                problems.append(f"two processes were started with JAX_PROCESS_ID={pid}")
                _send(conn, {"error": problems[-1]})
                conn.close()
                continue
            arrived[pid] = (conn, hello.get("fields", {}))
        missing = sorted(set(range(1, n)) - set(arrived))
        if missing:
            problems.append(
                f"process(es) {missing} of {n} did not reach the coordinator at {address} within {timeout_s:g} s "
                f"(processes {sorted([0, *arrived])} did); start each with JAX_COORDINATOR_ADDRESS={address} "
                f"JAX_NUM_PROCESSES={n} JAX_PROCESS_ID=<its id>, or raise {TIMEOUT_ENV}")
        differ = _differences({0: fields, **{pid: f for pid, (_, f) in arrived.items()}})
        if differ:
            problems.append("the processes were started with different configs (every field must be the same):\n    "
                            + "\n    ".join(differ))
        verdict = {"error": "\n".join(problems)} if problems else {"ok": True}
        for conn, _ in arrived.values():
            try:
                _send(conn, verdict)
                conn.settimeout(5.0)
                conn.recv(1)  # the other side closes first: the port is left free for jax
            except OSError:
                pass
            conn.close()
    finally:
        for conn, _ in arrived.values():
            conn.close()
        server.close()
    if problems:
        raise DistributedError("\n".join(problems))


def _join(cluster: Cluster, fields: dict[str, str], timeout_s: float) -> None:
    host, port = cluster.host_port
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=2.0)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise DistributedError(
                    f"process {cluster.process_id} could not reach process 0 (the coordinator) at "
                    f"{cluster.coordinator} within {timeout_s:g} s: is process 0 running, with this "
                    f"JAX_COORDINATOR_ADDRESS? (raise {TIMEOUT_ENV} to wait longer)") from None
            time.sleep(0.25)
    with conn:
        _send(conn, {"process_id": cluster.process_id, "num_processes": cluster.num_processes, "fields": fields})
        try:
            verdict = _receive(conn, deadline + 30.0)  # process 0 answers by its own deadline
        except (OSError, ValueError) as e:
            raise DistributedError(f"process 0 at {cluster.coordinator} closed the rendezvous without an answer "
                                   f"({e}); see its log") from None
    if "error" in verdict:
        raise DistributedError(verdict["error"])
