"""The live instrument's test helpers: real server subprocesses
(`python -m experiments.serve --config=configs/tiny.py`, a random-init tiny
model) and a small synchronous websocket client.

Starting a server costs ~10-40 s on 2 cores, so most tests share one
session-scoped server (`server`); tests that need special flags or a restart
start their own with `start_server(...)`, which stops it at teardown.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT_S = float(os.environ.get("YOSHIMIDI_SERVE_START_TIMEOUT_S", "180"))
SERVING = re.compile(r"serving .* on http://(127\.0\.0\.1):(\d+)")


class ServerProcess:
    """One `experiments.serve` subprocess; `url`/`port` once it listens."""

    def __init__(self, logdir: str, *flags: str, port: int = 0, warmup: bool = False, name: str = "serve"):
        self.flags = list(flags)
        self.warmup = warmup
        self.logdir = logdir
        self.name = name
        self.requested_port = port
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.stdout_path = self.stderr_path = ""
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> "ServerProcess":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        port = self.requested_port if port is None else port
        self.starts += 1
        tag = f"{self.name}-{self.starts}"
        self.stdout_path = os.path.join(self.logdir, f"{tag}.stdout")
        self.stderr_path = os.path.join(self.logdir, f"{tag}.stderr")
        cmd = [sys.executable, "-m", "experiments.serve", "--config=configs/tiny.py", f"--port={port}",
               f"--warmup={'true' if self.warmup else 'false'}", "--seed=0", *self.flags]
        env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"}
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with open(self.stdout_path) as f:
                m = SERVING.search(f.read())
            if m:
                self.port = int(m.group(2))
                if port:
                    assert self.port == port, f"asked for port {port}, the server says {self.port}"
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the server did not start ({' '.join(cmd)}; exit {self.proc.returncode}):\n"
                    f"--- stdout ---\n{self._read(self.stdout_path)}\n--- stderr ---\n"
                    f"{self._read(self.stderr_path)[-6000:]}")

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 15.0) -> None:
        """Stops the server (only this process, by its id)."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        try:
            p.send_signal(sig)
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    def kill(self) -> None:
        """Kills it hard, as a crash would (SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stderr_tail(self, n: int = 4000) -> str:
        return self._read(self.stderr_path)[-n:] if self.stderr_path else ""

    @staticmethod
    def _read(path: str) -> str:
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- HTTP -------------------------------------------------------------------
    def get(self, path: str) -> tuple[int, dict, bytes]:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.status, dict(r.headers), r.read()

    def stats(self) -> dict:
        return json.loads(self.get("/api/stats")[2])

    def wait_stats(self, pred, timeout_s: float = 10.0) -> dict:
        """Polls /api/stats until pred(stats) holds; returns the last stats (the caller asserts)."""
        deadline = time.monotonic() + timeout_s
        s = self.stats()
        while not pred(s) and time.monotonic() < deadline:
            time.sleep(0.05)
            s = self.stats()
        return s


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory):
    """start(*flags, port=0, warmup=False, name=...) -> a running ServerProcess,
    stopped at the end of the session (tests stop theirs earlier with .stop())."""
    logdir = str(tmp_path_factory.mktemp("serve_logs"))
    started: list[ServerProcess] = []

    def start(*flags: str, port: int = 0, warmup: bool = False, name: str = "serve") -> ServerProcess:
        s = ServerProcess(logdir, *flags, port=port, warmup=warmup, name=name)
        started.append(s)
        return s.start()

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def start_server(server_factory):
    """Like server_factory, but each server is stopped when the test ends."""
    mine: list[ServerProcess] = []

    def start(*flags: str, **kw) -> ServerProcess:
        s = server_factory(*flags, **kw)
        mine.append(s)
        return s

    yield start
    for s in mine:
        s.stop()


@pytest.fixture(scope="session")
def server(server_factory) -> ServerProcess:
    """The shared server: default limits spelled out, compiling lazily."""
    return server_factory("--max_sessions=64", "--messages_per_s=60", "--burst=120", "--idle_timeout_s=600",
                          name="shared")


# -- a small websocket client ----------------------------------------------------------

class Client:
    """A synchronous websocket client speaking the play protocol; `hello` is the
    server's first message. Every press gets an increasing `t` unless given."""

    def __init__(self, ws_url: str, origin: str | None = None, timeout_s: float = 60.0, expect_hello: bool = True):
        from websockets.sync.client import connect

        self.timeout_s = timeout_s
        self.ws = connect(ws_url, origin=origin, open_timeout=30, close_timeout=5, max_size=1 << 22)
        self.t = 0.0
        self.next_id = 1
        self.hello: dict | None = None
        if expect_hello:
            self.hello = self.recv()
            assert self.hello["type"] == "hello", self.hello

    def tick(self, ms: float = 50.0) -> float:
        self.t += ms
        return self.t

    def send(self, msg: dict | str | bytes) -> None:
        if isinstance(msg, dict) and isinstance(msg.get("t"), (int, float)):
            self.t = max(self.t, msg["t"])  # later ticks follow it
        self.ws.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))

    def recv(self, timeout_s: float | None = None) -> dict:
        return json.loads(self.ws.recv(timeout=self.timeout_s if timeout_s is None else timeout_s))

    def request(self, msg: dict | str | bytes, timeout_s: float | None = None) -> dict:
        self.send(msg)
        return self.recv(timeout_s)

    def press(self, keys: list[int], velocity: int = 80, t: float | None = None, msg_id: int | None = None,
              **kw: Any) -> dict:
        """Sends a press and returns the reply (notes or error)."""
        if msg_id is None:
            msg_id, self.next_id = self.next_id, self.next_id + 1
        reply = self.request({"type": "press", "id": msg_id, "keys": keys, "velocity": velocity,
                              "t": self.tick() if t is None else t}, **kw)
        if reply["type"] == "notes":
            assert reply["id"] == msg_id, reply
        return reply

    def release(self, keys: list[int], t: float | None = None) -> None:
        self.send({"type": "release", "keys": keys, "t": self.tick() if t is None else t})

    def ping(self) -> dict:
        reply = self.request({"type": "ping", "t": self.tick(1.0)})
        assert reply == {"type": "pong", "t": self.t}, reply
        return reply

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def client_factory():
    """client(server, **kw) -> an open Client, closed when the test ends."""
    opened: list[Client] = []

    def make(srv: ServerProcess, **kw) -> Client:
        c = Client(srv.ws_url, **kw)
        opened.append(c)
        return c

    yield make
    for c in opened:
        try:
            c.close()
        except Exception:  # noqa: BLE001  already closed by the test or the server
            pass
