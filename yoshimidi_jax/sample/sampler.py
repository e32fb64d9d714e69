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

Shapes are in the names: B rows, V vocabulary, S time supports, P prompt
length, L tokens fed in one call, C given controls per row, N new positions.
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
from yoshimidi_jax.model.position_context import PositionContext, piece_start
from yoshimidi_jax.sample.constraints import Constraints, allowed_tokens
from yoshimidi_jax.sample import guidance
from yoshimidi_jax.sample.copying import mix_logits
from yoshimidi_jax.sample.tracker import Track, advance, track_tokens
from yoshimidi_jax.tokens import BOS, EOS, PAD, TIME, TokenSequence, Vocab, decode
from yoshimidi_jax.tokens.vocab import Family
from yoshimidi_jax.tokens.sounding import ages_at_cut, sounding_at_cut
from yoshimidi_jax.tokens.styles import NO_STYLE

MASKED = -1e30


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    num_steps: int = 512  # new positions (max events)
    constraints: Constraints = Constraints()
    time_mode: str = "refined"  # 'refined' | 'expectation' | 'sample' (see time_value)
    # top-k/top-p over 'family': each token family apart, keeping its whole probability
    # (filter_logits_per_family: a chord's NOTE_OFFs are not cut); 'all': the whole vocabulary
    nucleus: str = "family"
    # the model mixed with what followed the last copy_context tokens before (sample/copying.py;
    # 0: the model alone), copy_weight of the next token's probability where they occurred
    copy_context: int = 0
    copy_weight: float = 0.0
    # classifier-free guidance of the style (sample/guidance.py): None, the rows as they
    # are; a weight, the batch is pairs (rows [0, B) with the style, [B, 2B) without), both
    # rows of a pair sample from the guided logits and are fed the same tokens
    style_guidance: float | None = None


class SampleOutput(NamedTuple):
    ids: jax.Array  # [B, N] int32 (PAD after EOS)
    times: jax.Array  # [B, N] float32 seconds (0 except at TIME)
    forced: jax.Array  # [B, N] bool: an inserted CONTROL, not sampled
    agreement: jax.Array  # [B, N] float32: strict mode, where it narrowed the choice: the
    #                       probability the model gave the allowed ids (grammar-masked, T=1); else -1


def filter_logits(
    logits_BxV: jax.Array, mask_BxV: jax.Array, temperature: jax.Array, top_p: jax.Array, top_k: jax.Array
) -> jax.Array:
    """Logits with disallowed, beyond-top-k and beyond-top-p ids at MASKED.
    top_k <= 0 and top_p >= 1 disable those filters."""
    V = logits_BxV.shape[-1]
    x_BxV = jnp.where(mask_BxV, logits_BxV.astype(jnp.float32) / jnp.maximum(temperature, 1e-6), MASKED)
    desc_BxV = -jnp.sort(-x_BxV, axis=-1)
    kth_Bx1 = jnp.take(desc_BxV, jnp.clip(top_k - 1, 0, V - 1), axis=-1)[:, None]
    x_BxV = jnp.where((top_k > 0) & (x_BxV < kth_Bx1), MASKED, x_BxV)
    desc_BxV = -jnp.sort(-x_BxV, axis=-1)
    probs_BxV = jax.nn.softmax(desc_BxV, axis=-1)
    before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV  # mass strictly before each sorted id
    keep_BxV = (before_BxV < top_p) & (desc_BxV > MASKED)
    keep_BxV = keep_BxV.at[:, 0].set(True)
    threshold_Bx1 = jnp.min(jnp.where(keep_BxV, desc_BxV, jnp.inf), axis=-1, keepdims=True)
    return jnp.where((x_BxV >= threshold_Bx1) & mask_BxV, x_BxV, MASKED)


