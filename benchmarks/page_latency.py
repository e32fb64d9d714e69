"""Key -> sound latency where the player is: the instrument's page in headless
Chromium, played with real keyboard events against the real server. Prints
one JSON line.

    python -m benchmarks.page_latency [--workdir=runs/tiny] [--presses=200] [--others=50] [--rate=5]
                                      [--chord_window_ms=MS] [--instrument=piano|synth|...]
    python -m benchmarks.page_latency --engine=local --site=DIR [--presses=200]

--engine=local: no server; the page of an exported site (python -m
experiments.export --page --out=DIR) served by a static file server
(http.server, a thread of this process) plays the model in itself (its
local engine, onnxruntime-web WASM, one thread); no other sessions; the
figures are the same, with `model_bytes` (model.onnx) and `site_bytes` (every
file the page may load) beside them.

Starts `experiments.serve` as its own process from the run's checkpoint (as
benchmarks.serve_latency does: a random-init tiny model if --workdir does not
exist), opens its page in headless Chromium (Playwright) and presses single
letter keys (keyboard.down, held 0.6 of the period, then keyboard.up) at --rate
presses per second, open loop; first with the page as the only session, then
while --others other sessions (plain websocket clients, serve_latency.play,
in a process of their own) each press 5 keys per second. --others_nice=19
runs that process at the lowest CPU priority: the other sessions stand in
for players on other machines, whose own CPU costs the server's machine
nothing (the server still decodes every one of their presses).

Every figure is taken in the page, on its own clock (performance.now()): the
page times each note it starts (sound.js, `Sound.times`, always on):
- `p50_ms_1`, `p99_ms_1`: from the keydown event's timeStamp to the moment the
  note has been handed to the audio graph (the own synth's oscillators
  started, or the note-on posted to the soundfont's AudioWorklet);
- `sched_p50_ms_1`, ...: to the moment its first sample is due at the output
  (its AudioContext start time, converted to page time through
  AudioContext.getOutputTimestamp(): this adds the audio output's buffering);
- `trip_p50_ms_1`, `trip_p99_ms_1`: the part of it spent waiting for the
  model (the press message sent -> the answer arrived: the network, the
  server's queue and its decode); `in_page_p50_ms_1`, `in_page_p99_ms_1`: the
  rest (key event -> message sent, plus answer -> note started), the page's
  own share;
- `_50`: the same while the other sessions play (--others of them);
- `routed_1`, ...: notes the page's socket worker started itself (the
  default: the server's websocket lives in a worker that starts a press's
  notes on the synthesizer as the answer arrives; `--socket=page` keeps it
  on the page's main thread, where Chromium hands the page the answer only
  after the next frame it renders after a key event). For a routed note
  `started` is the worker's time, before the page had the answer, so its
  "in page" share is negative.
Each key is sent at once (zero-wait keys); --chord_window_ms sets the page's
join window, within which a key joins the open press instead of starting one.
The baseline in the same run is the model's own time for each of the page's
presses (`server_ms` of its "notes" replies, the server's or the local
engine's, kept by the page beside each note's timing as `modelMs`):
`page_over_server_p50_1` is the page's p50 over the server's, i.e. what the
round trip and the page add to the model's own time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import time

from benchmarks.serve_latency import REPO, pct, start_players, start_server, stop_players

# the letters of the page's middle row and the black keys above it (keys.js KEY_OFFSETS)
LETTERS = "awsedftgyhujk"
TIMES = "window.yoshimidiSound.times"


def find_chromium() -> str | None:
    """Debian's chromium (or $YOSHIMIDI_CHROMIUM); None: Playwright's own."""
    for path in (os.environ.get("YOSHIMIDI_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                 "/usr/bin/chromium"):
        if path and os.path.exists(path):
            return path
    return None


async def wait(page, expression: str, timeout_s: float, arg=None) -> None:
    try:
        await page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000, polling=20)
    except Exception as e:  # noqa: BLE001  say what the page looked like
        state = await page.evaluate("JSON.stringify(window.yoshimidi)")
        raise RuntimeError(f"waited {timeout_s} s for {expression} ({arg}): {e}\npage: {state[:3000]}") from None


async def open_page(browser, url: str, instrument: str | None, chord_window_ms: int | None, query: str = ""):
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(url + "/" + query)
    await wait(page, "window.yoshimidi.connection === 'open' && window.yoshimidi.hello !== null", 60)
    await page.mouse.click(5, 5)  # a gesture: the audio context runs
    if instrument is not None:
        await page.select_option("#instrument", instrument)
    # the soundfont loaded (or failed: the own synth plays), and the chosen program's samples decoded
    await wait(page, "window.yoshimidi.sound && window.yoshimidi.sound.fontState !== 'loading'"
                     " && window.yoshimidi.sound.fontState !== 'idle'", 60)
    await wait(page, "window.yoshimidiSound.engine !== 'font' || window.yoshimidiSound.warmNotesSeen >= 88 * 9", 60)
    await wait(page, "window.yoshimidi.audioState === 'running'", 30)
    # the socket's worker starts the notes itself once its port into the synthesizer answered
    await wait(page, "window.yoshimidi.socketIn !== 'worker' || window.yoshimidiSound.engine !== 'font'"
                     " || window.yoshimidi.soundRouted", 30)
    if chord_window_ms is not None:
        await page.evaluate("v => { const e = document.getElementById('chord-window'); e.value = String(v);"
                            " e.dispatchEvent(new Event('input')); e.dispatchEvent(new Event('change')); }",
                            chord_window_ms)
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    return context, page, errors


async def press_keys(page, n: int, rate_hz: float, rng: random.Random, timeout_s: float = 120) -> list[dict]:
    """n single-key presses at rate_hz (open loop: a slow answer does not delay
    the next key), each held 0.6 of the period; returns the n notes' timings."""
    count0 = await page.evaluate(f"{TIMES}.count")
    period = 1.0 / rate_hz
    start = time.perf_counter()
    last = None
    for i in range(n):
        letter = rng.choice([c for c in LETTERS if c != last])  # a key is up before it goes down again
        last = letter
        at = start + i * period
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        await page.keyboard.down(letter)
        await asyncio.sleep(max(0.0, at + 0.6 * period - time.perf_counter()))
        await page.keyboard.up(letter)
    await wait(page, f"n => {TIMES}.count >= n", timeout_s, arg=count0 + n)
    return await page.evaluate(f"n => {TIMES}.since(n)", count0)


