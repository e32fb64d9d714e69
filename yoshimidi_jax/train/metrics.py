"""Metrics: metrics.jsonl (one JSON object per line) and TensorBoard events
(tensorboardX: no TensorFlow needed), plus MFU where the device's peak is known."""

from __future__ import annotations

import json
import os

import jax

from yoshimidi_jax.files import write_atomic

# dense bf16 peak FLOP/s per device (no sparsity)
PEAK_FLOPS = {
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10": 125e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5p": 459e12,
}


def device_peak_flops(device: jax.Device | None = None) -> float | None:
    """Peak FLOP/s of one device, or None where unknown (CPUs)."""
    device = device or jax.devices()[0]
    kind = getattr(device, "device_kind", "")
    for name, peak in PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return peak
    return None


class MetricsWriter:
    """Appends to workdir/metrics.jsonl and workdir/tb/. Only process 0 writes."""

    def __init__(self, workdir: str, resume_step: int = 0):
        self.enabled = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.tb = None
        if not self.enabled:
            return
        truncate_after(self.path, resume_step)
        from tensorboardX import SummaryWriter

        self.tb = SummaryWriter(os.path.join(workdir, "tb"), purge_step=resume_step + 1 if resume_step else None)

    def write(self, step: int, metrics: dict[str, float], prefix: str = "") -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{prefix + k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        for k, v in metrics.items():
            self.tb.add_scalar(prefix + k, float(v), int(step))
        self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def truncate_after(path: str, step: int) -> None:
    """Drops rows of steps after `step` (a resumed run writes them again)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        rows = [line for line in f if line.strip()]
    kept = [line for line in rows if json.loads(line)["step"] <= step]
    if len(kept) != len(rows):
        write_atomic(path, "".join(kept))


def read_metrics(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
