r"""Press -> notes latency of the step-by-step play API (play/player.py).

    python -m benchmarks.press_latency --workdir=runs/tiny [--presses=400]

A player-like script (play/walk.py) is played press by press with
releases between, as the instrument does; each press is timed from the call
to the model's pitches on the host (forced TIME/CONTROL/VELOCITY fed in one
decode call, then one step per key; cache refills included, compiles not:
Player.warmup runs first). Baseline in the same run: the same presses fed
token by token through make_stepper's one-token step (one jitted call per
token, the sampler's own step), to show what fusing a press into one call
buys. Prints one JSON line: p50_ms, p99_ms, max_ms, baseline_p50_ms,
baseline_p99_ms, ratio_p99 (baseline / fused).
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from yoshimidi_jax.sample import SamplerConfig, make_stepper, prepare_prompt
from yoshimidi_jax.sample.constraints import Constraints
from yoshimidi_jax.play.player import Player
from yoshimidi_jax.play.press import PlaySettings, Press
from yoshimidi_jax.play.walk import player_walk
from yoshimidi_jax.restore import restore

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/tiny", "a trained run (random init where it has no checkpoint)")
flags.DEFINE_integer("presses", 400, "presses timed")
flags.DEFINE_bool("strict", False, "strict masks")


def fused(restored, walk) -> np.ndarray:
    player = Player(restored.model, restored.params)
    settings = PlaySettings(strict=FLAGS.strict)
    player.warmup(settings)
    state = player.start(jax.random.key(0))
    out, held = [], None
    for i, p in enumerate(walk):
        if held is not None:
            state = player.release(state, p.dt_s / 2, held.pitches)
        t0 = time.perf_counter()
        held, state = player.press(state, Press(p.dt_s / 2 if i else 0.0, p.velocity, p.num_keys, p.interval), settings)
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1e3


def token_by_token(restored, walk) -> np.ndarray:
    """The baseline: one jitted sampler step per token of a press (the same
    number of new tokens as the fused press: forced ones inserted as controls
    would be, then one sampled step per key)."""
    model = restored.model
    n = restored.config.model.max_len
    pre, step = make_stepper(model, SamplerConfig(n, Constraints(allow_eos=False)))
    ids, times, track = prepare_prompt(None, 1)
    knobs = (jnp.float32(1.0), jnp.float32(0.95), jnp.int32(0), np.full((1, 1), -1, np.int32))
    state = pre(restored.params, ids, times, track, jax.random.key(0), n)
    state, _ = step(restored.params, state, *knobs)  # compile
    used, out = 1, []
    for p in walk:
        tokens = 3 + p.num_keys  # TIME, CONTROL, VELOCITY, then the keys
        if used + tokens >= n:  # refill, like the player's cache (not timed here either way)
            state = pre(restored.params, ids, times, track, jax.random.key(used), n)
            used = 1
        t0 = time.perf_counter()
        for _ in range(tokens):
            state, (tok, _, _, _) = step(restored.params, state, *knobs)
        np.asarray(tok)
        out.append(time.perf_counter() - t0)
        used += tokens
    return np.array(out) * 1e3


def main(argv):
    del argv
    restored = restore(FLAGS.workdir)
    walk = player_walk(FLAGS.presses, seed=0)
    ms = fused(restored, walk)
    base = token_by_token(restored, walk)
    p = lambda a, q: round(float(np.percentile(a, q)), 3)  # noqa: E731
    print(json.dumps({
        "step": restored.step, "presses": len(ms), "strict": FLAGS.strict,
        "p50_ms": p(ms, 50), "p99_ms": p(ms, 99), "max_ms": round(float(ms.max()), 3),
        "baseline_p50_ms": p(base, 50), "baseline_p99_ms": p(base, 99),
        "ratio_p99": round(p(base, 99) / p(ms, 99), 3),
        "mean_keys": round(float(np.mean([w.num_keys for w in walk])), 3),
    }))


if __name__ == "__main__":
    app.run(main)
