"""The small prepared dataset (tests/conftest.py few_prepared) as train_data, a very
small config for training tests, and a real S3 server (moto) for the s3:// tests."""

from __future__ import annotations

import logging
import os
import socket
import urllib.request

import pytest
from moto import server as moto_server

from yoshimidi_jax.storage import make_fs


@pytest.fixture(scope="session")
def train_data(few_prepared) -> str:
    return few_prepared


def small_config(data_path: str, steps: int = 12):
    from configs.tiny import get_config

    c = get_config()
    c.model.num_layers = 2
    c.model.d_model = 32
    c.model.num_heads = 2
    c.model.max_len = 64
    c.data.path = data_path
    c.data.seq_len = 64
    c.data.batch_size = 8
    c.train.steps = steps
    c.train.warmup_steps = 2
    c.train.log_every = 1
    c.train.eval_every = 4
    c.train.eval_batches = 2
    c.train.checkpoint_every = 4
    c.train.keep_checkpoints = 2
    c.train.sample_events = 16
    c.train.progress = False
    return c


def small_config_overrides(data_path: str, steps: int) -> list[str]:
    """The same as small_config, as command-line flags (for subprocess runs)."""
    c = small_config(data_path, steps)
    out = []
    for section in ("model", "data", "train"):
        for key in ("num_layers", "d_model", "num_heads", "max_len", "path", "seq_len", "batch_size", "steps",
                    "warmup_steps", "log_every", "eval_every", "eval_batches", "checkpoint_every",
                    "keep_checkpoints", "sample_events", "progress"):
            if key in c[section]:
                out.append(f"--config.{section}.{key}={c[section][key]}")
    return out


# --- a real S3 server (moto) on 127.0.0.1 -------------------------------




def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int):
    srv = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    return srv


def _stop(srv) -> None:
    srv.stop()
    # ThreadedMotoServer.stop() only ends serve_forever(); close the listening
    # socket too, so the port really refuses connections (and can be reused).
    srv._server.server_close()


@pytest.fixture
def s3(monkeypatch):
    """A moto S3 server; yields a dict with port, a restart helper and a fresh bucket."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    for k in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    state = {"port": port, "srv": _start(port)}
    # moto keeps its state in-process: start each test from an empty S3
    _reset_moto(port)
    bucket = "bkt-" + os.urandom(4).hex()
    make_fs("s3://x").mkdir(bucket)
    state["bucket"] = bucket
    yield state
    if state["srv"] is not None:
        _stop(state["srv"])


def _reset_moto(port: int) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
