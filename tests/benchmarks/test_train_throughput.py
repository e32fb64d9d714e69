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


def test_step_profile_sums_the_step_into_its_parts():
    """The profile attributes the traced step's XLA ops to the model's parts
    (forward and backward apart), and the attention and MLP are among them."""
    res = subprocess.run([sys.executable, "-m", "benchmarks.step_profile", *TINY], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])["jax"]
    parts = out["parts_ms"]
    assert out["step_wall_ms"] > 0 and out["thread_ms"] > 0
    assert sum(parts.values()) == pytest.approx(out["thread_ms"], rel=0.05)
    for part in ("attention: scores, softmax, weighted sum [forward]", "attention: scores, softmax, weighted sum [backward]",
                 "mlp: up/down matmuls [forward]", "norms [backward]"):
        assert parts.get(part, 0) > 0, (part, parts)
    # ops the profile could not place are a small share (the names of the step's own ops cover it)
    assert out["share"].get("runtime (copies, params)", 0) < 0.2


def test_part_of_reads_flax_paths_and_the_backward():
    from benchmarks.step_profile import part_of

    assert part_of("jit(f)/jvp(Transformer)/block_0/mlp/up/dot_general") == "mlp: up/down matmuls [forward]"
    assert part_of("jit(f)/transpose(jvp(Transformer))/block_3/attn/attend/exp") == \
        "attention: scores, softmax, weighted sum [backward]"
    assert part_of("jit(f)/jvp(Transformer)/block_1/attn/rope/mul") == "attention: rope [forward]"
    assert part_of("jit(f)/jvp(loss)/reduce_sum") == "loss and metrics [forward]"
    assert part_of("jit(f)/add") == "optimizer, metrics, glue"
