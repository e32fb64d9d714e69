r"""Plays the model from a web page: serves the instrument on http://HOST:PORT.

    python -m experiments.serve --workdir=runs/tiny                 # prints http://127.0.0.1:8000
    python -m experiments.serve --workdir=s3://bucket/runs/base --host=0.0.0.0 --port=8080
    python -m experiments.serve --config=configs/tiny.py --port=0   # random-init model, a free port

Restores the model once (the run's config.json and newest checkpoint; a
remote workdir is brought into its local staging dir first), compiles every
batch shape (so no player waits for a compile), binds the port, then prints
the page's URL. Open it, press keys (a w s e d f t g y h u j k o l p ; ' ,
z/x octave, Shift = hard) or play a MIDI keyboard. The protocol is in
docs/instrument.md ("Protocol") and yoshimidi_jax/app/protocol.py.
"""

from __future__ import annotations

import socket
import sys
import time

import uvicorn
from absl import app, flags, logging
from ml_collections import config_flags

from yoshimidi_jax import compile_cache
from yoshimidi_jax.app.server import ServerOptions, create_app, model_info
from yoshimidi_jax.play.batch import BatchPlayer
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
flags.DEFINE_bool("warmup", True, "compile every batch shape before serving (else the first presses compile)")


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
    logging.set_verbosity(logging.WARNING)  # orbax's restore chatter; the server prints what matters
    if FLAGS.workdir is None and FLAGS.config is None:
        raise app.UsageError("give --workdir=runs/NAME (a trained run) or --config=configs/tiny.py (random init)")
    try:
        settings = PlaySettings(temperature=FLAGS.temperature, top_p=FLAGS.top_p, strict=FLAGS.strict,
                                pitch_lo=FLAGS.pitch_lo, pitch_hi=FLAGS.pitch_hi)
        options = ServerOptions(max_sessions=FLAGS.max_sessions, idle_timeout_s=FLAGS.idle_timeout_s,
                                messages_per_s=FLAGS.messages_per_s, burst=FLAGS.burst, seed=FLAGS.seed,
                                settings=settings, style=style_id(FLAGS.style),
                                allowed_origins=tuple(FLAGS.allow_origin), hosts=(FLAGS.host,))
    except StyleError as e:
        raise app.UsageError(f"--style: {e}") from None
    except (ControlError, ValueError) as e:
        raise app.UsageError(str(e)) from None
    if FLAGS.compile_cache != "":
        compile_cache.enable(FLAGS.compile_cache)
    restored = restore(FLAGS.workdir, FLAGS.config, seed=FLAGS.seed)
    print(restored.message, flush=True)
    try:
        check_style(options.style, restored.model.num_styles)
    except StyleError as e:
        raise app.UsageError(f"--style: {e}") from None
    threads = max(1, min(FLAGS.decode_threads, FLAGS.max_sessions))
    players = [BatchPlayer(restored.model, restored.params, num_slots=-(-FLAGS.max_sessions // threads),
                           cache_len=restored.config.model.max_len)
               for _ in range(threads)]
    if FLAGS.warmup:
        t0 = time.perf_counter()
        for player in players:  # the same shapes: the second finds them in the compilation cache
            player.warmup(settings)  # the sessions' pitch range
        print(f"compiled every batch shape ({len(players[0].row_buckets)} sizes x {threads} decode threads) "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
    info = model_info(FLAGS.workdir, restored.step, restored.params, restored.config)
    web = create_app(players, info, options)
    sock = bind(FLAGS.host, FLAGS.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {info['name']} (step {info['step']}) on http://{shown}:{port}", flush=True)
    config = uvicorn.Config(web, log_level="warning", ws_max_size=1 << 20, ws_ping_interval=20.0,
                            ws_ping_timeout=20.0, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    logging.info("server stopped")
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
