r"""Sampler speed: the lax.scan + KV-cache sampler against a naive loop that
recomputes the full forward pass for every new token, same model, same run.

    python -m benchmarks.sampler_speed [--config=configs/tiny.py] [--num_events=1024]

Prints one JSON line:
  scan_events_per_s   new tokens per second, scan sampler (compile excluded), num_events from BOS
  naive_events_per_s  new tokens per second, naive loop: one jitted full forward
                      over the prefix (padded up to a multiple of 128, so at most
                      num_events/128 compiles, excluded) + the same masked sampling
                      per token; timed at naive_timed_tokens positions spread evenly
                      over 1..num_events, rate = 1 / mean per-token time
  speedup             scan / naive
  latency_ms_p50/p99  one new event (one jitted decode step: mask, sample, feed back,
                      KV cache donated) given a context of latency_context tokens
"""

from __future__ import annotations

import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from yoshimidi_jax.model import init_params, make_model
from yoshimidi_jax.sample import Constraints, SamplerConfig, init_track, make_sampler, make_stepper, prepare_prompt, track_tokens
from yoshimidi_jax.sample.constraints import allowed_tokens
from yoshimidi_jax.sample.sampler import sample_token

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/tiny.py", "model config")
flags.DEFINE_integer("num_events", 1024, "new events for the scan sampler")
flags.DEFINE_integer("naive_tokens", 128, "tokens timed for the naive loop")
flags.DEFINE_integer("latency_context", 512, "context length for the latency measurement")
flags.DEFINE_integer("latency_steps", 300, "decode steps timed for latency")


def main(argv):
    del argv
    cfg = FLAGS.config
    model = make_model(cfg.model)
    params = init_params(model, jax.random.key(0))
    n = FLAGS.num_events
    cons = Constraints(allow_eos=False)  # every step is a real event
    t1, tp, tk = jnp.float32(1.0), jnp.float32(1.0), jnp.int32(0)
    ids, times, track = prepare_prompt(None, 1)
    no_controls = np.full((1, 1), -1, np.int32)

    # scan sampler
    sample_and_end = make_sampler(model, SamplerConfig(n, cons))
    sampler = lambda *a: sample_and_end(*a)[0]  # noqa: E731
    t0 = time.perf_counter()
    out = jax.block_until_ready(sampler(params, ids, times, track, jax.random.key(0), t1, tp, tk, no_controls))
    compile_s = time.perf_counter() - t0
    runs = []
    for seed in (1, 2, 3):
        t0 = time.perf_counter()
        jax.block_until_ready(sampler(params, ids, times, track, jax.random.key(seed), t1, tp, tk, no_controls))
        runs.append(time.perf_counter() - t0)
    scan_rate = n / min(runs)

    # naive: full forward over the prefix for every new token
    seq_ids = np.concatenate([ids[0], np.asarray(out.ids[0])])
    seq_times = np.concatenate([times[0], np.asarray(out.times[0])])

    @jax.jit
    def naive_next(params, ids, times, index, key):
        pos = jnp.broadcast_to(jnp.arange(ids.shape[1], dtype=jnp.int32), ids.shape)
        logits, time_logits = model.apply({"params": params}, ids, times, pos, jnp.ones_like(ids))
        lg = jax.lax.dynamic_index_in_dim(logits, index, axis=1, keepdims=False)
        mask = allowed_tokens(init_track(1), cons)
        return sample_token(key, lg, mask, t1, tp, tk), time_logits[0, index]

    bucket = 128
    positions = np.linspace(1, n, FLAGS.naive_tokens).astype(int)  # prefix lengths (BOS + generated)
    for length in sorted({-(-int(p) // bucket) * bucket for p in positions}):  # compile every bucket first
        z = jnp.zeros((1, length), jnp.int32)
        jax.block_until_ready(naive_next(params, z, z.astype(jnp.float32), 0, jax.random.key(0)))
    per_token = []
    for p in positions:
        padded = -(-int(p) // bucket) * bucket
        x = np.zeros((1, padded), np.int32)
        t = np.zeros((1, padded), np.float32)
        x[0, :p], t[0, :p] = seq_ids[:p], seq_times[:p]
        t0 = time.perf_counter()
        tok, _ = naive_next(params, x, t, int(p) - 1, jax.random.key(int(p)))
        int(tok[0])  # to host, as a loop feeding tokens back must
        per_token.append(time.perf_counter() - t0)
    naive_rate = 1.0 / float(np.mean(per_token))

    # latency of one event given a context
    ctx = FLAGS.latency_context
    pre, step = make_stepper(model, SamplerConfig(1, cons))
    cache_len = ctx + FLAGS.latency_steps + 16
    ctx_track = track_tokens(seq_ids[None, :ctx], seq_times[None, :ctx])
    state = pre(params, seq_ids[None, :ctx], seq_times[None, :ctx], ctx_track, jax.random.key(9), cache_len)
    for _ in range(10):  # warm up (compile)
        state, (tok, _, _, _) = step(params, state, t1, tp, tk, no_controls)
    state = pre(params, seq_ids[None, :ctx], seq_times[None, :ctx], ctx_track, jax.random.key(9), cache_len)
    lat = []
    for _ in range(FLAGS.latency_steps):
        t0 = time.perf_counter()
        state, (tok, tv, _, _) = step(params, state, t1, tp, tk, no_controls)
        int(tok[0]), float(tv[0])  # the event on the host
        lat.append(time.perf_counter() - t0)
    lat_ms = np.array(lat) * 1e3

    print(json.dumps({
        "benchmark": "sampler_speed",
        "model": f"{cfg.model.num_layers}x{cfg.model.d_model}x{cfg.model.num_heads}h",
        "num_events": n,
        "scan_events_per_s": round(scan_rate, 1),
        "scan_compile_s": round(compile_s, 2),
        "naive_events_per_s": round(naive_rate, 1),
        "naive_timed_tokens": len(per_token),
        "naive_method": "full forward over prefix padded to x128, per-token rate averaged over positions 1..num_events",
        "speedup": round(scan_rate / naive_rate, 2),
        "latency_context": ctx,
        "latency_ms_p50": round(float(np.percentile(lat_ms, 50)), 3),
        "latency_ms_p99": round(float(np.percentile(lat_ms, 99)), 3),
        "device": jax.devices()[0].platform,
        "cpu_count": __import__("os").cpu_count(),
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    app.run(main)
