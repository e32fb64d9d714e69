"""The per-step constraint mask of constrained decoding, and a numpy checker.

Rules for the next sampled token (given the set of sounding pitches):
- never PAD, BOS, SEP; EOS only if allowed (it ends the piece); after EOS only PAD;
- NOTE_ON(p) only for p in [pitch_lo, pitch_hi] and p not sounding;
- NOTE_OFF(p) only for p sounding;
- CONTROL only if allow_controls (the sampler may still *insert* given controls);
- VELOCITY and TIME always;
- right after an inserted CONTROL: only NOTE_ON (when any is allowed).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.tokens import BOS, EOS, PAD, SEP, TIME, Vocab
from yoshimidi_jax.tokens.vocab import NUM_PITCHES


@dataclasses.dataclass(frozen=True)
class Constraints:
    pitch_lo: int = 0
    pitch_hi: int = 127
    allow_controls: bool = False
    allow_eos: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.pitch_lo <= self.pitch_hi <= 127:
            raise ValueError(f"bad pitch range [{self.pitch_lo}, {self.pitch_hi}]")


def allowed_tokens(
    sounding: jax.Array,
    done: jax.Array,
    note_on_only: jax.Array,
    constraints: Constraints = Constraints(),
    vocab: Vocab = Vocab(),
) -> jax.Array:
    """sounding [B, 128] bool, done [B] bool, note_on_only [B] bool -> allowed [B, V] bool.
    note_on_only (a note is pending after an inserted CONTROL): only its
    VELOCITY or its NOTE_ON may follow."""
    b = sounding.shape[0]
    pitches = jnp.arange(NUM_PITCHES)
    in_range = (pitches >= constraints.pitch_lo) & (pitches <= constraints.pitch_hi)
    note_on = in_range[None] & ~sounding
    note_off = sounding
    specials = jnp.zeros((b, vocab.note_on), bool)
    specials = specials.at[:, TIME].set(True).at[:, EOS].set(constraints.allow_eos)
    velocity = jnp.ones((b, vocab.control - vocab.velocity), bool)
    control = jnp.full((b, vocab.size - vocab.control), constraints.allow_controls)
    base = jnp.concatenate([specials, note_on, note_off, velocity, control], axis=1)

    only_on = jnp.concatenate(
        [jnp.zeros((b, vocab.note_on), bool), note_on, jnp.zeros((b, vocab.velocity - vocab.note_off), bool),
         velocity, jnp.zeros((b, vocab.size - vocab.control), bool)], axis=1
    )
    use_only_on = note_on_only & note_on.any(axis=1)
    allowed = jnp.where(use_only_on[:, None], only_on, base)
    pad_only = jnp.zeros((b, vocab.size), bool).at[:, PAD].set(True)
    return jnp.where(done[:, None], pad_only, allowed)


def sounding_after(ids: np.ndarray, vocab: Vocab = Vocab()) -> np.ndarray:
    """Pitches still sounding at the end of a token sequence: [128] bool."""
    sounding = np.zeros(NUM_PITCHES, bool)
    for t in np.asarray(ids):
        if vocab.note_on <= t < vocab.note_off:
            sounding[t - vocab.note_on] = True
        elif vocab.note_off <= t < vocab.velocity:
            sounding[t - vocab.note_off] = False
    return sounding


def violations(
    ids: np.ndarray,
    forced: np.ndarray | None = None,
    sounding: np.ndarray | None = None,
    constraints: Constraints = Constraints(),
    vocab: Vocab = Vocab(),
) -> list[str]:
    """Replays sampled ids [N] (forced: inserted control tokens, exempt) from a
    sounding set and lists every broken rule (empty: all good)."""
    sounding = np.zeros(NUM_PITCHES, bool) if sounding is None else sounding.copy()
    forced = np.zeros(len(ids), bool) if forced is None else forced
    out, done, after_control = [], False, False
    for i, t in enumerate(np.asarray(ids).tolist()):
        name = vocab.describe(t)
        if after_control and not done and not forced[i]:
            r = np.arange(NUM_PITCHES)
            can_on = ((r >= constraints.pitch_lo) & (r <= constraints.pitch_hi) & ~sounding).any()
            if can_on and not vocab.note_on <= t < vocab.note_off:
                if vocab.velocity <= t < vocab.control:
                    continue  # the note's VELOCITY: its NOTE_ON must still come
                out.append(f"{i}: {name} after an inserted CONTROL (VELOCITY or NOTE_ON expected)")
        if done:
            if t != PAD:
                out.append(f"{i}: {name} after EOS")
            continue
        if forced[i]:
            if not vocab.control <= t < vocab.size:
                out.append(f"{i}: forced token {name} is not a CONTROL")
            after_control = True
            continue
        if t in (PAD, BOS, SEP):
            out.append(f"{i}: {name} sampled")
        elif t == EOS:
            if not constraints.allow_eos:
                out.append(f"{i}: EOS not allowed")
            done = True
        elif vocab.note_on <= t < vocab.note_off:
            p = t - vocab.note_on
            if sounding[p]:
                out.append(f"{i}: {name} while sounding")
            if not constraints.pitch_lo <= p <= constraints.pitch_hi:
                out.append(f"{i}: {name} out of range")
            sounding[p] = True
        elif vocab.note_off <= t < vocab.velocity:
            p = t - vocab.note_off
            if not sounding[p]:
                out.append(f"{i}: {name} not sounding")
            sounding[p] = False
        elif vocab.control <= t < vocab.size and not constraints.allow_controls:
            out.append(f"{i}: {name} sampled without allow_controls")
        after_control = False
    return out
