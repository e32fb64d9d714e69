r"""Training throughput and MFU of a config on this machine's devices.

    python -m benchmarks.train_throughput --config=configs/base.py [--steps=20]
    python -m benchmarks.train_throughput --baseline=torch --config.model.num_layers=6 \
        --config.model.d_model=512 --config.model.num_heads=8 --config.model.max_len=1024 \
        --config.data.seq_len=1024 --steps=3 --rounds=3

Times the real train step (config's compute dtype, data parallel over every
device) beside a baseline in the same run:
- `--baseline=fp32` (default): the same model as a plain float32 step on one
  device. Prints tokens_per_s, baseline_tokens_per_s, speedup, mfu (null
  where the device's peak FLOP/s is unknown, e.g. CPUs), flops_per_token.
- `--baseline=torch`: a plain PyTorch GPT-2 step of the same layers, width,
  heads, context, batch and vocabulary (benchmarks/torch_gpt2.py, the original
  project's model family; needs requirements-bench.txt), timed in
  alternating rounds with ours. Prints tokens_per_s, torch_tokens_per_s,
  ratio_vs_torch (medians over the rounds).
Batches are real windows of --data when it exists, else random ids of the
same shape (speed does not depend on the values).
"""

from __future__ import annotations

import json

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks.step_timer import make_step, real_or_random_batches

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/tiny.py", "model config")
flags.DEFINE_integer("steps", 20, "timed steps (after 3 warm-up steps)")
flags.DEFINE_string("data", "data/m21", "prepared data for real batches (random ids if missing)")
flags.DEFINE_enum("baseline", "fp32", ["fp32", "torch"], "what to time beside our step")
flags.DEFINE_integer("rounds", 3, "--baseline=torch: alternating rounds of --steps steps each")
flags.DEFINE_enum("torch_activation", "relu", ["relu", "gelu"], "the torch model's MLP activation (the original: relu)")


def _time_steps(cfg, devices, batches) -> float:
    return make_step(cfg, devices, batches)(len(batches) - 3)


def main(argv):
    del argv
    from yoshimidi_jax.model import model_cost
    from yoshimidi_jax.train.metrics import device_peak_flops

    cfg = FLAGS.config
    batches, kind = real_or_random_batches(cfg, FLAGS.steps + 3, FLAGS.data)
    tokens = cfg.data.batch_size * cfg.data.seq_len
    if FLAGS.baseline == "torch":
        _versus_torch(cfg, batches, kind, tokens)
        return
    seconds = _time_steps(cfg, jax.devices(), batches)
    base = cfg.copy_and_resolve_references()
    base.model.dtype = "float32"
    base.train.fsdp = False
    base_seconds = _time_steps(base, jax.devices()[:1], batches)
    cost = model_cost(cfg.model, context=cfg.data.seq_len)
    peak = device_peak_flops()
    tps = tokens / seconds
    print(json.dumps({
        "tokens_per_s": round(tps, 1),
        "baseline_tokens_per_s": round(tokens / base_seconds, 1),
        "speedup": round(base_seconds / seconds, 3),
        "mfu": round(cost.flops_per_token * tps / (peak * jax.device_count()), 4) if peak else None,
        "flops_per_token": cost.flops_per_token,
        "params": cost.params,
        "dtype": cfg.model.dtype,
        "devices": jax.device_count(),
        "device": jax.devices()[0].device_kind,
        "batch": [cfg.data.batch_size, cfg.data.seq_len],
        "batches": kind,
    }))


def _versus_torch(cfg, batches, kind, tokens) -> None:
    from benchmarks.torch_gpt2 import make_torch_step

    m = cfg.model
    ours = make_step(cfg, jax.devices()[:1], batches)
    theirs = make_torch_step(m.vocab_size, m.num_layers, m.d_model, m.num_heads, cfg.data.seq_len,
                             cfg.data.batch_size, FLAGS.torch_activation)
    ours_s, torch_s = [], []
    for _ in range(FLAGS.rounds):  # alternating, so that both see the same machine weather
        ours_s.append(ours(FLAGS.steps))
        torch_s.append(theirs(FLAGS.steps))
    import torch

    tps, ttps = tokens / float(np.median(ours_s)), tokens / float(np.median(torch_s))
    print(json.dumps({
        "tokens_per_s": round(tps, 1),
        "torch_tokens_per_s": round(ttps, 1),
        "ratio_vs_torch": round(tps / ttps, 3),
        "rounds_tokens_per_s": [round(tokens / s, 1) for s in ours_s],
        "rounds_torch_tokens_per_s": [round(tokens / s, 1) for s in torch_s],
        "dims": [m.num_layers, m.d_model, m.num_heads, cfg.data.seq_len, cfg.data.batch_size],
        "activation": m.get("activation", "gelu"), "torch_activation": FLAGS.torch_activation,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "dtype": m.dtype, "device": jax.devices()[0].device_kind, "batches": kind,
    }))


if __name__ == "__main__":
    app.run(main)
