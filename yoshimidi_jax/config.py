"""Checking a run's config before any work starts, and saving it with the run."""

from __future__ import annotations

import json
import os

import ml_collections

from yoshimidi_jax.files import write_atomic
from yoshimidi_jax.tokens import Vocab


class ConfigError(ValueError):
    """A config that cannot run: names the field and why."""


def _positive(cfg: ml_collections.ConfigDict, *paths: str) -> list[str]:
    errors = []
    for path in paths:
        value = cfg
        for part in path.split("."):
            value = value[part]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            errors.append(f"{path}={value!r}: must be a number > 0")
    return errors


def num_streams(cfg: ml_collections.ConfigDict, num_processes: int) -> int:
    """The data streams of a run: data.streams, or one per process when 0."""
    return int(cfg.data.get("streams", 0)) or num_processes


def process_split_errors(cfg: ml_collections.ConfigDict, num_processes: int) -> list[str]:
    """What keeps the global batch from splitting over num_processes."""
    d = cfg.data
    streams = num_streams(cfg, num_processes)
    errors = []
    if streams % num_processes:
        errors.append(f"data.streams={d.get('streams', 0)} is not a multiple of the {num_processes} processes "
                      "(each process reads whole streams)")
    if d.batch_size % streams:
        errors.append(f"data.batch_size={d.batch_size} (the global batch) does not divide into {streams} data "
                      f"streams{' (one per process)' if not d.get('streams', 0) else ''}")
    return errors


