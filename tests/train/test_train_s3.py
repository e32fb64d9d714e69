"""Training into s3://... on a real S3 server (moto on 127.0.0.1): the run is
mirrored, and a new machine (an empty staging folder) resumes from S3."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.train.conftest import small_config
from yoshimidi_jax.restore import restore
from yoshimidi_jax.sample.step_sample import write_step_sample
from yoshimidi_jax.train.loop import train
from yoshimidi_jax.storage import local_staging_dir, make_fs


def test_train_to_s3_then_resume_from_s3_on_a_fresh_machine(s3, tmp_path, train_data, monkeypatch):
    monkeypatch.setenv("YOSHIMIDI_STAGING", str(tmp_path / "staging"))
    workdir = f"s3://{s3['bucket']}/runs/tiny"
    first = train(small_config(train_data, steps=8), workdir, sample_writer=write_step_sample)
    assert first.step == 8 and first.workdir == local_staging_dir(workdir)

    fs = make_fs(workdir)
    names = {p.split("runs/tiny/", 1)[1] for p in fs.find(f"{s3['bucket']}/runs/tiny")}
    assert {"config.json", "metrics.jsonl", "checkpoints/8.committed", "samples/step_8.mid"} <= names
    assert any(n.startswith("checkpoints/8/") for n in names)
    assert any(n.startswith("tb/events.out.tfevents") for n in names)

    # a fresh machine: nothing local; the same command with more steps
    shutil.rmtree(tmp_path / "staging")
    second = train(small_config(train_data, steps=12), workdir)
    assert second.resumed_from == 8 and second.step == 12
    names = {p.split("runs/tiny/", 1)[1] for p in fs.find(f"{s3['bucket']}/runs/tiny")}
    assert "checkpoints/12.committed" in names
    with fs.open(f"{s3['bucket']}/runs/tiny/metrics.jsonl") as f:
        steps = [json.loads(line)["step"] for line in f.read().decode().splitlines() if "train/loss" in line]
    assert steps == list(range(1, 13))
    assert os.path.isdir(os.path.join(second.workdir, "checkpoints", "12"))

    # sampling / serving on yet another machine restores the newest step from S3
    shutil.rmtree(tmp_path / "staging")
    restored = restore(workdir)
    assert restored.step == 12
    assert restored.config.train.steps == 12
    assert os.path.isdir(os.path.join(local_staging_dir(workdir), "checkpoints", "12"))


def test_restore_from_an_unreachable_s3_names_the_url(monkeypatch, tmp_path):
    monkeypatch.setenv("YOSHIMIDI_STAGING", str(tmp_path / "staging"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(OSError, match="s3://nowhere/runs/x"):
        restore("s3://nowhere/runs/x")
