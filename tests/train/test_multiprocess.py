"""Two real `experiments.train` processes on 127.0.0.1 (jax.distributed, gloo
collectives on CPU, one CPU device each) against one process reading the same
two data streams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.train.conftest import _free_port, small_config_overrides
from yoshimidi_jax.train.metrics import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 24
# two processes sum the gradient and the loss over two devices (gloo), one
# process over one: the same float32 numbers added in another order. Measured:
# at most 2e-6 apart (3e-7 relative) over these steps; 1e-5 relative leaves room
# for that and still fails on any real difference (another batch moves the loss
# by more than 1e-2).
RTOL = 1e-5


def _flags(data: str, workdir: str, extra=()) -> list[str]:
    return [sys.executable, "-m", "experiments.train", "--config=configs/tiny.py", f"--workdir={workdir}",
            *small_config_overrides(data, STEPS), "--config.data.streams=2", "--config.train.eval_every=12",
            # whole pieces (every test piece is longer than the default crop, and cropped they would all be
            # as long: the two processes' iterator states would then look alike)
            "--config.data.max_piece_tokens=0", *extra]


def _env(port: int, pid: int, n: int = 2, **more) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
               JAX_NUM_PROCESSES=str(n), JAX_PROCESS_ID=str(pid), YOSHIMIDI_DISTRIBUTED_TIMEOUT_S="60")
    env.update(more)
    return env


def _start(data, workdir, port, extra=(), env=None, n=2, pids=None):
    procs = []
    for pid in (range(n) if pids is None else pids):
        e = _env(port, pid, n, **(env or {}))
        procs.append(subprocess.Popen(_flags(data, workdir, extra), env=e, cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    return procs


def _finish(procs, timeout=480) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout + stderr))
    return out


def _losses(workdir: str) -> dict[int, float]:
    return {r["step"]: r["train/loss"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
            if "train/loss" in r}


@pytest.fixture(scope="module")
def runs(train_data, tmp_path_factory):
    """An uninterrupted two-process run and a one-process run of the same batches."""
    root = tmp_path_factory.mktemp("multiprocess")
    two, one = str(root / "two"), str(root / "one")
    procs = _start(train_data, two, _free_port())
    single = subprocess.run(_flags(train_data, one), cwd=ROOT, capture_output=True, text=True, timeout=480,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))
    results = _finish(procs)
    for rc, log in results:
        assert rc == 0, log[-3000:]
    assert single.returncode == 0, single.stderr[-3000:]
    return {"two": two, "one": one, "logs": [log for _, log in results]}


@pytest.mark.slow
def test_two_processes_train_on_the_batches_of_one(runs):
    two, one = _losses(runs["two"]), _losses(runs["one"])
    assert sorted(two) == list(range(1, STEPS + 1)) == sorted(one)  # one row per step: process 0 alone writes
    np.testing.assert_allclose([two[s] for s in sorted(two)], [one[s] for s in sorted(one)], rtol=RTOL, atol=0)
    assert two[STEPS] < two[1] - 0.5  # it learns
    logs = runs["logs"]
    assert "process 0 of 2 reads streams [0] of 2" in logs[0] and "process 1 of 2 reads streams [1] of 2" in logs[1]
    assert "2 device(s)" in logs[0]
    # process 0 alone writes the logs, the samples and the TensorBoard events
    assert len(os.listdir(os.path.join(runs["two"], "tb"))) == 1
    assert sorted(os.listdir(os.path.join(runs["two"], "samples"))) == [
        "step_12.mid", "step_12.png", "step_24.mid", "step_24.png"]
    # each process's data iterator is saved as its own, and they differ
    data = os.path.join(runs["two"], "checkpoints", str(STEPS), "data")
    states = [json.load(open(os.path.join(data, f"process_{i}-of-2.json"))) for i in range(2)]
    assert states[0] != states[1]


def _kill_after_checkpoint(procs, checkpoints: str, step: int, timeout=480) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.isdir(os.path.join(checkpoints, str(step))):
        assert all(p.poll() is None for p in procs), _finish(procs)
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.02)
    for p in procs:
        p.send_signal(signal.SIGKILL)
    for p in procs:
        p.wait()
        assert p.returncode == -signal.SIGKILL  # killed, not finished


def _resumed_from(log: str) -> int:
    line = next(x for x in log.splitlines() if "resumed from step" in x)
    return int(line.split("resumed from step ")[1].split()[0])


@pytest.mark.slow
def test_kill_9_both_then_both_resume_exactly(runs, train_data, tmp_path):
    workdir = str(tmp_path / "run")
    procs = _start(train_data, workdir, _free_port())
    _kill_after_checkpoint(procs, os.path.join(workdir, "checkpoints"), 8)
    results = _finish(_start(train_data, workdir, _free_port()))
    for rc, log in results:
        assert rc == 0, log[-3000:]
    steps = {_resumed_from(log) for _, log in results}
    assert len(steps) == 1 and 8 <= steps.pop() < STEPS  # both from the same step, before the end
    resumed, whole = _losses(workdir), _losses(runs["two"])
    assert sorted(resumed) == list(range(1, STEPS + 1))
    np.testing.assert_array_equal([resumed[s] for s in range(1, STEPS + 1)], [whole[s] for s in range(1, STEPS + 1)])


@pytest.mark.slow
def test_s3_workdir_two_processes_one_uploader(runs, train_data, tmp_path, s3):
    url = f"s3://{s3['bucket']}/runs/mh"
    staging = {"YOSHIMIDI_STAGING": str(tmp_path / "staging_a")}
    procs = _start(train_data, url, _free_port(), env=staging)
    from yoshimidi_jax.storage import local_staging_dir

    local = local_staging_dir(url, staging["YOSHIMIDI_STAGING"])
    _kill_after_checkpoint(procs, os.path.join(local, "checkpoints"), 8)
    # both start again on "another machine": a fresh staging folder, filled from S3
    again = {"YOSHIMIDI_STAGING": str(tmp_path / "staging_b")}
    results = _finish(_start(train_data, url, _free_port(), env=again))
    for rc, log in results:
        assert rc == 0, log[-3000:]
    assert len({_resumed_from(log) for _, log in results}) == 1
    assert "uploaded checkpoint step" in results[0][1]
    assert "uploaded" not in results[1][1] and "pulled step" not in results[1][1]  # process 1 never touches S3
    fresh = local_staging_dir(url, again["YOSHIMIDI_STAGING"])
    resumed, whole = _losses(fresh), _losses(runs["two"])
    assert sorted(resumed) == list(range(1, STEPS + 1))
    np.testing.assert_array_equal([resumed[s] for s in resumed], [whole[s] for s in resumed])


# ------------------------------------------------------------ errors a person can act on


def test_a_missing_process_is_named_with_the_address(train_data, tmp_path):
    port = _free_port()
    quick = {"YOSHIMIDI_DISTRIBUTED_TIMEOUT_S": "3"}
    (rc, log), = _finish(_start(train_data, str(tmp_path / "w"), port, env=quick, n=2, pids=[0]))
    assert rc == 2, log[-2000:]
    assert f"process(es) [1] of 2 did not reach the coordinator at 127.0.0.1:{port} within 3 s" in log
    (rc, log), = _finish(_start(train_data, str(tmp_path / "w"), port, env=quick, n=2, pids=[1]))
    assert rc == 2, log[-2000:]
    assert f"process 1 could not reach process 0 (the coordinator) at 127.0.0.1:{port}" in log
    assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_processes_with_different_configs_both_stop(train_data, tmp_path):
    port = _free_port()
    procs = [subprocess.Popen(_flags(train_data, str(tmp_path / "w"), extra), env=_env(port, pid), cwd=ROOT,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for pid, extra in ((0, ()), (1, ("--config.train.lr=0.002",)))]
    for rc, log in _finish(procs):
        assert rc == 2, log[-2000:]
        assert "different configs" in log and "train.lr: process 0 has 0.001, process 1 has 0.002" in log


def test_a_global_batch_that_does_not_split_is_refused_at_once(train_data, tmp_path):
    (rc, log), = _finish(_start(train_data, str(tmp_path / "w"), _free_port(), pids=[0],
                                extra=("--config.data.batch_size=6", "--config.data.streams=4")))
    assert rc == 2, log[-2000:]
    assert "data.batch_size=6 (the global batch) does not divide into 4 data streams" in log


def test_the_loop_refuses_several_processes_not_started_by_the_entry_point(train_data, tmp_path, monkeypatch):
    """distributed.initialize has one call site, the entry point (before any
    backend starts); train() only checks that it ran where the environment
    asks for several processes, and stops at once where it did not."""
    from tests.train.conftest import small_config
    from yoshimidi_jax.train.distributed import DistributedError, check_initialized
    from yoshimidi_jax.train.loop import train

    two = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{_free_port()}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}
    check_initialized({})  # one process: nothing to start
    check_initialized({**two, "JAX_NUM_PROCESSES": "1"})
    with pytest.raises(DistributedError, match="initialize.*has not run"):
        check_initialized(two)
    for name, value in two.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(DistributedError, match="experiments/train.py does"):
        train(small_config(train_data), str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")