def filter_logits_per_family(
    logits_BxV: jax.Array, mask_BxV: jax.Array, temperature: jax.Array, top_p: jax.Array, top_k: jax.Array,
    vocab: Vocab,
) -> jax.Array:
    """filter_logits applied within each token family (NOTE_ON, NOTE_OFF, TIME,
    ...), each family keeping its whole probability: the same as sampling a
    family from the model's (tempered, masked) distribution, then an id of it
    with top-k/top-p. A plain nucleus over the whole vocabulary cuts the many
    small NOTE_OFF probabilities of a chord (each of k sounding notes gets ~1/k
    of the mass of "end a note") while it keeps one likely TIME: notes then
    never end. Per family, ending a note keeps the probability the model gave it."""
    family_V = vocab.family(jnp.arange(logits_BxV.shape[-1]), jnp)
    x_BxV = jnp.where(mask_BxV, logits_BxV.astype(jnp.float32) / jnp.maximum(temperature, 1e-6), MASKED)
    log_total_Bx1 = jax.nn.logsumexp(x_BxV, axis=-1, keepdims=True)
    out_BxV = jnp.full_like(x_BxV, MASKED)
    for family in range(int(max(Family)) + 1):
        in_family_BxV = mask_BxV & (family_V == family)[None]
        kept_BxV = filter_logits(logits_BxV, in_family_BxV, temperature, top_p, top_k)
        # log P(family) + log p(id | family, kept)
        log_family_Bx1 = jax.nn.logsumexp(jnp.where(in_family_BxV, x_BxV, MASKED), axis=-1, keepdims=True)
        log_kept_Bx1 = jax.nn.logsumexp(kept_BxV, axis=-1, keepdims=True)
        scaled_BxV = kept_BxV - log_kept_Bx1 + log_family_Bx1 - log_total_Bx1
        out_BxV = jnp.where(kept_BxV > MASKED, scaled_BxV, out_BxV)
    return out_BxV


def sample_token(key: jax.Array, logits_BxV: jax.Array, mask_BxV: jax.Array, temperature, top_p, top_k,
                 vocab: Vocab | None = None) -> jax.Array:
    """One id per row, [B]; temperature <= 0 is greedy (within the mask).
    vocab given: top-k/top-p within each token family (filter_logits_per_family)."""
    if vocab is None:
        filtered_BxV = filter_logits(logits_BxV, mask_BxV, temperature, top_p, top_k)
    else:
        filtered_BxV = filter_logits_per_family(logits_BxV, mask_BxV, temperature, top_p, top_k, vocab)
    sampled_B = jax.random.categorical(key, filtered_BxV, axis=-1)
    greedy_B = jnp.argmax(jnp.where(mask_BxV, logits_BxV, MASKED), axis=-1)
    return jnp.where(temperature > 0, sampled_B, greedy_B).astype(jnp.int32)


TIME_MODES = ("refined", "expectation", "sample")
NUCLEUS_SCOPES = ("family", "all")


def time_value(key: jax.Array, time_logits_BxS: jax.Array, model: Transformer, mode: str, temperature) -> jax.Array:
    """Time-head logits -> seconds [B].
    'refined': sample a support, then take the log-time expectation over it and
    its two neighbours (the two-hot the model learned lives there), so sampled
    rhythm keeps the data's grid and two modes never blur into a value between;
    'expectation': the log-time expectation over all supports;
    'sample': a support value."""
    codec = model.codec
    probs_BxS = jax.nn.softmax(time_logits_BxS, axis=-1)
    if mode == "expectation":
        return codec.expectation(probs_BxS, jnp)
    support_B = jax.random.categorical(key, time_logits_BxS / jnp.maximum(temperature, 1e-6), axis=-1)
    if mode == "sample":
        return jnp.asarray(codec.supports, jnp.float32)[support_B]
    if mode == "refined":
        near_BxS = jnp.abs(jnp.arange(codec.num_supports)[None] - support_B[:, None]) <= 1
        local_BxS = jnp.where(near_BxS, probs_BxS, 0.0)
        local_BxS = local_BxS / jnp.maximum(local_BxS.sum(-1, keepdims=True), 1e-30)
        return jnp.exp(local_BxS @ codec.log_supports(jnp))
    raise ValueError(f"time_mode must be one of {TIME_MODES}, got {mode!r}")


