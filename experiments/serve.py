r"""Plays the model from a web page: serves the instrument on http://HOST:PORT.

    python -m experiments.serve --workdir=runs/tiny                 # prints http://127.0.0.1:8000
    python -m experiments.serve --workdir=s3://bucket/runs/base --host=0.0.0.0 --port=8080
    python -m experiments.serve --config=configs/tiny.py --port=0   # random-init model, a free port

Restores the model once (the run's config.json and newest checkpoint; a
remote workdir is brought into its local staging dir first), compiles what a
first press needs (the reset and the one-row batch), binds the port, prints
the page's URL, and compiles the other batch shapes in a background thread
(--warmup_background; a press of a shape not ready yet compiles it itself).
With a warm compilation cache a restart serves its first press in seconds
(docs/instrument.md, "Starting and restarting"); the phases' times are printed. Open it, press keys (a w s e d f t g y h u j k o l p ; ' ,
z/x octave, Shift = hard) or play a MIDI keyboard. The protocol is in
docs/instrument.md ("Protocol") and yoshimidi_jax/app/protocol.py.
"""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time

import uvicorn
from absl import app, flags, logging
from ml_collections import config_flags

from yoshimidi_jax import compile_cache
from yoshimidi_jax.app.fair_reading import FairWebSocketsProtocol
from yoshimidi_jax.app.server import ServerOptions, create_app, model_info
from yoshimidi_jax.play.batch import FORCED_BUCKETS, BatchPlayer
from yoshimidi_jax.play.press import PlaySettings
from yoshimidi_jax.restore import restore
from yoshimidi_jax.tokens.controls import ControlError
from yoshimidi_jax.tokens.styles import STYLES, StyleError, check_style, style_id

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "model config (used when --workdir has no config.json)")
flags.DEFINE_string("workdir", None, "a training run's workdir (local or s3://...)")
flags.DEFINE_string("host", "127.0.0.1", "interface to bind (0.0.0.0: every interface; think before you do)")
flags.DEFINE_integer("port", 8000, "port (0: any free port; the URL printed says which)")
flags.DEFINE_integer("max_sessions", 64, "browser tabs played at once; the next is refused")
flags.DEFINE_float("idle_timeout_s", 600.0, "a session with no message for this long is closed")
flags.DEFINE_float("messages_per_s", 60.0, "per-session message rate (sustained); above it messages are dropped")
flags.DEFINE_integer("burst", 120, "per-session burst of messages allowed above the rate")
flags.DEFINE_integer("flood_close_after", 2000, "a client that floods on after its rate error is disconnected "
                     "(close code 1008, with the reason) once this many more of its messages were dropped")
flags.DEFINE_float("flood_cooldown_s", 10.0, "for this long after a flooder is closed, new sessions from its address "
                   "start with no burst (the rate only), so reconnecting buys it no burst of decoded presses")
flags.DEFINE_float("temperature", 1.0, "a new session's temperature (the page can change it)")
flags.DEFINE_float("top_p", 0.95, "a new session's nucleus mass")
flags.DEFINE_bool("strict", False, "a new session's strictness (every press gets exactly the kind asked)")
flags.DEFINE_string("style", "any", f"a new session's style: any or one of {', '.join(STYLES)} "
                    "(the page can reset its session in another)")
flags.DEFINE_integer("pitch_lo", 21, "lowest pitch the model may play (piano: 21)")
flags.DEFINE_integer("pitch_hi", 108, "highest pitch the model may play (piano: 108)")
flags.DEFINE_integer("seed", 0, "sessions' PRNG keys are fold_in(key(seed), session number)")
flags.DEFINE_multi_string("allow_origin", [], "another page origin (scheme://host:port) allowed to connect")
flags.DEFINE_integer("decode_threads", 2, "decode threads, each batching its share of the sessions "
                     "(2 on 2 cores: p99 at 50 sessions 41 -> 20 ms, benchmarks/RESULTS.md)")
flags.DEFINE_string("compile_cache", None, "jax's persistent compilation cache: a restart loads the compiled "
                    "batch shapes instead of compiling them again (default: $YOSHIMIDI_JAX_CACHE or "
                    "~/.cache/yoshimidi/jax; '' = off)")
flags.DEFINE_float("gil_switch_ms", 2.0, "how long a thread may hold Python's lock before another may take it "
                   "(sys.setswitchinterval; Python's own 5 ms): the event loop and the decode threads take turns "
                   "sooner, a player's p99 under a flood 24-33 -> 18-22 ms (benchmarks/RESULTS.md)")
flags.DEFINE_float("keep_warm_ms", 5.0, "while someone has pressed in the last 10 s, a decode thread with no "
                   "program run for this long calls the model once, so its weights stay in the CPU's caches "
                   "between a lone player's presses (0: never; benchmarks/RESULTS.md)")
