"""Exact resume after SIGKILL of a real training process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.train.conftest import small_config, small_config_overrides
from yoshimidi_jax.train.loop import train
from yoshimidi_jax.train.metrics import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 40


def _command(workdir: str, data: str) -> list[str]:
    return [sys.executable, "-m", "experiments.train", "--config=configs/tiny.py", f"--workdir={workdir}",
            *small_config_overrides(data, STEPS), "--config.train.eval_every=8",
            "--config.train.checkpoint_every=8"]


def _losses(workdir: str) -> dict[int, float]:
    return {r["step"]: r["train/loss"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
            if "train/loss" in r}


@pytest.mark.slow
def test_sigkill_then_same_command_resumes_exactly(tmp_path, train_data):
    cfg = small_config(train_data, STEPS)
    cfg.train.eval_every = 8
    cfg.train.checkpoint_every = 8
    reference = str(tmp_path / "uninterrupted")
    train(cfg, reference)
    expected = _losses(reference)
    assert sorted(expected) == list(range(1, STEPS + 1))

    workdir = str(tmp_path / "killed")
    metrics = os.path.join(workdir, "metrics.jsonl")
    proc = subprocess.Popen(_command(workdir, train_data), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(metrics):
            steps = [s for s in _losses(workdir)]
            if steps and max(steps) >= 20:
                proc.send_signal(signal.SIGKILL)
                killed_at = max(steps)
                break
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert killed_at is not None and killed_at < STEPS, "the run ended before it could be killed"
    assert proc.returncode == -signal.SIGKILL

    second = subprocess.run(_command(workdir, train_data), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = int((second.stdout + second.stderr).split("resumed from step ")[1].split()[0])
    assert 8 <= resumed <= killed_at and resumed % 8 == 0
    got = _losses(workdir)
    assert sorted(got) == list(range(1, STEPS + 1))  # rows after the checkpoint were written once again
    assert got == expected  # bit for bit: same data order, same updates
