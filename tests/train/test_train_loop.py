"""The training loop: it learns, writes what it promises, guards NaNs, and
refuses bad configs before any work starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.train.conftest import small_config
from yoshimidi_jax.config import ConfigError, check_config
from yoshimidi_jax.sample.step_sample import write_step_sample
from yoshimidi_jax.train.loop import NonFiniteError, train
from yoshimidi_jax.train.metrics import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_short_run_writes_everything_and_loss_falls(tmp_path, train_data):
    cfg = small_config(train_data, steps=12)
    cfg.train.lr = 3e-3
    workdir = str(tmp_path / "run")
    result = train(cfg, workdir, sample_writer=write_step_sample)
    assert result.step == 12 and result.resumed_from is None
    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    train_rows = [r for r in rows if "train/loss" in r]
    eval_rows = [r for r in rows if "eval/loss" in r]
    assert [r["step"] for r in train_rows] == list(range(1, 13))
    assert [r["step"] for r in eval_rows] == [4, 8, 12]
    assert train_rows[-1]["train/loss"] < train_rows[0]["train/loss"] - 0.5
    for key in ("train/loss/note_on", "train/loss/time", "train/accuracy/note_on", "train/learning_rate",
                "train/grad_norm", "train/tokens_per_s", "eval/loss/control", "eval/time_mae_s"):
        assert key in train_rows[-1] or key in eval_rows[-1], key
    assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())[-1] == 12
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(workdir, "tb")))
    for step in (4, 8, 12):
        assert os.path.getsize(os.path.join(workdir, "samples", f"step_{step}.mid")) > 0
        assert os.path.getsize(os.path.join(workdir, "samples", f"step_{step}.png")) > 1000
    saved = json.load(open(os.path.join(workdir, "config.json")))
    assert saved["train"]["steps"] == 12 and saved["model"]["d_model"] == 32
    assert saved["train"]["decay_steps"] == 12  # fixed at the first start
    # the sampler restores these params
    from yoshimidi_jax.restore import restore

    assert restore(workdir).step == 12


def test_keeps_last_n_plus_best(tmp_path, train_data):
    cfg = small_config(train_data, steps=20)
    cfg.train.lr = 3e-3
    workdir = str(tmp_path / "run")
    train(cfg, workdir)
    steps = sorted(int(s) for s in os.listdir(os.path.join(workdir, "checkpoints")) if s.isdigit())
    evals = {r["step"]: r["eval/loss"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl"))
             if "eval/loss" in r}
    best = min(evals, key=evals.get)
    assert steps[-2:] == [16, 20]
    assert set(steps) == {16, 20, best}


def test_non_finite_loss_stops_with_step_and_batch(tmp_path, train_data):
    cfg = small_config(train_data, steps=50)
    cfg.train.lr = 1e6  # diverges within a few steps
    cfg.train.grad_clip = 0.0
    cfg.train.warmup_steps = 1
    workdir = str(tmp_path / "run")
    with pytest.raises(NonFiniteError) as e:
        train(cfg, workdir)
    message = str(e.value)
    step = int(message.split("not finite at step ")[1].split(";")[0])
    batch_file = os.path.join(workdir, f"nonfinite_batch_step_{step}.npz")
    assert batch_file in message and os.path.exists(batch_file)
    assert set(np.load(batch_file).files) >= {"inputs", "targets", "loss_mask"}
    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    assert all(np.isfinite(r["train/loss"]) for r in rows if "train/loss" in r)
    assert max(r["step"] for r in rows) < step


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("model.d_model", 33, "not divisible by model.num_heads"),
        ("data.seq_len", 128, "> model.max_len"),
        ("train.steps", 0, "train.steps=0"),
        ("model.positional", "alibi", "'rope' or 'learned'"),
        ("data.p_drop_control_press", 1.5, "probability"),
        ("data.p_drop_control_sequence", -0.1, "probability"),
        ("data.max_piece_tokens", -1, "an integer >= 0"),
        ("data.read_threads", -1, "an integer >= 0"),
        ("data.prefetch_pieces", -4, "an integer >= 0"),
        ("data.path", "/nonexistent/data", "run `python -m experiments.prepare"),
    ],
)
def test_bad_config_is_a_clear_error(train_data, field, value, words):
    cfg = small_config(train_data)
    section, key = field.split(".")
    cfg[section][key] = value
    with pytest.raises(ConfigError) as e:
        check_config(cfg)
    assert words in str(e.value) and field in str(e.value)


@pytest.mark.parametrize(
    "flag, words",
    [
        ("--config.model.no_such_field=1", "no_such_field"),
        ("--config.train.steps=many", "many"),
        ("--config.data.batch_size=2.5", "2.5"),
        ("--config.model.d_model=33", "not divisible by model.num_heads"),
    ],
)
def test_cli_refuses_unknown_and_ill_typed_fields(tmp_path, train_data, flag, words):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.train", "--config=configs/tiny.py", f"--workdir={tmp_path}/w",
         f"--config.data.path={train_data}", flag],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert words in proc.stderr, proc.stderr[-2000:]
    assert not os.path.exists(os.path.join(tmp_path, "w", "checkpoints"))


def test_resume_refuses_a_changed_model(tmp_path, train_data):
    workdir = str(tmp_path / "run")
    train(small_config(train_data, steps=4), workdir)
    cfg = small_config(train_data, steps=8)
    cfg.model.d_model = 64
    with pytest.raises(ConfigError, match="model.d_model"):
        train(cfg, workdir)


def test_a_run_saved_with_retired_fields_resumes(tmp_path, train_data):
    """config.json of runs made before model.dropout / model.num_velocity_bins
    were removed, or before data.streams / data.read_threads /
    data.prefetch_pieces were added, still resumes (how the data is read ahead
    may change on resume: it never changes a batch); a genuinely changed field
    is still refused."""
    workdir = str(tmp_path / "run")
    train(small_config(train_data, steps=4), workdir)
    path = os.path.join(workdir, "config.json")
    saved = json.load(open(path))
    assert "dropout" not in saved["model"] and saved["data"]["streams"] == 0
    saved["model"].update(dropout=0.0, num_velocity_bins=32)
    for added_later in ("streams", "read_threads", "prefetch_pieces"):
        del saved["data"][added_later]
    with open(path, "w") as f:
        json.dump(saved, f)
    cfg = small_config(train_data, steps=6)
    cfg.data.read_threads, cfg.data.prefetch_pieces = 0, 0
    train(cfg, workdir)
    again = json.load(open(path))
    assert again["model"].keys() == saved["model"].keys() - {"dropout", "num_velocity_bins"}
    assert again["data"]["streams"] == 0
    assert (again["data"]["read_threads"], again["data"]["prefetch_pieces"]) == (0, 0)
    saved["model"]["mlp_ratio"] = 2
    with open(path, "w") as f:
        json.dump(saved, f)
    with pytest.raises(ConfigError, match="model.mlp_ratio"):
        train(small_config(train_data, steps=8), workdir)