flags.DEFINE_bool("warmup", True, "compile the batch shapes ahead of the presses (else the first presses compile)")
flags.DEFINE_bool("warmup_background", True, "serve once the first press's shape is compiled and compile the "
                  "others in a background thread (false: every shape before serving)")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (bound before the URL is printed, so the URL works)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise app.UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str]) -> None:
    del argv
    t_start = time.perf_counter()
    logging.set_verbosity(logging.WARNING)  # orbax's restore chatter; the server prints what matters
    if FLAGS.workdir is None and FLAGS.config is None:
        raise app.UsageError("give --workdir=runs/NAME (a trained run) or --config=configs/tiny.py (random init)")
    try:
        settings = PlaySettings(temperature=FLAGS.temperature, top_p=FLAGS.top_p, strict=FLAGS.strict,
                                pitch_lo=FLAGS.pitch_lo, pitch_hi=FLAGS.pitch_hi)
        options = ServerOptions(max_sessions=FLAGS.max_sessions, idle_timeout_s=FLAGS.idle_timeout_s,
                                messages_per_s=FLAGS.messages_per_s, burst=FLAGS.burst,
                                flood_close_after=FLAGS.flood_close_after,
                                flood_cooldown_s=FLAGS.flood_cooldown_s, seed=FLAGS.seed,
                                settings=settings, style=style_id(FLAGS.style),
                                allowed_origins=tuple(FLAGS.allow_origin), hosts=(FLAGS.host,),
                                keep_warm_ms=FLAGS.keep_warm_ms)
    except StyleError as e:
        raise app.UsageError(f"--style: {e}") from None
    except (ControlError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    if not 0.0 < FLAGS.gil_switch_ms < 1000.0:
        raise app.UsageError(f"--gil_switch_ms={FLAGS.gil_switch_ms}: give a time between 0 and 1000 ms "
                             "(both excluded; Python's own is 5)")
    sys.setswitchinterval(FLAGS.gil_switch_ms / 1000.0)
    if FLAGS.compile_cache != "":
        compile_cache.enable(FLAGS.compile_cache)
    restored = restore(FLAGS.workdir, FLAGS.config, seed=FLAGS.seed)
    print(restored.message, flush=True)
    print(f"restored the model at {time.perf_counter() - t_start:.1f} s", flush=True)
    try:
        check_style(options.style, restored.model.num_styles)
    except StyleError as e:
        raise app.UsageError(f"--style: {e}") from None
    threads = max(1, min(FLAGS.decode_threads, FLAGS.max_sessions))
    # the players share their jitted programs (play/batch.py _programs): each shape is traced once
    players = [BatchPlayer(restored.model, restored.params, num_slots=-(-FLAGS.max_sessions // threads),
                           cache_len=restored.config.model.max_len)
               for _ in range(threads)]
    print(f"built {threads} decode players at {time.perf_counter() - t_start:.1f} s", flush=True)
    background = None
    if FLAGS.warmup:
        shapes = players[0].warmup_shapes()
        first = [(1, FORCED_BUCKETS[0])]  # a first press: one row, a few forced tokens
        rest = [shape for shape in shapes if shape not in first]
        t0 = time.perf_counter()
        if FLAGS.warmup_background:
            players[0].warmup(settings, shapes=first, refill=False)  # the sessions' pitch range
            print(f"compiled the first press's batch shape in {time.perf_counter() - t0:.1f} s", flush=True)

            def warm_the_rest() -> None:
                t1 = time.perf_counter()
                try:
                    players[0].warmup(settings, shapes=rest)
                except Exception as e:  # noqa: BLE001  a press of that shape compiles it itself
                    print(f"background warm-up failed: {type(e).__name__}: {e}", flush=True)
                    return
                print(f"compiled the other {len(rest)} batch shapes and the refill in the background in "
                      f"{time.perf_counter() - t1:.1f} s (at {time.perf_counter() - t_start:.1f} s)", flush=True)
                freeze_heap()  # what the warm-up made lives as long as the server

            background = threading.Thread(target=warm_the_rest, name="warmup", daemon=True)
        else:
            players[0].warmup(settings)
            print(f"compiled every batch shape ({len(shapes)} shapes, shared by {threads} decode threads) "
                  f"in {time.perf_counter() - t0:.1f} s", flush=True)
    info = model_info(FLAGS.workdir, restored.step, restored.params, restored.config)
    web = create_app(players, info, options)
    freeze_heap()
    sock = bind(FLAGS.host, FLAGS.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {info['name']} (step {info['step']}) on http://{shown}:{port} "
          f"(ready at {time.perf_counter() - t_start:.1f} s)", flush=True)
    if background is not None:
        background.start()
    config = uvicorn.Config(web, log_level="warning", ws=FairWebSocketsProtocol, ws_max_size=1 << 20,
                            ws_ping_interval=20.0, ws_ping_timeout=20.0, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    logging.info("server stopped")
    sys.stdout.flush()


def freeze_heap() -> None:
    """Moves every object alive now (the model, JAX, the compiled programs:
    ~550,000 objects) out of the garbage collector's reach: they live as long
    as the server. Otherwise a full collection scans them all whenever enough
    new objects survive (a flood of messages makes many): ~210 ms with the event
    loop stopped, every session's answer waiting
    (`python -m benchmarks.serve_latency --flood=3`)."""
    gc.collect()
    gc.freeze()


if __name__ == "__main__":
    app.run(main)
