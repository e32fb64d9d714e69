"""The throughput benchmark's side-by-side modes, at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

TINY = ["--config.model.num_layers=2", "--config.model.d_model=32", "--config.model.num_heads=2",
        "--config.model.max_len=64", "--config.data.seq_len=64", "--config.data.batch_size=2", "--steps=2",
        "--data=/nonexistent"]


def _run(*flags: str) -> dict:
    res = subprocess.run([sys.executable, "-m", "benchmarks.train_throughput", *TINY, *flags], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_versus_torch_times_both_in_alternating_rounds():
    pytest.importorskip("torch", reason="the optional requirements-bench.txt is not installed")
    out = _run("--baseline=torch", "--rounds=2")
    assert out["dims"] == [2, 32, 2, 64, 2]
    assert len(out["rounds_tokens_per_s"]) == len(out["rounds_torch_tokens_per_s"]) == 2
    assert out["tokens_per_s"] > 0 and out["torch_tokens_per_s"] > 0
    assert out["ratio_vs_torch"] == pytest.approx(out["tokens_per_s"] / out["torch_tokens_per_s"], rel=1e-2)


def test_blockwise_relu_config_runs_in_the_benchmark():
    out = _run("--config.model.attention_block=32", "--config.model.activation=relu")
    assert out["tokens_per_s"] > 0 and out["batches"] == "random"