def figures(entries: list[dict], suffix: str) -> dict:
    server = [e["modelMs"] for e in entries if e.get("modelMs") is not None]
    started = [e["started"] - e["down"] for e in entries if e["down"] is not None]
    sounds = [e["sounds"] - e["down"] for e in entries if e["down"] is not None and e["sounds"] is not None]
    timed = [e for e in entries if None not in (e["down"], e.get("sent"), e.get("arrived"))]
    trip = [e["arrived"] - e["sent"] for e in timed]
    in_page = [(e["sent"] - e["down"]) + (e["started"] - e["arrived"]) for e in timed]
    out = {f"p50_ms_{suffix}": pct(started, 50), f"p99_ms_{suffix}": pct(started, 99),
           f"max_ms_{suffix}": round(max(started), 3)}
    if timed:
        out.update({f"trip_p50_ms_{suffix}": pct(trip, 50), f"trip_p99_ms_{suffix}": pct(trip, 99),
                    f"in_page_p50_ms_{suffix}": pct(in_page, 50), f"in_page_p99_ms_{suffix}": pct(in_page, 99)})
    if sounds:
        out.update({f"sched_p50_ms_{suffix}": pct(sounds, 50), f"sched_p99_ms_{suffix}": pct(sounds, 99)})
    if server:
        out.update({f"server_p50_ms_{suffix}": pct(server, 50), f"server_p99_ms_{suffix}": pct(server, 99),
                    f"page_over_server_p50_{suffix}": round(pct(started, 50) / max(pct(server, 50), 1e-6), 2)})
    out[f"notes_{suffix}"] = len(started)
    out[f"routed_{suffix}"] = sum(bool(e.get("routed")) for e in entries)  # started by the socket's worker
    return out


async def measure(page, n: int, rate_hz: float, rng: random.Random, suffix: str) -> dict:
    return figures(await press_keys(page, n, rate_hz, rng), suffix)


