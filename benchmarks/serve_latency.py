"""Press -> notes latency of the instrument's server under load, over real
websockets on loopback. Prints one JSON line.

    python -m benchmarks.serve_latency [--workdir=runs/tiny] [--seconds=20] [--sessions=50]
    python -m benchmarks.serve_latency --flood=3 [--seconds=20]      # a player beside 3 flooding clients
    python -m benchmarks.serve_latency --startup                     # first start and restart -> first press

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

--flood=N: one well-behaved session pressing 5 times a second (as above),
alone, then while N other clients (each its own process) send presses and
releases as fast as they can, and connect again each time the server closes
them; `flood_ratio_p99` is its p99 with the flood over its p99 alone. The
server's counters say how often it closed a flooder (flood_closed) and
whether a refill ever ran inside a press (refills_in_press).
--flooder_nice=19 runs the flooders at the lowest CPU priority: they stand in
for clients on other machines, whose own CPU costs the server's machine
nothing (on 2 cores, 3 flooders at full priority take most of the CPU);
`flood_messages_per_s` says how hard they still flooded.

--startup: the seconds from starting `experiments.serve` to the answer of
its first press, with an empty compilation cache (a first start) and again
with the cache it left (a restart), and when every batch shape was compiled.
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
import tempfile
import threading
import time
import urllib.request

import numpy as np
import websockets

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_server(workdir: str | None, max_sessions: int, extra: list[str],
                 lines: list | None = None) -> tuple[subprocess.Popen, str]:
    """Starts experiments.serve; `lines` (if given) collects its stdout as it
    comes: (seconds since the start, line)."""
    model = [f"--workdir={workdir}"] if workdir and os.path.isdir(workdir) else ["--config=configs/tiny.py"]
    cmd = [sys.executable, "-m", "experiments.serve", *model, "--port=0", f"--max_sessions={max_sessions}",
           "--messages_per_s=100", *extra]
    t0 = time.perf_counter()
    # its log (warnings: sessions closed, errors) goes to a file, named on this process's stderr
    log_file = tempfile.NamedTemporaryFile("w", prefix="serve_", suffix=".log", delete=False)
    print(f"the server's log: {log_file.name}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=log_file, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})
    log_file.close()
    deadline = time.time() + 300
    for line in proc.stdout:
        if lines is not None:
            lines.append((time.perf_counter() - t0, line.rstrip()))
        m = re.search(r"on (http://\S+)", line)
        if m:
            if lines is not None:  # the rest of its output, as it comes
                def follow():
                    for later in proc.stdout:
                        lines.append((time.perf_counter() - t0, later.rstrip()))
                threading.Thread(target=follow, daemon=True).start()
            return proc, m.group(1)
        if time.time() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"the server did not start: {' '.join(cmd)}")


def server_stats(url: str) -> dict:
    """The server's /api/stats."""
    return json.loads(urllib.request.urlopen(url + "/api/stats").read())


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


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values, q) -> float:
    return round(float(np.percentile(np.array(values), q)), 3)


# -- --flood ---------------------------------------------------------------------------

async def flood(url: str, seconds: float, seed: int) -> dict:
    """One flooding client: presses and releases as fast as the socket takes
    them, reading (and dropping) the replies; connects again when the server
    closes it, until `seconds` are up -> what it saw."""
    rng = random.Random(seed)
    seen = {"connections": 0, "sent": 0, "notes": 0, "closes": {}, "reason": None}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            async with websockets.connect(url.replace("http", "ws") + "/ws", max_size=1 << 22) as ws:
                seen["connections"] += 1

                async def reader():
                    try:
                        async for frame in ws:
                            seen["notes"] += '"notes"' in frame
                    except websockets.ConnectionClosed:
                        pass

                task = asyncio.create_task(reader())
                t = 1.0
                while time.perf_counter() < end:
                    key = rng.randint(40, 90)
                    t += 1.0
                    await ws.send(json.dumps({"type": "press", "id": seen["sent"], "keys": [key], "velocity": 80,
                                              "t": t}))
                    await ws.send(json.dumps({"type": "release", "keys": [key], "t": t + 0.5}))
                    seen["sent"] += 2
                    if seen["sent"] % 64 == 0:
                        await asyncio.sleep(0)  # hears the server's close (then connects again)
                task.cancel()
        except websockets.ConnectionClosed as e:
            rcvd = e.rcvd
            if rcvd is not None:
                seen["closes"][str(rcvd.code)] = seen["closes"].get(str(rcvd.code), 0) + 1
                seen["reason"] = rcvd.reason
        except OSError:
            await asyncio.sleep(0.05)
    return seen


