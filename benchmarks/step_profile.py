r"""Where one training step's time goes, op by op: the jitted step traced with
jax.profiler, each XLA op's time summed into the model part it belongs to.

    python -m benchmarks.step_profile --config.model.num_layers=6 --config.model.d_model=512 \
        --config.model.num_heads=8 --config.model.max_len=1024 --config.data.seq_len=1024 --steps=2
    python -m benchmarks.step_profile ... --torch     # the same for the PyTorch GPT-2 baseline

Each XLA op (a fusion, a dot, a copy) of the compiled step carries the
`op_name` of the JAX code that made it (flax module path and named scopes:
`block_0/mlp/up/dot_general`, `transpose(jvp(...))` for the backward pass).
Its durations in the trace are summed per part (forward and backward apart)
over --steps steps. Ops run on two threads at once on a 2-core CPU, so the
parts add up to more than the step's wall time: `thread_ms` is per step and
summed over threads, `share` is of that sum. With --torch, torch.profiler
does the same for the baseline's aten ops. Prints one JSON line.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/tiny.py", "model config")
flags.DEFINE_integer("steps", 3, "traced steps (after 3 warm-up steps)")
flags.DEFINE_string("data", "data/m21", "prepared data for real batches (random ids if missing)")
flags.DEFINE_bool("torch", False, "also profile the PyTorch GPT-2 baseline of the same dimensions")
flags.DEFINE_integer("top", 12, "the most expensive single ops to list")

# (part, pattern on op_name); the first match wins, so specific before general
PARTS = (
    ("attention: q/k/v/out projections", r"/attn/(query|key|value|out|projections)/"),
    ("attention: rope", r"/rope/"),
    ("attention: causal and segment mask", r"segment_mask"),
    ("attention: scores, softmax, weighted sum", r"/attend/"),
    ("attention: other", r"/attn/"),
    ("mlp: up/down matmuls", r"/mlp/(up|down)/dot_general"),
    ("mlp: activation and biases", r"/mlp/"),
    ("norms", r"_norm/"),
    ("press context (control features)", r"press_context"),
    ("control logit bias", r"control_logit_bias"),
    ("output heads (token, time)", r"/(token_head|time_head)/"),
    ("embedding (tokens, two-hot time, controls)", r"\.embed/|/token_embed/"),
    ("loss and metrics", r"[/(]loss[/)]|softmax_cross_entropy|log_softmax"),
    ("model, other", r"Transformer"),
)


def part_of(op_name: str) -> str:
    """An op's part of the step from its op_name; forward/backward apart."""
    if "jvp(" not in op_name and "transpose(" not in op_name:
        return "optimizer, metrics, glue" if op_name else "runtime (copies, params)"
    direction = "backward" if "transpose(" in op_name else "forward"
    for part, pattern in PARTS:
        if re.search(pattern, op_name):
            return f"{part} [{direction}]"
    return f"other [{direction}]"


def op_names_of(hlo_text: str) -> dict[str, str]:
    """Instruction name -> op_name metadata, for every instruction of the compiled module."""
    out = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
        if not m:
            continue
        op = re.search(r'op_name="((?:[^"\\]|\\.)*)"', line)
        if op is not None or m.group(1) not in out:
            out[m.group(1)] = op.group(1).replace("\\'", "'") if op else ""
    return out


def _trace_events(run, steps: int) -> list[dict]:
    tmp = tempfile.mkdtemp(prefix="step_profile_")
    jax.profiler.start_trace(tmp, create_perfetto_trace=True)
    run(steps)
    jax.profiler.stop_trace()
    path = glob.glob(os.path.join(tmp, "**", "perfetto_trace.json.gz"), recursive=True)[0]
    with gzip.open(path) as f:
        data = json.load(f)
    return [e for e in (data["traceEvents"] if isinstance(data, dict) else data) if e.get("ph") == "X"]


def profile_jax(cfg, batches, steps: int) -> dict:
    from benchmarks.step_timer import make_step

    run, step, state, batch = make_step(cfg, jax.devices()[:1], batches, expose=True)
    ops = op_names_of(step.lower(state(), batch).compile().as_text())
    start = time.perf_counter()
    run(steps)
    wall_ms = (time.perf_counter() - start) * 1e3 / steps
    events = _trace_events(run, steps)
    parts: dict[str, float] = collections.defaultdict(float)
    single: dict[str, float] = collections.defaultdict(float)
    for e in events:
        name = e["name"]
        if name not in ops:
            continue
        parts[part_of(ops[name])] += e["dur"] / 1e3 / steps
        single[f"{name} ({ops[name][-90:]})"] += e["dur"] / 1e3 / steps
    return _summary(parts, single, wall_ms)


def profile_torch(cfg, steps: int) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.torch_gpt2 import make_torch_step

    m = cfg.model
    run = make_torch_step(m.vocab_size, m.num_layers, m.d_model, m.num_heads, cfg.data.seq_len,
                          cfg.data.batch_size)
    wall_ms = run(steps) * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(steps)
    parts: dict[str, float] = collections.defaultdict(float)
    single: dict[str, float] = collections.defaultdict(float)
    for e in prof.key_averages():
        # self time: each aten op once, its children apart
        ms = e.self_cpu_time_total / 1e3 / steps
        single[e.key] += ms
        parts[_torch_part(e.key)] += ms
    del torch
    return _summary(parts, single, wall_ms)


def _torch_part(key: str) -> str:
    rules = (("attention (flash, fwd+bwd)", ("flash", "scaled_dot_product")), ("matmuls", ("mm", "addmm", "matmul", "linear")),
             ("optimizer", ("adam", "_foreach", "lerp", "sqrt", "addcdiv")), ("norms", ("layer_norm",)),
             ("activation", ("relu", "gelu", "threshold")), ("loss", ("cross_entropy", "log_softmax", "nll")),
             ("embedding", ("embedding",)))
    k = key.lower()
    for part, needles in rules:
        if any(n in k for n in needles):
            return part
    return "other"


def _summary(parts: dict, single: dict, wall_ms: float) -> dict:
    total = sum(parts.values())
    top = sorted(single.items(), key=lambda kv: -kv[1])[: FLAGS.top]
    return {
        "step_wall_ms": round(wall_ms, 1),
        "thread_ms": round(total, 2),
        "parts_ms": {k: round(v, 2) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
        "share": {k: round(v / total, 3) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
        "top_ops_ms": {k: round(v, 2) for k, v in top},
    }


def main(argv):
    del argv
    from benchmarks.step_timer import real_or_random_batches

    cfg = FLAGS.config
    batches, kind = real_or_random_batches(cfg, FLAGS.steps + 3, FLAGS.data)
    m = cfg.model
    out = {"dims": [m.num_layers, m.d_model, m.num_heads, cfg.data.seq_len, cfg.data.batch_size],
           "activation": m.get("activation", "gelu"), "attention_block": m.get("attention_block", 0),
           "batches": kind, "jax": profile_jax(cfg, batches, FLAGS.steps)}
    if FLAGS.torch:
        out["torch"] = profile_torch(cfg, FLAGS.steps)
        out["wall_ratio_jax_over_torch"] = round(out["jax"]["step_wall_ms"] / out["torch"]["step_wall_ms"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    app.run(main)