def start_static(site: str, check_site: bool = True):
    """http.server on the exported site (check_site: refused unless it is one),
    in a thread -> (the server, its url)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                          ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json"}

        def log_message(self, *a) -> None:
            pass

    if check_site and not os.path.exists(os.path.join(site, "engine.json")):
        raise SystemExit(f"{site} is not an exported site (no engine.json): python -m experiments.export --page "
                         f"--workdir=RUN --out={site}")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=site))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


async def run(args) -> dict:
    from playwright.async_api import async_playwright

    local = args.engine == "local"
    if local:
        args.others, proc = 0, None
        httpd, url = start_static(args.site)
    else:
        # every shape compiled before the first key (not in the background, as a restart would): steady state
        proc, url = start_server(args.workdir, max_sessions=args.others + 2,
                                 extra=["--warmup_background=false", *args.server_flag])
    rng = random.Random(0)
    others = None  # the other sessions' process
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=find_chromium(), args=["--autoplay-policy=no-user-gesture-required", "--no-sandbox"])
            try:
                query = "?socket=page" if args.socket == "page" else ""
                context, page, errors = await open_page(browser, url, args.instrument, args.chord_window_ms, query)
                await press_keys(page, args.warmup, args.rate, rng)  # the first presses warm the connection
                out = await measure(page, args.presses, args.rate, rng, "1")

                lat_o: list[float] = []
                nice_o = None
                if args.others:
                    # the other sessions in a process of their own (at --others_nice), as play()s; the page
                    # measured once every one of them is pressing
                    others = await asyncio.to_thread(start_players, url, args.others, 1, args.others_nice)
                    await asyncio.sleep(2.0)
                    out.update(await measure(page, args.presses, args.rate, rng, "50"))
                    seen = await asyncio.to_thread(stop_players, others)
                    others = None
                    if seen["failed"]:
                        raise RuntimeError(f"another session failed: {seen['failed'][0]}")
                    lat_o, nice_o = seen["latencies_ms"], seen["nice"]
                info = await page.evaluate("({sound: window.yoshimidi.sound, hello: window.yoshimidi.hello,"
                                           " window: Number(document.getElementById('chord-window').value),"
                                           " baseLatency: window.yoshimidiSound.ctx.baseLatency,"
                                           " outputLatency: window.yoshimidiSound.ctx.outputLatency,"
                                           " sampleRate: window.yoshimidiSound.ctx.sampleRate})")
                if errors:
                    raise RuntimeError(f"the page raised: {errors[:3]}")
                await context.close()
            finally:
                await browser.close()
    finally:
        if others is not None:
            others.kill()
            others.wait(timeout=30)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        else:
            httpd.shutdown()
            httpd.server_close()
    model = info["hello"]["model"]
    if local:
        with open(os.path.join(args.site, "manifest.json")) as f:
            out["model_bytes"] = json.load(f)["model_bytes"]
        out["site_bytes"] = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(args.site) for n in ns)
    return {
        "benchmark": "page_latency", "page_engine": args.engine, "socket": args.socket if args.engine == "server" else None, "presses": args.presses, "others": args.others,
        "others_nice": nice_o,  # the other sessions' process's niceness, as it read it
        "presses_per_s": args.rate, "chord_window_ms": info["window"],
        "engine": info["sound"]["engine"], "instrument": info["sound"]["instrument"],
        "model": {"name": model.get("name"), "step": model.get("step")},
        **out,
        "others_p50_ms": pct(lat_o, 50) if lat_o else None, "others_p99_ms": pct(lat_o, 99) if lat_o else None,
        "audio": {"sample_rate": info["sampleRate"], "base_latency_ms": round(1e3 * (info["baseLatency"] or 0), 2),
                  "output_latency_ms": round(1e3 * (info["outputLatency"] or 0), 2)},
        "server_flags": args.server_flag, "goal": {"p99_ms_1": 10, "p99_ms_50": 20},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=os.path.join(REPO, "runs", "tiny"))
    parser.add_argument("--engine", choices=("server", "local"), default="server",
                        help="who plays: the server (experiments.serve of --workdir) or the model in the page "
                             "(the exported site --site, a static file server)")
    parser.add_argument("--site", default=None, help="an exported site (experiments.export --page) for --engine=local")
    parser.add_argument("--presses", type=int, default=200, help="timed presses per phase")
    parser.add_argument("--others", type=int, default=50, help="other sessions in the second phase (0: none)")
    parser.add_argument("--others_nice", type=int, default=0,
                        help="the other sessions' nice increment (19: they stand in for clients on other "
                             "machines, whose own CPU costs the server's machine nothing)")
    parser.add_argument("--rate", type=float, default=5.0, help="the page's presses per second")
    parser.add_argument("--chord_window_ms", type=int, default=None,
                        help="the page's join window (its slider, 0..40; default: the page's own, 25)")
    parser.add_argument("--instrument", default=None,
                        help="the page's instrument (sound.js INSTRUMENTS id: piano, synth = the own synth, ...; "
                             "default: the page's own, piano)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed presses first")
    parser.add_argument("--socket", choices=("worker", "page"), default="worker",
                        help="the server's websocket in a worker that starts the notes itself (the page's default), "
                             "or on the page's main thread (?socket=page)")
    parser.add_argument("--server_flag", action="append", default=[],
                        help="a flag for experiments.serve, e.g. --server_flag=--decode_threads=1")
    args = parser.parse_args()
    if args.engine == "local" and not args.site:
        parser.error("--engine=local needs --site=DIR (python -m experiments.export --page --out=DIR)")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
