"""Scoring a model on the held-out split, per note as well as per token, so
that models that write time differently (continuous TIME positions with a
two-hot time head, or a grid of TIME_SHIFT tokens) compare fairly.

The eval split's pieces (one epoch, in order, controls and time written as
`spec` says) are laid end to end and cut into windows of seq_len + 1 tokens
that overlap by one, so every token but each piece's BOS is a target exactly
once, whatever the encoding (packed training windows would leave a different
token unscored at each window start). For every target: the token's
cross-entropy, and at a TIME target the time head's log-probability of the
target's bin on a grid of `time_bin_s` (TimeCodec.grid_bin_log_prob: the
same outcomes a TIME_SHIFT model's shift tokens spell out). A TIME_SHIFT
model's time is in its token cross-entropy. Dividing by the number of notes
(NOTE_ON targets) gives nats per note: what each model pays to write the
same music, whatever its number of tokens per note. CONTROL targets are
conditions, not music: they are left out unless count_controls.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from yoshimidi_jax.data.pipeline import BatchSpec
from yoshimidi_jax.eval.splits import split_arrays
from yoshimidi_jax.model import Transformer
from yoshimidi_jax.sample.copying import copy_distributions, mixed_log_probs
from yoshimidi_jax.tokens import TIME, Vocab
from yoshimidi_jax.tokens.sounding import ages_from_slots
from yoshimidi_jax.tokens.sounding import unpack as unpack_sounding


@dataclasses.dataclass(frozen=True)
class HeldoutScore:
    token_nats: float  # summed token cross-entropy of the scored targets
    time_nats: float  # summed time-bin negative log-likelihood at TIME targets (two-hot models)
    tokens: int  # scored targets
    notes: int  # scored NOTE_ON targets

    @property
    def nats_per_token(self) -> float:
        return (self.token_nats + self.time_nats) / max(self.tokens, 1)

    @property
    def nats_per_note(self) -> float:
        return (self.token_nats + self.time_nats) / max(self.notes, 1)

    @property
    def tokens_per_note(self) -> float:
        return self.tokens / max(self.notes, 1)

    def as_dict(self) -> dict:
        return {"nats_per_note": round(self.nats_per_note, 4), "nats_per_token": round(self.nats_per_token, 4),
                "tokens_per_note": round(self.tokens_per_note, 4), "time_nats_per_note":
                round(self.time_nats / max(self.notes, 1), 4), "tokens": self.tokens, "notes": self.notes}


def eval_spec(seq_len: int, batch_size: int, controls: str, time_shifts: int = 0, time_shift_s: float = 0.01,
              seed: int = 1) -> BatchSpec:
    """One ordered epoch of the eval split. controls: 'none' (no CONTROL
    token, no style: the unconditional mode), 'all' (every press's full control and the style), or
    'train' (the training defaults' dropout)."""
    names = ("p_drop_control_sequence", "p_drop_control_press", "p_drop_control_attribute", "p_drop_style")
    drops = {"none": dict(zip(names, (1.0, 0.0, 0.0, 1.0))), "all": dict(zip(names, (0.0, 0.0, 0.0, 0.0))),
             "train": {}}  # BatchSpec's own defaults: the training config's
    if controls not in drops:
        raise ValueError(f"controls={controls!r}: one of {sorted(drops)}")
    return BatchSpec(seq_len=seq_len, batch_size=batch_size, seed=seed, shuffle=False, num_epochs=1,
                     augment_velocity=True, drop_remainder=False,
                     vocab=Vocab(time_shifts=time_shifts, time_shift_s=time_shift_s), **drops[controls])


def score_heldout(model: Transformer, params: Any, data_dir: str, spec: BatchSpec, time_bin_s: float = 0.01,
                  count_controls: bool = False, max_batches: int | None = None, copy_context: int = 0,
                  copy_weight: float = 0.0) -> HeldoutScore:
    """The model's HeldoutScore on the eval split of `data_dir`, batches as `spec` makes them.
    copy_context, copy_weight: the score of the model mixed with what followed
    the same last tokens before in the window (sample/copying.py; 0: the model alone)."""
    vocab, codec = model.vocab, model.codec
    if spec.vocab != vocab:
        raise ValueError(f"the batches write time with {spec.vocab.time_shifts} shift ids ({spec.vocab.version}), "
                         f"the model with {vocab.time_shifts} ({vocab.version})")

    @jax.jit
    def sums(batch):
        logits, time_logits = model.apply({"params": params}, batch["inputs"], batch["input_times"],
                                          batch["positions"], batch["segment_ids"], batch["styles"],
                                          batch["sounding_start"], batch["age_start"])
        targets = batch["targets"]
        mask = batch["loss_mask"] & (count_controls | ~vocab.is_control(targets))
        if copy_context > 0:
            p_copy, matched = copy_distributions(batch["inputs"], batch["segment_ids"], copy_context, logits.shape[-1])
            logits = mixed_log_probs(logits, p_copy, matched, copy_weight)
        token = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
        at_time = mask & (targets == TIME)
        time = -codec.grid_bin_log_prob(time_logits.astype(jnp.float32), batch["target_times"], time_bin_s, jnp)
        return (jnp.where(mask, token, 0.0).sum(), jnp.where(at_time, time, 0.0).sum(), mask.sum(),
                (mask & vocab.is_note_on(targets)).sum())

    totals = np.zeros(4)
    for i, batch in enumerate(overlapping_windows(data_dir, spec)):
        if max_batches is not None and i >= max_batches:
            break
        totals += np.asarray([float(x) for x in sums(batch)])
    return HeldoutScore(float(totals[0]), float(totals[1]), int(totals[2]), int(totals[3]))


def overlapping_windows(data_dir: str, spec: BatchSpec):
    """Batches [spec.batch_size, spec.seq_len] of the eval split's pieces laid
    end to end, window w's first token being window w - 1's last target
    (rows past the end are padding: no target counts there)."""
    pieces = [(p["ids"], p["times"], p["style"], p["sounding"], p["age"])
              for p in split_arrays(data_dir, spec, "eval")]
    ids = np.concatenate([p[0] for p in pieces]).astype(np.int32)
    times = np.concatenate([p[1] for p in pieces]).astype(np.float32)
    styles = np.concatenate([p[2] for p in pieces]).astype(np.int32)
    sounding = np.concatenate([p[3] for p in pieces]).astype(np.int32)
    age = np.concatenate([p[4] for p in pieces]).astype(np.float32)
    segments = np.repeat(np.arange(1, len(pieces) + 1, dtype=np.int32), [len(p[0]) for p in pieces])
    positions = np.concatenate([np.arange(len(p[0]), dtype=np.int32) for p in pieces])
    streams = {"ids": ids, "times": times, "segments": segments, "positions": positions, "styles": styles,
               "sounding": sounding, "age": age}
    L = spec.seq_len
    starts = np.arange(0, max(len(ids) - 1, 1), L)
    for first in range(0, len(starts), spec.batch_size):
        rows = starts[first:first + spec.batch_size]
        batch = {k: np.zeros((spec.batch_size, L + 1, *v.shape[1:]), v.dtype) for k, v in streams.items()}
        for r, s in enumerate(rows):
            n = min(L + 1, len(ids) - s)
            for key, values in streams.items():
                batch[key][r, :n] = values[s:s + n]
        seg = batch["segments"]
        # positions restart at each window (the model sees only the window); a
        # piece continuing from the previous window keeps counting from there
        positions_in = batch["positions"] - np.where(seg == seg[:, :1], batch["positions"][:, :1], 0)
        yield {
            "inputs": batch["ids"][:, :-1], "input_times": batch["times"][:, :-1],
            "targets": batch["ids"][:, 1:], "target_times": batch["times"][:, 1:],
            "segment_ids": seg[:, :-1], "positions": positions_in[:, :-1], "styles": batch["styles"][:, :-1],
            "sounding_start": unpack_sounding(batch["sounding"][:, 0]),
            "age_start": ages_from_slots(unpack_sounding(batch["sounding"][:, 0]), batch["age"][:, 0]),
            "loss_mask": (seg[:, 1:] != 0) & (seg[:, 1:] == seg[:, :-1]),
        }