class DecodeState(NamedTuple):
    """The scan carry: everything one decoding step needs (a pytree)."""

    cache: Any  # model.kv_cache.Cache
    index: jax.Array  # [] int32: sequence index of the next fed token
    logits: jax.Array  # [B, V] logits for the next token
    time_logits: jax.Array  # [B, S] time-head logits for the next token
    track: Track  # what the tokens so far imply (sounding, velocity, open press...)
    ctrl: jax.Array  # [B] int32: given controls used so far
    key: jax.Array
    style: jax.Array  # [B] int32: the style asked of each row (tokens/styles.py; NO_STYLE: none)


def prefill(
    model: Transformer, params: Any, prompt_ids_BxP: jax.Array, prompt_times_BxP: jax.Array, track: Track,
    key: jax.Array, cache_len: int, style_B: jax.Array | None = None, start: PositionContext | None = None,
) -> DecodeState:
    """Runs the prompt through the model into a fresh cache of cache_len.
    `track`: the Track after the prompt (track_tokens). style_B: each row's
    style (None: none). start: where the prompt's first token stands (None: a
    piece's start; a slid window: window_start)."""
    B, P = prompt_ids_BxP.shape
    if P > cache_len:
        raise ValueError(f"prompt of {P} tokens does not fit a cache of {cache_len}")
    if model.positional == "learned" and cache_len > model.max_len:
        raise ValueError(f"cache of {cache_len} > max_len {model.max_len} (learned positions)")
    cache = init_cache(model.num_layers, B, cache_len, model.num_heads, model.d_model // model.num_heads, model.dtype)
    style_B = jnp.full((B,), NO_STYLE, jnp.int32) if style_B is None else jnp.asarray(style_B, jnp.int32)
    logits_BxPxV, time_logits_BxPxS, cache = model.apply(
        {"params": params}, prompt_ids_BxP, prompt_times_BxP, cache, jnp.int32(0), start, style_B,
        method=model.decode
    )
    return DecodeState(cache, jnp.int32(P), logits_BxPxV[:, -1], time_logits_BxPxS[:, -1], track,
                       jnp.zeros(B, jnp.int32), key, style_B)


def window_start(kept_ids_BxK: jax.Array, kept_times_BxK: jax.Array, track: Track, vocab: Vocab) -> PositionContext:
    """Where a slid window's first kept token stands: the pitches sounding
    before the kept tokens and their ages (tokens/sounding.py: from the
    Track's after them), the rest as at a piece's start."""
    sounding = sounding_at_cut(kept_ids_BxK, track.sounding, vocab, jnp)
    age = ages_at_cut(kept_ids_BxK, kept_times_BxK, sounding, track.age, vocab, jnp)
    return piece_start(kept_ids_BxK.shape[0])._replace(sounding=sounding, age=age)


def feed(
    model: Transformer, params: Any, state: DecodeState, ids_BxL: jax.Array, times_BxL: jax.Array,
    vocab: Vocab | None = None, count: jax.Array | None = None,
) -> DecodeState:
    """Feeds L tokens per row (a sampled one, or forced ones: the player's
    TIME, CONTROL, VELOCITY, NOTE_OFFs...) in one decode call and tracks them.
    vocab: the model's (model.vocab) unless given. count (traced, <= L): feed
    only the first `count` tokens; the rest are written to the cache beyond
    the new index, where attention never looks and the next tokens overwrite
    them (one compiled shape serves every forced length up to L)."""
    vocab = model.vocab if vocab is None else vocab
    L = ids_BxL.shape[1]
    logits_BxLxV, time_logits_BxLxS, cache = model.apply(
        {"params": params}, ids_BxL, times_BxL.astype(jnp.float32), state.cache, state.index,
        state.track.position_start, state.style, method=model.decode,
    )
    track = state.track
    for i in range(L):
        moved = advance(track, ids_BxL[:, i], times_BxL[:, i], vocab)
        track = moved if count is None else jax.tree.map(functools.partial(jnp.where, i < count), moved, track)
    if count is None:
        return state._replace(cache=cache, index=state.index + L, logits=logits_BxLxV[:, -1],
                              time_logits=time_logits_BxLxS[:, -1], track=track)
    last = jnp.maximum(count - 1, 0)
    fed = count > 0  # nothing fed: the logits stay those of the state
    return state._replace(
        cache=cache, index=state.index + count, track=track,
        logits=jnp.where(fed, jax.lax.dynamic_index_in_dim(logits_BxLxV, last, axis=1, keepdims=False), state.logits),
        time_logits=jnp.where(fed, jax.lax.dynamic_index_in_dim(time_logits_BxLxS, last, axis=1, keepdims=False),
                              state.time_logits))


def decode_step(
    model: Transformer, cfg: SamplerConfig, params: Any, state: DecodeState,
    temperature: jax.Array, top_p: jax.Array, top_k: jax.Array, controls_BxC: jax.Array, vocab: Vocab | None = None,
) -> tuple[DecodeState, tuple[jax.Array, jax.Array, jax.Array, jax.Array]]:
    """One new position: sample (or insert a given control), feed it back.
    -> (new state, (ids [B], times [B], forced [B], agreement [B]))."""
    vocab = model.vocab if vocab is None else vocab
    constraints = cfg.constraints
    key, k_tok, k_time = jax.random.split(state.key, 3)
    temperature = jnp.asarray(temperature, jnp.float32)
    track = state.track
    # where the model starts a press, the next given control goes in instead;
    # the press is then sampled given it
    C = controls_BxC.shape[1]
    next_ctrl_B = jnp.take_along_axis(controls_BxC, jnp.minimum(state.ctrl, C - 1)[:, None], axis=1)[:, 0]
    has_ctrl_B = (state.ctrl < C) & (next_ctrl_B >= 0)
    is_control_V = vocab.is_control(jnp.arange(vocab.size))
    mask_BxV = allowed_tokens(track, dataclasses.replace(constraints, allow_controls=True), vocab)
    mask_BxV = mask_BxV & (is_control_V[None] <= (has_ctrl_B | constraints.allow_controls)[:, None])
    tok_B = sample_token(k_tok, state.logits, mask_BxV, temperature, top_p, top_k,
                         vocab if cfg.nucleus == "family" else None)
    paired = cfg.style_guidance is not None
    if paired:
        tok_B = guidance.tie(tok_B)
    agreement_B = -jnp.ones(tok_B.shape, jnp.float32)
    if constraints.strict:
        loose_BxV = allowed_tokens(track, dataclasses.replace(constraints, strict=False, allow_controls=True), vocab)
        loose_BxV &= mask_BxV | ~is_control_V[None]
        probs_BxV = jax.nn.softmax(jnp.where(loose_BxV, state.logits, MASKED), axis=-1)
        narrowed_B = (loose_BxV & ~mask_BxV).any(axis=-1)
        agreement_B = jnp.where(narrowed_B, jnp.where(mask_BxV, probs_BxV, 0.0).sum(-1), -1.0)
    starts_press_B = (vocab.is_control(tok_B) | vocab.is_velocity(tok_B) | vocab.is_note_on(tok_B)) & (
        track.press_len == 0) & ~track.pending & ~track.after_vel
    insert_B = has_ctrl_B & starts_press_B & ~track.done
    tok_B = jnp.where(insert_B, next_ctrl_B, tok_B)
    seconds_B = jnp.where(tok_B == TIME, time_value(k_time, state.time_logits, model, cfg.time_mode, temperature),
                          vocab.shift_seconds(tok_B))
    if paired:
        seconds_B = guidance.tie(seconds_B)
    new = feed(model, params, state._replace(ctrl=state.ctrl + insert_B, key=key), tok_B[:, None],
               seconds_B[:, None], vocab)
    return new, (tok_B, seconds_B.astype(jnp.float32), insert_B, agreement_B)


class SampleEnd(NamedTuple):
    """Where a sampler call stopped: what a next call continues from."""

    track: Track
    ctrl: jax.Array  # [B] int32: given controls used so far
    key: jax.Array


def make_sampler(model: Transformer, cfg: SamplerConfig, vocab: Vocab | None = None) -> Callable[..., SampleOutput]:
    """-> jitted fn(params, prompt_ids [B,P], prompt_times [B,P], track (after the prompt),
    key, temperature, top_p, top_k, controls [B,C], style [B] (optional), start (optional:
    where the prompt's first token stands), ctrl [B] (optional: given controls used
    before)) -> (SampleOutput, SampleEnd). vocab: model.vocab unless given."""
    vocab = model.vocab if vocab is None else vocab

    def run(params, prompt_ids_BxP, prompt_times_BxP, track, key, temperature, top_p, top_k, controls_BxC,
            style_B=None, start=None, ctrl_B=None):
        length = prompt_ids_BxP.shape[1] + cfg.num_steps
        state = prefill(model, params, prompt_ids_BxP, prompt_times_BxP, track, key, length, style_B, start)
        if ctrl_B is not None:
            state = state._replace(ctrl=ctrl_B)

        def guide(state):
            if cfg.style_guidance is None:
                return state
            return state._replace(logits=guidance.guided(state.logits, cfg.style_guidance),
                                  time_logits=guidance.guided(state.time_logits, cfg.style_guidance))

        def step(state, _):  # one new position, sampled from the state's logits as they are
            return decode_step(model, cfg, params, state, temperature, top_p, top_k, controls_BxC, vocab)

        if cfg.copy_context > 0:  # the tokens so far ride along in the carry, for the copy's context
            history_BxT = jnp.zeros((prompt_ids_BxP.shape[0], length), jnp.int32)
            history_BxT = history_BxT.at[:, :prompt_ids_BxP.shape[1]].set(prompt_ids_BxP)

            def step_copying(carry, _):
                state, history_BxT = carry
                state = guide(state)  # the style's guidance first, then the copy mixed in
                mixed = mix_logits(state.logits, history_BxT, state.index, cfg.copy_context, cfg.copy_weight)
                new, out = step(state._replace(logits=mixed), None)
                history_BxT = jax.lax.dynamic_update_index_in_dim(history_BxT, out[0], state.index, axis=1)
                return (new, history_BxT), out

            (end, _), (ids_NxB, times_NxB, forced_NxB, agreement_NxB) = jax.lax.scan(
                step_copying, (state, history_BxT), None, length=cfg.num_steps)
        else:
            end, (ids_NxB, times_NxB, forced_NxB, agreement_NxB) = jax.lax.scan(
                lambda state, _: step(guide(state), None), state, None, length=cfg.num_steps)
        return (SampleOutput(ids_NxB.T, times_NxB.T, forced_NxB.T, agreement_NxB.T),
                SampleEnd(end.track, end.ctrl, end.key))

    return jax.jit(run)


def make_stepper(model: Transformer, cfg: SamplerConfig, vocab: Vocab | None = None):
    """Jitted (prefill, step) for step-by-step use (the live instrument, latency
    benchmarks): prefill(params, ids, times, track, key, cache_len) -> state;
    step(params, state, temperature, top_p, top_k, controls) -> (state, (id, time, forced, agreement)).
    `step` donates the state (its cache is updated in place). vocab: model.vocab unless given."""
    vocab = model.vocab if vocab is None else vocab
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
    return tile(ids), tile(times), track_tokens(tile(ids), tile(times), vocab=vocab)


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
    style: int | np.ndarray = NO_STYLE,
    window: int | None = None,
    nucleus: str = "family",
    copy_context: int = 0,
    copy_weight: float = 0.0,
    style_guidance: float = 1.0,
) -> tuple[list[TokenSequence], SampleOutput]:
    """Host-side convenience: -> (one TokenSequence per row: prompt + continuation
    up to and including EOS, the raw SampleOutput of the continuation).
    style: one per row or for all (tokens/styles.py; NO_STYLE: none asked).
    window: the most positions the model attends over (None: its context,
    model.max_len, the length it was trained on). A longer sample slides: when
    the window is full, its recent half is prefilled into a fresh cache (the
    Track and the pitches sounding carry over) and sampling goes on. 0: never
    slide (one cache of prompt + num_events positions). nucleus: top-k/top-p
    per token 'family' or over 'all' ids (SamplerConfig.nucleus). copy_context,
    copy_weight: the model mixed with what followed the same last tokens
    before, in the window (sample/copying.py; 0: the model alone).
    style_guidance: where a row asks a style, sample from the logits without
    it plus this weight times the style's difference (sample/guidance.py:
    classifier-free guidance; 1: the style as the model takes it, no extra
    work; else each row is run twice)."""
    vocab = model.vocab
    if nucleus not in NUCLEUS_SCOPES:
        raise ValueError(f"nucleus={nucleus!r}: one of {NUCLEUS_SCOPES}")
    if copy_context < 0 or not 0.0 <= copy_weight < 1.0:
        raise ValueError(f"copy_context={copy_context}, copy_weight={copy_weight}: a context >= 0 and a weight "
                         "in [0, 1) (at 1 the model's own choices would vanish wherever the context recurs)")
    style_guidance = guidance.check_weight(style_guidance)
    ids, times, track = prepare_prompt(prompt, batch, vocab)
    ctrl = np.full((batch, 1), -1, np.int32) if controls is None else np.asarray(controls, np.int32)
    if ctrl.ndim == 1:
        ctrl = np.repeat(ctrl[None], batch, axis=0)
    style_B = np.broadcast_to(np.asarray(style, np.int32), (batch,))
    guided = style_guidance != 1.0 and bool((style_B != NO_STYLE).any())
    if guided:  # each row twice: with its style, then without (sample/guidance.py)
        (ids, times, track, ctrl), style_B = guidance.pair_rows((ids, times, track, ctrl), style_B)
    style_B = jnp.asarray(style_B)
    knobs = (jnp.float32(temperature), jnp.float32(top_p), jnp.int32(top_k))
    window = model.max_len if window is None else int(window)
    keep = window // 2
    if window and ids.shape[1] >= window:
        raise ValueError(f"a prompt of {ids.shape[1]} tokens does not fit the window of {window}")
    outs, start, ctrl_B, left = [], None, None, num_events
    all_ids, all_times = ids, times
    prompt_ids, prompt_times = ids, times
    while left > 0:
        steps = left if not window else min(left, window - prompt_ids.shape[1])
        sampler = _cached_sampler(model, SamplerConfig(steps, constraints, time_mode, nucleus, copy_context,
                                                       copy_weight, style_guidance if guided else None))
        out, end = sampler(params, prompt_ids, prompt_times, track, key, *knobs, ctrl, style_B, start, ctrl_B)
        out = SampleOutput(*(np.asarray(a) for a in out))
        outs.append(out)
        left -= steps
        all_ids = np.concatenate([all_ids, out.ids], axis=1)
        all_times = np.concatenate([all_times, out.times], axis=1)
        if left <= 0 or bool(np.asarray(end.track.done).all()):
            break
        # slide: the recent half of the window, where its first token stands, and go on
        prompt_ids, prompt_times = all_ids[:, -keep:], all_times[:, -keep:]
        track, key, ctrl_B = end.track, end.key, end.ctrl
        start = window_start(jnp.asarray(prompt_ids), jnp.asarray(prompt_times), track, vocab)
    out = SampleOutput(*(np.concatenate([o[i] for o in outs], axis=1)[:batch]
                         for i in range(len(SampleOutput._fields))))
    seqs = []
    for r in range(batch):
        new_ids, new_times = out.ids[r], out.times[r]
        eos = np.flatnonzero(new_ids == EOS)
        end_at = eos[0] + 1 if eos.size else new_ids.shape[0]
        seqs.append(TokenSequence(
            ids=np.concatenate([ids[r], new_ids[:end_at]]).astype(np.int32),
            times=np.concatenate([times[r], new_times[:end_at]]).astype(np.float32),
        ))
    return seqs, out


def to_events(seq: TokenSequence, vocab: Vocab = Vocab()) -> NoteEvents:
    """Sampled tokens -> note events (tokens.decode)."""
    return decode(seq.ids, seq.times, vocab)
