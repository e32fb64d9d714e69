"""Constrained sampling: one jitted function, lax.scan over new positions with
the explicit KV cache of Transformer.decode.

    sampler = make_sampler(model, SamplerConfig(num_steps=512))
    out = sampler(params, prompt_ids, prompt_times, track, key, temperature, top_p, top_k, controls)

The prompt (starting with BOS) is prefilled into the cache in one call; each
scan step samples the next id from the masked, temperature/top-k/top-p
filtered logits, reads a time value from the time head where the id is TIME
(log-time expectation, or a sample over the K supports), feeds it back, and
keeps a Track (sample/tracker.py: sounding pitches, velocity in force, the
open press...) in the carry. Per-press controls: `controls` [B, C] (CONTROL
ids, -1 = none) are inserted one by one where the model starts a press (it
samples a CONTROL of its own, a VELOCITY or a NOTE_ON while no press is
open), so the model's whole probability of starting a note is kept; the press
is then sampled given the control. Where no control is given, the model's own
CONTROL tokens are sampled like any other (Constraints.allow_controls).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.model import Transformer, init_cache
from yoshimidi_jax.sample.constraints import Constraints, allowed_tokens
from yoshimidi_jax.sample.tracker import Track, advance, track_tokens
from yoshimidi_jax.tokens import BOS, EOS, PAD, TIME, TokenSequence, Vocab, decode

MASKED = -1e30


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    num_steps: int = 512  # new positions (max events)
    constraints: Constraints = Constraints()
    time_mode: str = "refined"  # 'refined' | 'expectation' | 'sample' (see time_value)


class SampleOutput(NamedTuple):
    ids: jax.Array  # [B, N] int32 (PAD after EOS)
    times: jax.Array  # [B, N] float32 seconds (0 except at TIME)
    forced: jax.Array  # [B, N] bool: an inserted CONTROL, not sampled
    agreement: jax.Array  # [B, N] float32: strict mode, where it narrowed the choice: the
    #                       probability the model gave the allowed ids (grammar-masked, T=1); else -1


def filter_logits(
    logits: jax.Array, mask: jax.Array, temperature: jax.Array, top_p: jax.Array, top_k: jax.Array
) -> jax.Array:
    """[B, V] -> logits with disallowed, beyond-top-k and beyond-top-p ids at MASKED.
    top_k <= 0 and top_p >= 1 disable those filters."""
    v = logits.shape[-1]
    x = jnp.where(mask, logits.astype(jnp.float32) / jnp.maximum(temperature, 1e-6), MASKED)
    desc = -jnp.sort(-x, axis=-1)
    kth = jnp.take(desc, jnp.clip(top_k - 1, 0, v - 1), axis=-1)[:, None]
    x = jnp.where((top_k > 0) & (x < kth), MASKED, x)
    desc = -jnp.sort(-x, axis=-1)
    probs = jax.nn.softmax(desc, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly before each sorted id
    keep = (before < top_p) & (desc > MASKED)
    keep = keep.at[:, 0].set(True)
    threshold = jnp.min(jnp.where(keep, desc, jnp.inf), axis=-1, keepdims=True)
    return jnp.where((x >= threshold) & mask, x, MASKED)


def sample_token(key: jax.Array, logits: jax.Array, mask: jax.Array, temperature, top_p, top_k) -> jax.Array:
    """One id per row; temperature <= 0 is greedy (within the mask)."""
    filtered = filter_logits(logits, mask, temperature, top_p, top_k)
    sampled = jax.random.categorical(key, filtered, axis=-1)
    greedy = jnp.argmax(jnp.where(mask, logits, MASKED), axis=-1)
    return jnp.where(temperature > 0, sampled, greedy).astype(jnp.int32)


TIME_MODES = ("refined", "expectation", "sample")


def time_value(key: jax.Array, time_logits: jax.Array, model: Transformer, mode: str, temperature) -> jax.Array:
    """[B, K] time-head logits -> seconds [B].
    'refined': sample a support, then take the log-time expectation over it and
    its two neighbours (the two-hot the model learned lives there), so sampled
    rhythm keeps the data's grid and two modes never blur into a value between;
    'expectation': the log-time expectation over all supports;
    'sample': a support value."""
    codec = model.codec
    probs = jax.nn.softmax(time_logits, axis=-1)
    if mode == "expectation":
        return codec.expectation(probs, jnp)
    idx = jax.random.categorical(key, time_logits / jnp.maximum(temperature, 1e-6), axis=-1)
    if mode == "sample":
        return jnp.asarray(codec.supports, jnp.float32)[idx]
    if mode == "refined":
        k = jnp.arange(codec.num_supports)
        near = jnp.abs(k[None] - idx[:, None]) <= 1
        local = jnp.where(near, probs, 0.0)
        local = local / jnp.maximum(local.sum(-1, keepdims=True), 1e-30)
        return jnp.exp(local @ codec.log_supports(jnp))
    raise ValueError(f"time_mode must be one of {TIME_MODES}, got {mode!r}")


class DecodeState(NamedTuple):
    """The scan carry: everything one decoding step needs (a pytree)."""

    cache: Any  # model.kv_cache.Cache
    index: jax.Array  # [] int32: sequence index of the next fed token
    logits: jax.Array  # [B, V] logits for the next token
    time_logits: jax.Array  # [B, K] time-head logits for the next token
    track: Track  # what the tokens so far imply (sounding, velocity, open press...)
    ctrl: jax.Array  # [B] int32: given controls used so far
    key: jax.Array


def prefill(
    model: Transformer, params: Any, prompt_ids: jax.Array, prompt_times: jax.Array, track: Track,
    key: jax.Array, cache_len: int,
) -> DecodeState:
    """Runs the prompt [B, P] through the model into a fresh cache of cache_len.
    `track`: the Track after the prompt (track_tokens)."""
    b, p = prompt_ids.shape
    if p > cache_len:
        raise ValueError(f"prompt of {p} tokens does not fit a cache of {cache_len}")
    if model.positional == "learned" and cache_len > model.max_len:
        raise ValueError(f"cache of {cache_len} > max_len {model.max_len} (learned positions)")
    cache = init_cache(model.num_layers, b, cache_len, model.num_heads, model.d_model // model.num_heads, model.dtype)
    logits, time_logits, cache = model.apply(
        {"params": params}, prompt_ids, prompt_times, cache, jnp.int32(0), method=model.decode
    )
    return DecodeState(cache, jnp.int32(p), logits[:, -1], time_logits[:, -1], track, jnp.zeros(b, jnp.int32), key)


def feed(
    model: Transformer, params: Any, state: DecodeState, ids: jax.Array, times: jax.Array, vocab: Vocab = Vocab()
) -> DecodeState:
    """Feeds tokens [B, t] (a sampled one, or forced ones: the player's TIME,
    CONTROL, VELOCITY, NOTE_OFFs...) in one decode call and tracks them."""
    logits, time_logits, cache = model.apply(
        {"params": params}, ids, times.astype(jnp.float32), state.cache, state.index,
        (state.track.control, state.track.press_len, state.track.ref, state.track.vel_bin), method=model.decode,
    )
    track = state.track
    for i in range(ids.shape[1]):
        track = advance(track, ids[:, i], times[:, i], vocab)
    return state._replace(cache=cache, index=state.index + ids.shape[1], logits=logits[:, -1],
                          time_logits=time_logits[:, -1], track=track)


def decode_step(
    model: Transformer, cfg: SamplerConfig, params: Any, state: DecodeState,
    temperature: jax.Array, top_p: jax.Array, top_k: jax.Array, controls: jax.Array, vocab: Vocab = Vocab(),
) -> tuple[DecodeState, tuple[jax.Array, jax.Array, jax.Array, jax.Array]]:
    """One new position: sample (or insert a given control), feed it back.
    -> (new state, (ids [B], times [B], forced [B], agreement [B]))."""
    constraints = cfg.constraints
    key, k_tok, k_time = jax.random.split(state.key, 3)
    temperature = jnp.asarray(temperature, jnp.float32)
    track = state.track
    # where the model starts a press, the next given control goes in instead;
    # the press is then sampled given it
    num_controls = controls.shape[1]
    next_ctrl = jnp.take_along_axis(controls, jnp.minimum(state.ctrl, num_controls - 1)[:, None], axis=1)[:, 0]
    has_ctrl = (state.ctrl < num_controls) & (next_ctrl >= 0)
    mask = allowed_tokens(track, dataclasses.replace(constraints, allow_controls=True), vocab)
    mask = mask & (vocab.is_control(jnp.arange(vocab.size))[None] <= (has_ctrl | constraints.allow_controls)[:, None])
    tok = sample_token(k_tok, state.logits, mask, temperature, top_p, top_k)
    agreement = -jnp.ones(tok.shape, jnp.float32)
    if constraints.strict:
        loose = allowed_tokens(track, dataclasses.replace(constraints, strict=False, allow_controls=True), vocab)
        loose &= mask | ~vocab.is_control(jnp.arange(vocab.size))[None]
        probs = jax.nn.softmax(jnp.where(loose, state.logits, MASKED), axis=-1)
        narrowed = (loose & ~mask).any(axis=-1)
        agreement = jnp.where(narrowed, jnp.where(mask, probs, 0.0).sum(-1), -1.0)
    starts_press = (vocab.is_control(tok) | vocab.is_velocity(tok) | vocab.is_note_on(tok)) & (
        track.press_len == 0) & ~track.pending & ~track.after_vel
    insert = has_ctrl & starts_press & ~track.done
    tok = jnp.where(insert, next_ctrl, tok)
    tval = jnp.where(tok == TIME, time_value(k_time, state.time_logits, model, cfg.time_mode, temperature), 0.0)
    new = feed(model, params, state._replace(ctrl=state.ctrl + insert, key=key), tok[:, None], tval[:, None], vocab)
    return new, (tok, tval.astype(jnp.float32), insert, agreement)


def make_sampler(model: Transformer, cfg: SamplerConfig, vocab: Vocab = Vocab()) -> Callable[..., SampleOutput]:
    """-> jitted fn(params, prompt_ids [B,P], prompt_times [B,P], track (after the prompt),
    key, temperature, top_p, top_k, controls [B,C]) -> SampleOutput."""

    def run(params, prompt_ids, prompt_times, track, key, temperature, top_p, top_k, controls):
        length = prompt_ids.shape[1] + cfg.num_steps
        state = prefill(model, params, prompt_ids, prompt_times, track, key, length)

        def step(state, _):
            return decode_step(model, cfg, params, state, temperature, top_p, top_k, controls, vocab)

        _, (ids, times, forced, agreement) = jax.lax.scan(step, state, None, length=cfg.num_steps)
        return SampleOutput(ids.T, times.T, forced.T, agreement.T)

    return jax.jit(run)


def make_stepper(model: Transformer, cfg: SamplerConfig, vocab: Vocab = Vocab()):
    """Jitted (prefill, step) for step-by-step use (the live instrument, latency
    benchmarks): prefill(params, ids, times, track, key, cache_len) -> state;
    step(params, state, temperature, top_p, top_k, controls) -> (state, (id, time, forced, agreement)).
    `step` donates the state (its cache is updated in place)."""
    pre = jax.jit(functools.partial(prefill, model), static_argnums=(5,))
    step = jax.jit(
        lambda params, state, temperature, top_p, top_k, controls: decode_step(
            model, cfg, params, state, temperature, top_p, top_k, controls, vocab
        ),
        donate_argnums=(1,),
    )
    return pre, step


@functools.lru_cache(maxsize=16)
def _cached_sampler(model: Transformer, cfg: SamplerConfig) -> Callable[..., SampleOutput]:
    return make_sampler(model, cfg)


def prepare_prompt(
    prompt: TokenSequence | None, batch: int, vocab: Vocab = Vocab()
) -> tuple[np.ndarray, np.ndarray, Track]:
    """A prompt (or None: just BOS) -> ids [B, P], times [B, P], the Track after it.
    A leading BOS is added if missing; EOS and PAD ids are dropped."""
    ids = np.array([BOS], np.int32) if prompt is None else np.asarray(prompt.ids, np.int32)
    times = np.zeros(1, np.float32) if prompt is None else np.asarray(prompt.times, np.float32)
    keep = ~np.isin(ids, (EOS, PAD))
    ids, times = ids[keep], times[keep]
    if ids.size == 0 or ids[0] != BOS:
        ids, times = np.concatenate([[BOS], ids]).astype(np.int32), np.concatenate([[0.0], times]).astype(np.float32)
    tile = lambda a: np.repeat(a[None], batch, axis=0)  # noqa: E731
    return tile(ids), tile(times), track_tokens(tile(ids), tile(times))


def generate(
    model: Transformer,
    params: Any,
    key: jax.Array,
    *,
    num_events: int,
    prompt: TokenSequence | None = None,
    batch: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    controls: np.ndarray | None = None,
    constraints: Constraints = Constraints(),
    time_mode: str = "refined",
) -> tuple[list[TokenSequence], SampleOutput]:
    """Host-side convenience: -> (one TokenSequence per row: prompt + continuation
    up to and including EOS, the raw SampleOutput of the continuation)."""
    ids, times, track = prepare_prompt(prompt, batch)
    ctrl = np.full((batch, 1), -1, np.int32) if controls is None else np.asarray(controls, np.int32)
    if ctrl.ndim == 1:
        ctrl = np.repeat(ctrl[None], batch, axis=0)
    sampler = _cached_sampler(model, SamplerConfig(num_events, constraints, time_mode))
    knobs = (jnp.float32(temperature), jnp.float32(top_p), jnp.int32(top_k))
    out = sampler(params, ids, times, track, key, *knobs, ctrl)
    out = SampleOutput(*(np.asarray(a) for a in out))
    seqs = []
    for r in range(batch):
        new_ids, new_times = out.ids[r], out.times[r]
        eos = np.flatnonzero(new_ids == EOS)
        end = eos[0] + 1 if eos.size else new_ids.shape[0]
        seqs.append(TokenSequence(
            ids=np.concatenate([ids[r], new_ids[:end]]).astype(np.int32),
            times=np.concatenate([times[r], new_times[:end]]).astype(np.float32),
        ))
    return seqs, out


def to_events(seq: TokenSequence, vocab: Vocab = Vocab()) -> NoteEvents:
    """Sampled tokens -> note events (tokens.decode)."""
    return decode(seq.ids, seq.times, vocab)