async def players(url: str, n: int, seed: int) -> dict:
    """n sessions pressing 5 keys per second each (play), as one process: says
    "open" on stdout once every session is connected, plays until its stdin
    ends, then -> their round trips and the server's times (ms)."""
    latencies: list[float] = []
    server_ms: list[float] = []
    opened = [asyncio.Event() for _ in range(n)]
    hold = asyncio.Event()
    tasks = [asyncio.create_task(play(url, 36_000.0, 5.0, random.Random(seed + i), latencies, server_ms, opened[i],
                                      hold)) for i in range(n)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), timeout=120)
    print("open", flush=True)
    hold.set()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
    failed = [repr(t.exception()) for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
    # stopped mid-play: their sockets' readers end with the connection, unheard
    asyncio.get_running_loop().set_exception_handler(
        lambda lp, ctx: None if isinstance(ctx.get("exception"), websockets.ConnectionClosed)
        else lp.default_exception_handler(ctx))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"latencies_ms": latencies, "server_ms": server_ms, "failed": failed, "nice": os.nice(0)}


def start_players(url: str, n: int, seed: int, nice: int = 0) -> subprocess.Popen:
    """`players` in its own process (at nice `nice`), returned once every
    session is open; close its stdin to stop it, then read its JSON line."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.serve_latency", f"--players={url}",
                             f"--sessions={n}", f"--seed={seed}"], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO},
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)
    line = proc.stdout.readline()
    if line.strip() != "open":
        proc.kill()
        raise RuntimeError(f"the {n} other sessions did not open (exit {proc.wait()}): {line!r}")
    return proc


def stop_players(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(input="", timeout=120)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the other sessions' process ended with exit code {proc.returncode} "
                           f"and {'no result' if not lines else repr(lines[-1][:200])}")
    return json.loads(lines[-1])


def flooder_main(url: str, seconds: float, seed: int) -> None:
    print(json.dumps(asyncio.run(flood(url, seconds, seed))), flush=True)


async def run_flood(args) -> dict:
    # every shape compiled before the player's first press (not in the background)
    proc, url = start_server(args.workdir, max_sessions=args.flood + 2,
                             extra=["--warmup_background=false", *args.server_flag])
    try:
        alone, alone_srv = [], []
        await play(url, args.seconds, 5.0, random.Random(0), alone, alone_srv)
        alone = alone[5:]  # the first presses warm the connection
        stats0 = server_stats(url)
        # --flooder_nice: the flooders at a lower CPU priority, as clients on other machines would cost
        # the server's machine nothing (on 2 cores, 3 flooders at full priority take most of the CPU)
        flooders = [subprocess.Popen([sys.executable, "-m", "benchmarks.serve_latency", f"--flooder={url}",
                                      f"--seconds={args.seconds + 4}", f"--seed={i}"], cwd=REPO,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO},
                                     preexec_fn=(lambda: os.nice(args.flooder_nice)) if args.flooder_nice else None)
                    for i in range(args.flood)]
        await asyncio.sleep(2.0)  # the flood under way
        during, during_srv = [], []
        cpu0, t_flood0 = cpu_s(proc.pid), time.perf_counter()
        await play(url, args.seconds, 5.0, random.Random(1), during, during_srv)
        server_cores = (cpu_s(proc.pid) - cpu0) / (time.perf_counter() - t_flood0)
        seen = [json.loads(f.communicate(timeout=120)[0].strip().splitlines()[-1]) for f in flooders]
        stats1 = server_stats(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    c0, c1 = stats0["counters"], stats1["counters"]
    flood_sent = sum(s["sent"] for s in seen)
    return {
        "benchmark": "serve_latency_flood", "flooders": args.flood, "presses_per_s": 5.0, "seconds": args.seconds,
        "presses_alone": len(alone), "presses_flood": len(during),
        "p50_ms_alone": pct(alone, 50), "p99_ms_alone": pct(alone, 99),
        "p50_ms_flood": pct(during, 50), "p99_ms_flood": pct(during, 99), "max_ms_flood": pct(during, 100),
        "server_p99_ms_flood": pct(during_srv, 99), "server_cores_flood": round(server_cores, 2),
        "flood_ratio_p50": round(pct(during, 50) / max(pct(alone, 50), 1e-6), 2),
        "flood_ratio_p99": round(pct(during, 99) / max(pct(alone, 99), 1e-6), 2),
        "flood_messages_sent": flood_sent, "flooder_nice": args.flooder_nice,
        "flood_messages_per_s": round(flood_sent / (args.seconds + 4), 1),
        "flood_notes_answered": sum(s["notes"] for s in seen),
        "flood_connections": sum(s["connections"] for s in seen),
        "flood_closed": c1.get("flood_closed", 0) - c0.get("flood_closed", 0),
        "flood_close_codes": {code: sum(s["closes"].get(code, 0) for s in seen)
                              for code in sorted({c for s in seen for c in s["closes"]})},
        "flood_close_reason": next((s["reason"] for s in seen if s["reason"]), None),
        "rate_limited": c1.get("rate_limited", 0) - c0.get("rate_limited", 0),
        "refills": stats1.get("refills_ahead", 0) - stats0.get("refills_ahead", 0),
        "refills_in_press": stats1.get("refills_in_press", 0) - stats0.get("refills_in_press", 0),
        "server_flags": args.server_flag, "goal": {"p99_ms_flood": 30},
    }


# -- --startup ---------------------------------------------------------------------------

async def first_press(url: str) -> float:
    async with websockets.connect(url.replace("http", "ws") + "/ws") as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        await ws.send(json.dumps({"type": "press", "id": 1, "keys": [60], "velocity": 80, "t": 1.0}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "notes", reply
        return time.perf_counter()


async def run_startup(args) -> dict:
    """Seconds from the start of experiments.serve to its first press's notes:
    an empty compilation cache, then the same again (a restart)."""
    out = {"benchmark": "serve_startup", "cpus": os.cpu_count(), "server_flags": args.server_flag}
    with tempfile.TemporaryDirectory(prefix="serve_startup_cache_") as cache:
        for name in ("first_start", "restart"):
            lines: list = []
            t0 = time.perf_counter()
            proc, url = start_server(args.workdir, max_sessions=64, lines=lines,
                                     extra=[f"--compile_cache={cache}", *args.server_flag])
            try:
                out[f"{name}_first_press_s"] = round(await first_press(url) - t0, 2)
                out[f"{name}_listening_s"] = round(next(t for t, line in lines if " on http" in line), 2)
                deadline = time.time() + 600
                while not any("compiled the other" in line or "compiled every" in line for _, line in lines):
                    if time.time() > deadline or proc.poll() is not None:
                        break
                    await asyncio.sleep(0.2)
                out[f"{name}_all_shapes_s"] = next((round(t, 2) for t, line in lines
                                                    if "compiled the other" in line or "compiled every" in line),
                                                   None)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    out["goal"] = {"restart_first_press_s": 10}
    return out


async def run(args) -> dict:
    proc, url = start_server(args.workdir, max_sessions=args.sessions + 1,
                             extra=["--warmup_background=false", *args.server_flag])
    try:
        lat1, srv1 = [], []
        stats_a = server_stats(url)
        t_alone0 = time.perf_counter()
        await play(url, args.seconds, 5.0, random.Random(0), lat1, srv1)
        stats_b = server_stats(url)
        wall_1 = time.perf_counter() - t_alone0
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
        stats0 = server_stats(url)
        await asyncio.gather(*tasks)
        stats1 = server_stats(url)
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
        # the refill threads' share (cores) and count: cache refills beside the batches, on the same CPU
        "refill_busy_50": round((stats1["refill_s"] - stats0["refill_s"]) / wall, 3),
        "refills_per_s_50": round((stats1["refills_ahead"] - stats0["refills_ahead"]) / wall, 1),
        # presses that waited for their own session's refill (begun after the press before them)
        "refill_waits_50": stats1["refill_waits"] - stats0["refill_waits"],
        # the calls made only to keep the weights in the CPU's caches (--keep_warm_ms): a core's share
        "keep_warm_busy_1": round((stats_b["keep_warm_s"] - stats_a["keep_warm_s"]) / wall_1, 3),
        "keep_warm_busy_50": round((stats1["keep_warm_s"] - stats0["keep_warm_s"]) / wall, 3),
        "server_flags": args.server_flag, "goal": {"p99_ms_1": 10, "p99_ms_50": 30},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=os.path.join(REPO, "runs", "tiny"))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--server_flag", action="append", default=[],
                        help="a flag for experiments.serve, e.g. --server_flag=--gil_switch_ms=1")
    parser.add_argument("--flood", type=int, default=0, help="N: one player beside N flooding clients")
    parser.add_argument("--flooder_nice", type=int, default=0,
                        help="the flooders' nice increment (19: they stand in for clients on other machines)")
    parser.add_argument("--startup", action="store_true", help="first start and restart -> first press")
    parser.add_argument("--flooder", help=argparse.SUPPRESS)  # (internal) be one flooding client of this URL
    parser.add_argument("--players", help=argparse.SUPPRESS)  # (internal) be --sessions players of this URL
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flooder:
        flooder_main(args.flooder, args.seconds, args.seed)
    elif args.players:
        print(json.dumps(asyncio.run(players(args.players, args.sessions, args.seed))), flush=True)
    elif args.startup:
        print(json.dumps(asyncio.run(run_startup(args))))
    elif args.flood:
        print(json.dumps(asyncio.run(run_flood(args))))
    else:
        print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
