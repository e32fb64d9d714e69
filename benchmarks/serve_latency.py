"""Press -> notes latency of the instrument's server under load, over real
websockets on loopback. Prints one JSON line.

    python -m benchmarks.serve_latency [--workdir=runs/tiny] [--seconds=20] [--sessions=50]

Starts `experiments.serve` as its own process (the tiny run if --workdir
exists, else a random-init tiny model: the same network, the same cost), then
- 1 session: presses at 5 per second (each released half way to the next),
  the latency of each press from send to its "notes" reply;
- N sessions at once, each pressing 5 keys per second on its own schedule
  (open loop: a late reply does not delay the next press), chords of 1..3
  keys, each released half way to the next press;
- the server's memory per session: the KV cache each session slot holds
  (allocated at start, for --max_sessions slots) plus the growth of the
  server's resident memory with N sessions open, over N.
The baseline in the same run is the decode time the server reports for each
press (server_ms, the play API alone): `overhead_1` is the end-to-end p50 over
it (websocket, JSON, the event loop and thread hop), `load_ratio_p99` the p99
with N sessions over the p99 with one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import websockets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_server(workdir: str | None, max_sessions: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    model = [f"--workdir={workdir}"] if workdir and os.path.isdir(workdir) else ["--config=configs/tiny.py"]
    cmd = [sys.executable, "-m", "experiments.serve", *model, "--port=0", f"--max_sessions={max_sessions}",
           "--messages_per_s=100", *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})
    deadline = time.time() + 300
    for line in proc.stdout:
        m = re.search(r"on (http://\S+)", line)
        if m:
            return proc, m.group(1)
        if time.time() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"the server did not start: {' '.join(cmd)}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def play(url: str, seconds: float, rate_hz: float, rng: random.Random, latencies: list, server_ms: list,
               opened: asyncio.Event | None = None, hold: asyncio.Event | None = None) -> None:
    """One session: presses at rate_hz for `seconds`, open loop; appends each
    press's round trip (ms) to latencies."""
    async with websockets.connect(url.replace("http", "ws") + "/ws", max_size=1 << 22) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        if opened is not None:
            opened.set()
        if hold is not None:
            await hold.wait()
        sent: dict[int, float] = {}
        done = asyncio.Event()
        expected = int(seconds * rate_hz)

        async def reader():
            got = 0
            async for frame in ws:
                msg = json.loads(frame)
                if msg["type"] == "notes":
                    latencies.append((time.perf_counter() - sent.pop(msg["id"])) * 1e3)
                    server_ms.append(msg["server_ms"])
                    got += 1
                    if got == expected:
                        done.set()
                elif msg["type"] == "error":
                    raise RuntimeError(f"server error: {msg}")

        task = asyncio.create_task(reader())
        period = 1.0 / rate_hz
        start = time.perf_counter() + rng.uniform(0, period)  # sessions out of phase
        key = 60
        for i in range(expected):
            at = start + i * period + rng.uniform(-0.3, 0.3) * period
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            key = int(np.clip(key + rng.choice([-7, -3, -2, -1, 0, 1, 2, 3, 7]), 40, 90))
            keys = sorted({key + 4 * j for j in range(rng.choice([1, 1, 2, 3]))})
            t_ms = (time.perf_counter() - start + 1) * 1e3
            sent[i] = time.perf_counter()
            await ws.send(json.dumps({"type": "press", "id": i, "keys": keys, "velocity": rng.randint(30, 120),
                                      "t": t_ms}))
            await asyncio.sleep(period / 2)
            await ws.send(json.dumps({"type": "release", "keys": keys, "t": t_ms + period * 500}))
        await asyncio.wait_for(done.wait(), timeout=30)
        task.cancel()


def pct(values, q) -> float:
    return round(float(np.percentile(np.array(values), q)), 3)


async def run(args) -> dict:
    proc, url = start_server(args.workdir, max_sessions=args.sessions + 1, extra=args.server_flag)
    try:
        lat1, srv1 = [], []
        await play(url, args.seconds, 5.0, random.Random(0), lat1, srv1)
        lat1 = lat1[5:]  # the first presses warm the connection
        rss_idle = rss_mb(proc.pid)
        lat_n, srv_n = [], []
        opened = [asyncio.Event() for _ in range(args.sessions)]
        hold = asyncio.Event()
        tasks = [asyncio.create_task(play(url, args.seconds, 5.0, random.Random(1 + i), lat_n, srv_n, opened[i],
                                          hold)) for i in range(args.sessions)]
        await asyncio.gather(*(e.wait() for e in opened))
        hold.set()
        await asyncio.sleep(args.seconds / 2)
        rss_busy = rss_mb(proc.pid)
        t_busy0 = time.perf_counter()
        stats0 = json.loads(urllib.request.urlopen(url + "/api/stats").read())
        await asyncio.gather(*tasks)
        stats1 = json.loads(urllib.request.urlopen(url + "/api/stats").read())
        wall = time.perf_counter() - t_busy0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "benchmark": "serve_latency", "sessions": args.sessions, "presses_per_s_per_session": 5.0,
        "presses_1": len(lat1), "presses_n": len(lat_n),
        "p50_ms_1": pct(lat1, 50), "p99_ms_1": pct(lat1, 99),
        "p50_ms_50": pct(lat_n, 50), "p99_ms_50": pct(lat_n, 99),
        "server_p50_ms_1": pct(srv1, 50), "server_p99_ms_50": pct(srv_n, 99),
        "overhead_1": round(pct(lat1, 50) / max(pct(srv1, 50), 1e-6), 2),
        "load_ratio_p99": round(pct(lat_n, 99) / max(pct(lat1, 99), 1e-6), 2),
        # each session slot's KV cache is allocated at start; the rest grows with the sessions
        "mb_per_session": round(stats1["kv_bytes_per_session"] / 2**20 + (rss_busy - rss_idle) / args.sessions, 3),
        "rss_mb_per_open_session": round((rss_busy - rss_idle) / args.sessions, 3),
        "rss_mb_idle": round(rss_idle, 1), "rss_mb_busy": round(rss_busy, 1),
        "kv_mb_per_session": round(stats1["kv_bytes_per_session"] / 2**20, 3),
        "jobs_per_batch_50": round((stats1["jobs"] - stats0["jobs"]) / max(1, stats1["batches"] - stats0["batches"]), 2),
        "decode_busy_50": round((stats1["decode_busy_s"] - stats0["decode_busy_s"]) / wall, 3),
        "server_flags": args.server_flag, "goal": {"p99_ms_1": 10, "p99_ms_50": 30},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=os.path.join(REPO, "runs", "tiny"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--server_flag", action="append", default=[],
                        help="a flag for experiments.serve, e.g. --server_flag=--single_threaded_xla=false")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