def check_config(cfg: ml_collections.ConfigDict, num_devices: int = 1, check_data: bool = True,
                 num_processes: int = 1) -> None:
    """Raises ConfigError listing every problem (unknown fields and wrong types
    on the command line are refused earlier, by ml_collections' config_flags)."""
    m, d, t = cfg.model, cfg.data, cfg.train
    errors = _positive(
        cfg, "model.num_layers", "model.d_model", "model.num_heads", "model.max_len", "data.seq_len",
        "data.batch_size", "train.steps", "train.lr", "train.log_every", "train.eval_every",
        "train.eval_batches", "train.checkpoint_every", "train.keep_checkpoints", "train.grad_accum_steps",
    )
    if not errors:
        if m.d_model % m.num_heads:
            errors.append(f"model.d_model={m.d_model} is not divisible by model.num_heads={m.num_heads}")
        elif (m.d_model // m.num_heads) % 2 and m.positional == "rope":
            errors.append(f"head size {m.d_model // m.num_heads} must be even for RoPE")
        if d.seq_len > m.max_len:
            errors.append(f"data.seq_len={d.seq_len} > model.max_len={m.max_len}")
        if d.batch_size % num_devices:
            errors.append(f"data.batch_size={d.batch_size} is not divisible by the {num_devices} devices")
        errors += process_split_errors(cfg, num_processes)
        if t.warmup_steps < 0 or t.warmup_steps >= t.steps:
            errors.append(f"train.warmup_steps={t.warmup_steps} must be in [0, train.steps={t.steps})")
        if t.decay_steps != 0 and t.decay_steps <= t.warmup_steps:
            errors.append(f"train.decay_steps={t.decay_steps} must be 0 (train.steps) or > train.warmup_steps")
    if m.positional not in ("rope", "learned"):
        errors.append(f"model.positional={m.positional!r}: 'rope' or 'learned'")
    if m.activation not in ("gelu", "relu"):
        errors.append(f"model.activation={m.activation!r}: 'gelu' or 'relu'")
    if not isinstance(m.attention_block, int) or m.attention_block < 0:
        errors.append(f"model.attention_block={m.attention_block!r}: an integer >= 0 (0: off)")
    if m.attention not in ("blocks", "jax", "cudnn"):
        errors.append(f"model.attention={m.attention!r}: 'blocks', 'jax' or 'cudnn'")
    if m.dtype not in ("float32", "bfloat16", "float16"):
        errors.append(f"model.dtype={m.dtype!r}: 'float32', 'bfloat16' or 'float16'")
    for name in ("p_drop_control_sequence", "p_drop_control_press", "p_drop_control_attribute", "p_drop_style"):
        if not 0.0 <= d[name] <= 1.0:
            errors.append(f"data.{name}={d[name]!r}: a probability in [0, 1]")
    for name, zero in (("max_piece_tokens", "whole pieces"), ("read_threads", "read in the training thread"),
                       ("prefetch_pieces", "nothing made ahead")):
        value = d.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            errors.append(f"data.{name}={value!r}: an integer >= 0 (0: {zero})")
    vocab, records = model_vocab(m), Vocab()
    if not isinstance(m.time_shifts, int) or not 0 <= m.time_shifts <= 1000:
        errors.append(f"model.time_shifts={m.time_shifts!r}: an integer in [0, 1000] (0: continuous time)")
    elif m.vocab_size != vocab.size:
        errors.append(f"model.vocab_size={m.vocab_size} differs from the tokenizer's {vocab.size} "
                      f"(with model.time_shifts={m.time_shifts})")
    if m.time_shift_s <= 0:
        errors.append(f"model.time_shift_s={m.time_shift_s!r}: seconds > 0")
    if not isinstance(m.num_time_supports, int) or m.num_time_supports < 2:
        errors.append(f"model.num_time_supports={m.num_time_supports!r}: an integer >= 2")
    if check_data and not os.path.exists(os.path.join(d.path, "manifest.json")):
        errors.append(
            f"data.path={d.path!r}: no manifest.json there; run "
            f"`python -m experiments.prepare --source=music21 --out={d.path}` first"
        )
    elif check_data:
        with open(os.path.join(d.path, "manifest.json")) as f:
            version = json.load(f).get("vocab_version")
        if version != records.version:
            errors.append(f"data.path={d.path!r} was prepared with vocabulary {version!r}, not {records.version!r}")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def model_vocab(model_cfg: ml_collections.ConfigDict) -> Vocab:
    """The vocabulary a model config reads and writes (its TIME_SHIFT block, if any)."""
    return Vocab(time_shifts=model_cfg.time_shifts, time_shift_s=model_cfg.time_shift_s)


def save_config(cfg: ml_collections.ConfigDict, path: str) -> None:
    """Atomically (another process may be reading it)."""
    write_atomic(path, cfg.to_json_best_effort(indent=1, sort_keys=True))


# fields that configs no longer have; a run saved before their removal still
# loads (and resumes: they never changed what was computed)
RETIRED_FIELDS = ("model.dropout", "model.num_velocity_bins")
# fields added since the first runs, with the value that reproduces a run saved
# before them (migration values, not defaults: a new run's defaults are the
# Transformer's fields, model/transformer.py, and configs/common.py)
ADDED_FIELDS = {"data.streams": 0, "model.rope_base": 10_000.0, "model.norm": "rmsnorm",
                "model.factored_controls": False, "model.control_reference": False, "model.control_bias": False,
                "model.control_bias_scale": 1.0, "model.activation": "gelu", "model.attention_block": 0,
                "model.attention": "blocks", "model.time_shifts": 0, "model.time_shift_s": 0.01,
                "model.sounding_input": False, "model.note_age_input": False, "model.age_edges_scale": 1.0, "model.num_styles": 0, "data.p_drop_style": 0.0,
                "data.max_piece_tokens": 0,
                # how the data is read ahead: never changed a batch, so any value reproduces an older run
                "data.read_threads": 2, "data.prefetch_pieces": 32}


def load_config(path: str) -> ml_collections.ConfigDict:
    """A saved config.json, without its RETIRED_FIELDS and with the
    ADDED_FIELDS it was saved without."""
    with open(path) as f:
        data = json.load(f)
    for field in RETIRED_FIELDS:
        section, name = field.split(".")
        data.get(section, {}).pop(name, None)
    for field, value in ADDED_FIELDS.items():
        section, name = field.split(".")
        data.setdefault(section, {}).setdefault(name, value)
    return ml_collections.ConfigDict(data)


def differences(a: ml_collections.ConfigDict, b: ml_collections.ConfigDict) -> list[str]:
    """Fields whose values differ (for resuming with a changed config)."""
    fa, fb = flatten(a.to_dict()), flatten(b.to_dict())
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def flatten(d: dict, prefix: str = "") -> dict:
    """{"model": {"d_model": 128}} -> {"model.d_model": 128}."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
