"""Decoder-only pre-norm transformer over the flat token vocabulary.

Input: token embedding, except at TIME positions (id == tokens.TIME), where the
embedding is the two-hot mix of S time-support embeddings (continuous time).
Outputs: token logits [B, L, V] and time logits [B, L, S] (the time head's
categorical over the S supports, read where the next token is TIME).

Shapes are in the names: B batch, L positions of this call, D model width,
F the MLP's hidden width, V vocabulary, S time supports (attention.py adds
T, H, K).

Two entry points sharing one set of parameters:
- `__call__(inputs, input_times, positions, segment_ids)`: the full forward
  pass over packed batches (attention causal and within a segment);
- `decode(inputs, input_times, cache, cache_index)`: incremental decoding of
  t >= 1 new tokens at sequence indices cache_index.. (positions are those
  indices), returning the updated cache.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from yoshimidi_jax.model import attention as attn
from yoshimidi_jax.model import dots
from yoshimidi_jax.model import kv_cache
from yoshimidi_jax.model.position_context import (
    NUM_AGE_BUCKETS, PositionContext, age_bucket, piece_start, position_context,
)
from yoshimidi_jax.tokens import TIME, TimeCodec, Vocab
from yoshimidi_jax.tokens.controls import control_attributes
from yoshimidi_jax.tokens.presses import velocity_bucket
from yoshimidi_jax.tokens.styles import NO_STYLE, NUM_STYLES
from yoshimidi_jax.tokens.vocab import NUM_CHORD_SIZES, NUM_INTERVAL_CLASSES, NUM_PITCHES, NUM_VELOCITY_BUCKETS


def compute_dtype(name: str) -> Any:
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}[name]


def cache_for(model_cfg: ml_collections.ConfigDict, batch: int, length: int) -> kv_cache.Cache:
    """An empty KV cache for a model config (config.model)."""
    return kv_cache.init_cache(model_cfg.num_layers, batch, length, model_cfg.num_heads,
                               model_cfg.d_model // model_cfg.num_heads, compute_dtype(model_cfg.dtype))


class RMSNorm(nn.Module):
    """x / rms(x) * scale, in float32, returned in dtype: nn.RMSNorm's result
    and parameter ('scale', ones), in fewer passes over x (~25% less time
    forward + backward on XLA:CPU at 8 x 1024 x 512)."""

    dtype: Any = jnp.float32
    epsilon: float = 1e-6

    @nn.compact
    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        scale_D = self.param("scale", nn.initializers.ones, (x_BxLxD.shape[-1],), jnp.float32)
        x_BxLxD = x_BxLxD.astype(jnp.float32)
        mean_square_BxLx1 = jnp.mean(jnp.square(x_BxLxD), axis=-1, keepdims=True)
        return (x_BxLxD * jax.lax.rsqrt(mean_square_BxLx1 + self.epsilon) * scale_D).astype(self.dtype)


def _norm(kind: str, dtype: Any, name: str) -> nn.Module:
    if kind == "layernorm":
        return nn.LayerNorm(dtype=dtype, param_dtype=jnp.float32, name=name)
    return RMSNorm(dtype=dtype, name=name)


ACTIVATIONS = {"gelu": nn.gelu, "relu": nn.relu}  # gelu: the tanh approximation (flax's default)


class Mlp(nn.Module):
    hidden: int
    dtype: Any = jnp.float32
    activation: str = "gelu"

    @nn.compact
    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        h_BxLxF = nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32, dot_general=dots.dot_general,
                           name="up")(x_BxLxD)
        h_BxLxF = ACTIVATIONS[self.activation](h_BxLxF)
        return nn.Dense(x_BxLxD.shape[-1], dtype=self.dtype, param_dtype=jnp.float32, dot_general=dots.dot_general,
                        name="down")(h_BxLxF)


class Block(nn.Module):
    num_heads: int
    mlp_hidden: int
    positional: str
    rope_base: float
    norm: str
    dtype: Any
    activation: str = "gelu"
    attention_block: int = 0
    attention: str = "blocks"

    @nn.compact
    def __call__(self, x_BxLxD, positions_BxL, mask_Bx1xLxT, cache=None, cache_index=None, segment_ids_BxL=None,
                 rows_only=False):
        h_BxLxD = _norm(self.norm, self.dtype, "attn_norm")(x_BxLxD)
        h_BxLxD, cache = attn.Attention(
            self.num_heads, self.positional, self.rope_base, self.dtype, self.attention_block, self.attention,
            name="attn"
        )(h_BxLxD, positions_BxL, mask_Bx1xLxT, cache, cache_index, segment_ids_BxL, rows_only)
        x_BxLxD = x_BxLxD + h_BxLxD
        h_BxLxD = _norm(self.norm, self.dtype, "mlp_norm")(x_BxLxD)
        x_BxLxD = x_BxLxD + Mlp(self.mlp_hidden, self.dtype, self.activation, name="mlp")(h_BxLxD)
        return x_BxLxD, cache


class Transformer(nn.Module):
    vocab_size: int
    num_time_supports: int = 64
    time_min_s: float = 0.005
    time_max_s: float = 8.0
    num_layers: int = 4
    d_model: int = 128
    num_heads: int = 4
    mlp_ratio: int = 4
    max_len: int = 256
    positional: str = "rope"
    rope_base: float = 10_000.0
    norm: str = "rmsnorm"
    # a CONTROL id's embedding plus one per attribute (rare combinations share what each attribute means)
    factored_controls: bool = True
    control_reference: bool = True  # CONTROL embedding += the previous press's reference pitch
    control_bias: bool = True  # logits += learned biases indexed by the control in force
    control_bias_scale: float = 10.0  # those biases learn this much faster (a parameter multiplier)
    activation: str = "gelu"  # the MLP's: 'gelu' (tanh approximation) | 'relu'
    # training attention in query blocks of this size, each against only the keys up to its end
    # (~2x faster forward + backward at context 256 and 1024 on CPU; 0: the whole [L, L] at once)
    attention_block: int = 128
    attention: str = "blocks"  # training attention: 'blocks' | 'jax' | 'cudnn' (attention.Attention)
    time_shifts: int = 0  # TIME_SHIFT ids in the vocabulary (tokens/vocab.py); 0: continuous time only
    time_shift_s: float = 0.01
    # every position's input += an embedding of the pitches sounding after it (position_context.py),
    # so the model knows what it has to end, whatever its window saw struck
    sounding_input: bool = True
    # ... and of how long each has sounded (its age bucket, position_context.py), and NOTE_OFF(p)'s
    # logit += a learned bias by p's age bucket: the clock a note's end depends on, which a window
    # cannot sum from its TIME values, nor see at all for a note struck before it began
    note_age_input: bool = True
    # the age buckets' edges, times this (position_context.py AGE_EDGES_S: at 1.0 the common note
    # lengths lie on the edges, and a sampled TIME falls either side of them)
    age_edges_scale: float = 0.9
    # every position's input += an embedding of the piece's style (tokens/styles.py; 0: none)
    num_styles: int = NUM_STYLES
    dtype: Any = jnp.float32

    @property
    def codec(self) -> TimeCodec:
        return TimeCodec(self.num_time_supports, self.time_min_s, self.time_max_s)

    @property
    def vocab(self) -> Vocab:
        return Vocab(time_shifts=self.time_shifts, time_shift_s=self.time_shift_s)

    def setup(self) -> None:
        init = nn.initializers.normal(0.02)
        self.token_embed = nn.Embed(self.vocab_size, self.d_model, embedding_init=init, name="token_embed")
        self.time_embed = self.param("time_embed", init, (self.num_time_supports, self.d_model), jnp.float32)
        if self.factored_controls:
            # a CONTROL id's embedding plus one per attribute (ANY included), so
            # rare combinations (soft + octave leap + 4 notes) share what each
            # attribute means
            self.control_embeds = [
                self.param(f"control_{name}_embed", init, (n + 1, self.d_model), jnp.float32)
                for name, n in (("interval", NUM_INTERVAL_CLASSES), ("chord", NUM_CHORD_SIZES),
                                ("velocity", NUM_VELOCITY_BUCKETS))
            ]
        if self.control_reference:
            # the previous press's reference pitch, at CONTROL positions (position_context.py)
            self.control_ref_embed = self.param("control_ref_embed", init, (129, self.d_model), jnp.float32)
        if self.control_bias:
            # output biases indexed by the control in force (position_context.py), zero-initialised;
            # used times control_bias_scale, so that Adam (whose steps are ~lr in
            # size whatever the gradient) moves them that much faster than weights
            zeros = nn.initializers.zeros
            self.interval_bias = self.param("interval_bias", zeros, (NUM_INTERVAL_CLASSES + 1, 255), jnp.float32)
            # by (bucket asked, bucket in force): whether a VELOCITY must come, and which
            self.velocity_bias = self.param(
                "velocity_bias", zeros, (NUM_VELOCITY_BUCKETS + 1, NUM_VELOCITY_BUCKETS + 1, self.vocab_size),
                jnp.float32)
            self.chord_bias = self.param("chord_bias", zeros, (NUM_CHORD_SIZES + 1, NUM_CHORD_SIZES + 1, 2), jnp.float32)
        if self.sounding_input:
            self.sounding_embed = self.param("sounding_embed", init, (NUM_PITCHES, self.d_model), jnp.float32)
        if self.note_age_input:
            self.age_embed = self.param("age_embed", init, (NUM_AGE_BUCKETS, self.d_model), jnp.float32)
            # zero-initialised, used times control_bias_scale (as the control biases)
            self.note_off_age_bias = self.param("note_off_age_bias", nn.initializers.zeros, (NUM_AGE_BUCKETS,),
                                                jnp.float32)
        if self.num_styles:
            # one row per style, and a last one for none given
            self.style_embed = self.param("style_embed", init, (self.num_styles + 1, self.d_model), jnp.float32)
        if self.positional == "learned":
            self.pos_embed = self.param("pos_embed", init, (self.max_len, self.d_model), jnp.float32)
        elif self.positional != "rope":
            raise ValueError(f"positional must be 'rope' or 'learned', got {self.positional!r}")
        self.blocks = [
            Block(
                self.num_heads,
                self.mlp_ratio * self.d_model,
                self.positional,
                self.rope_base,
                self.norm,
                self.dtype,
                self.activation,
                self.attention_block,
                self.attention,
                name=f"block_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.final_norm = _norm(self.norm, self.dtype, "final_norm")
        # the output projections run in float32 whatever the compute dtype (bf16
        # logits over 533 ids lose the small differences sampling depends on)
        self.token_head = nn.Dense(self.vocab_size, dtype=jnp.float32, param_dtype=jnp.float32, name="token_head")
        self.time_head = nn.Dense(self.num_time_supports, dtype=jnp.float32, param_dtype=jnp.float32,
                                  name="time_head")

    def embed(
        self, inputs_BxL: jax.Array, times_BxL: jax.Array, positions_BxL: jax.Array, ctx: PositionContext | None = None,
        styles_BxL: jax.Array | None = None,
    ) -> jax.Array:
        tok_BxLxD = self.token_embed(inputs_BxL)
        mix_BxLxD = self.codec.two_hot_dense(times_BxL, jnp) @ self.time_embed
        x_BxLxD = jnp.where((inputs_BxL == TIME)[..., None], mix_BxLxD, tok_BxLxD)
        if self.factored_controls:
            vocab = self.vocab
            is_control_BxL = vocab.is_control(inputs_BxL)
            attrs = control_attributes(jnp.where(is_control_BxL, inputs_BxL, vocab.control), vocab)
            extra_BxLxD = sum(jnp.take(table, a_BxL, axis=0) for table, a_BxL in zip(self.control_embeds, attrs))
            x_BxLxD = x_BxLxD + jnp.where(is_control_BxL[..., None], extra_BxLxD, 0.0)
        if self.control_reference:
            ref_BxLxD = jnp.take(self.control_ref_embed, jnp.where(ctx.ref >= 0, ctx.ref, 128), axis=0)
            x_BxLxD = x_BxLxD + jnp.where(self.vocab.is_control(inputs_BxL)[..., None], ref_BxLxD, 0.0)
        if self.sounding_input:
            x_BxLxD = x_BxLxD + ctx.sounding.astype(jnp.float32) @ self.sounding_embed
        if self.note_age_input:
            # how many sounding notes are of each age
            ages_BxLx128xK = jax.nn.one_hot(age_bucket(ctx.age, self.age_edges_scale), NUM_AGE_BUCKETS) * ctx.sounding[..., None]
            x_BxLxD = x_BxLxD + ages_BxLx128xK.sum(2) @ self.age_embed
        if self.num_styles:
            styles_BxL = jnp.full(inputs_BxL.shape, NO_STYLE, jnp.int32) if styles_BxL is None else styles_BxL
            style_row_BxL = jnp.where((styles_BxL >= 0) & (styles_BxL < self.num_styles), styles_BxL, self.num_styles)
            x_BxLxD = x_BxLxD + jnp.take(self.style_embed, style_row_BxL, axis=0)
        if self.positional == "learned":
            x_BxLxD = x_BxLxD + jnp.take(self.pos_embed, jnp.clip(positions_BxL, 0, self.max_len - 1), axis=0)
        return x_BxLxD.astype(self.dtype)

    def heads(self, x_BxLxD: jax.Array, ctx: PositionContext | None = None) -> tuple[jax.Array, jax.Array]:
        """(token logits [B, L, V], time logits [B, L, S]), in float32."""
        x_BxLxD = self.final_norm(x_BxLxD).astype(jnp.float32)
        logits_BxLxV = self.token_head(x_BxLxD)
        if self.control_bias:
            logits_BxLxV = logits_BxLxV + self.control_logit_bias(ctx)
        if self.note_age_input:
            off_BxLx128 = self.control_bias_scale * self.note_off_age_bias[age_bucket(ctx.age, self.age_edges_scale)]
            off_BxLx128 = jnp.where(ctx.sounding, off_BxLx128, 0.0)
            vocab = self.vocab
            logits_BxLxV = logits_BxLxV + jnp.pad(
                off_BxLx128, ((0, 0), (0, 0), (vocab.note_off, self.vocab_size - vocab.note_off - NUM_PITCHES)))
        return logits_BxLxV, self.time_head(x_BxLxD)

    def control_logit_bias(self, ctx: PositionContext) -> jax.Array:
        """[B, L, V]: what the control in force adds to the next token's logits."""
        vocab = self.vocab
        scale = self.control_bias_scale
        has = ctx.control >= 0
        interval, chord, velocity = control_attributes(jnp.where(has, ctx.control, vocab.control), vocab)
        first = has & (ctx.press_len == 0)  # the press's VELOCITY and first NOTE_ON come next
        # NOTE_ON(p) of the first note: by (interval class, p - reference)
        offset = jnp.clip(jnp.arange(128) - ctx.ref[..., None] + 127, 0, 254)
        on_BxLx128 = jnp.take_along_axis(scale * self.interval_bias[interval], offset, axis=-1)
        on_BxLx128 = jnp.where((first & (ctx.ref >= 0))[..., None], on_BxLx128, 0.0)
        # one more note of the press (NOTE_ON or its VELOCITY) vs TIME: by (chord, struck so far)
        more = has & (ctx.press_len > 0)
        more_BxLx2 = scale * self.chord_bias[chord, jnp.minimum(ctx.press_len, NUM_CHORD_SIZES)]
        more_BxLx2 = jnp.where(more[..., None], more_BxLx2, 0.0)
        is_on = vocab.is_note_on(jnp.arange(self.vocab_size))
        is_vel = vocab.is_velocity(jnp.arange(self.vocab_size))
        mids = jnp.asarray(vocab.velocity_of_bin(np.arange(vocab.num_velocity_bins)))
        in_force = jnp.where(ctx.vel_bin >= 0, velocity_bucket(mids[jnp.maximum(ctx.vel_bin, 0)]),
                             NUM_VELOCITY_BUCKETS)
        bias_BxLxV = jnp.where(first[..., None], scale * self.velocity_bias[velocity, in_force], 0.0)
        on_BxLxV = jnp.pad(on_BxLx128, ((0, 0), (0, 0), (vocab.note_on, self.vocab_size - vocab.note_off)))
        bias_BxLxV = bias_BxLxV + jnp.where(is_on, on_BxLxV, 0.0)
        bias_BxLxV = (bias_BxLxV + jnp.where(is_on | is_vel, more_BxLx2[..., :1], 0.0)
                      + jnp.where(vocab.is_time(jnp.arange(self.vocab_size)), more_BxLx2[..., 1:], 0.0))
        return bias_BxLxV

    @property
    def needs_context(self) -> bool:
        return self.control_reference or self.control_bias or self.sounding_input or self.note_age_input

    def __call__(
        self, inputs_BxL: jax.Array, times_BxL: jax.Array, positions_BxL: jax.Array, segment_ids_BxL: jax.Array,
        styles_BxL: jax.Array | None = None, sounding_start_Bx128: jax.Array | None = None,
        age_start_Bx128: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array]:
        """-> (logits [B, L, V], time logits [B, L, S]). styles: each position's
        piece's style (NO_STYLE: none; None: none anywhere); sounding_start: the
        pitches sounding before the first token (a window that starts inside a
        piece; None: none), age_start: their ages then (seconds since each
        one's NOTE_ON; None: 0)."""
        ctx = None
        if self.needs_context:
            start = piece_start(inputs_BxL.shape[0])
            if sounding_start_Bx128 is not None:
                start = start._replace(sounding=sounding_start_Bx128)
            if age_start_Bx128 is not None:
                start = start._replace(age=age_start_Bx128)
            ctx = position_context(inputs_BxL, times_BxL, segment_ids_BxL, start, vocab=self.vocab)
        x_BxLxD = self.embed(inputs_BxL, times_BxL, positions_BxL, ctx, styles_BxL)
        for block in self.blocks:  # attention: causal and within segments (attention.causal_attention)
            x_BxLxD, _ = block(x_BxLxD, positions_BxL, None, None, None, segment_ids_BxL)
        return self.heads(x_BxLxD, ctx)

    def decode(
        self, inputs_BxL: jax.Array, times_BxL: jax.Array, cache: kv_cache.Cache, cache_index: jax.Array,
        start: PositionContext | None = None, styles_B: jax.Array | None = None, rows_only: bool = False,
    ) -> tuple[jax.Array, jax.Array, kv_cache.Cache]:
        """L new tokens at sequence indices cache_index..cache_index+L-1 (one
        piece per row, position == index) -> (logits [B, L, V], time logits
        [B, L, S], updated cache). start: where the tokens before these stand,
        [B] each (Track.position_start); None: the start of a piece.
        styles_B: the style of each row (NO_STYLE: none; None: none for any).
        rows_only: the cache is read, not written, and the third value is
        each layer's new rows {'k', 'v'} [B, H, L, K] (attention.attend_beside),
        for a caller that writes them at cache_index itself (the exported graph)."""
        B, L = inputs_BxL.shape
        positions_BxL = jnp.broadcast_to(cache_index + jnp.arange(L, dtype=jnp.int32), (B, L))
        ctx = None
        if self.needs_context:
            ctx = position_context(inputs_BxL, times_BxL, None, start, self.vocab)
        styles_BxL = None if styles_B is None else jnp.broadcast_to(jnp.asarray(styles_B, jnp.int32)[:, None], (B, L))
        x_BxLxD = self.embed(inputs_BxL, times_BxL, positions_BxL, ctx, styles_BxL)
        mask_1x1xLxT = attn.decode_mask(cache_index, L, cache[0]["k"].shape[2])
        new_cache = []
        for block, layer in zip(self.blocks, cache):
            x_BxLxD, layer = block(x_BxLxD, positions_BxL, mask_1x1xLxT, layer, cache_index, rows_only=rows_only)
            new_cache.append(layer)
        logits_BxLxV, time_logits_BxLxS = self.heads(x_BxLxD, ctx)
        return logits_BxLxV, time_logits_BxLxS, new_cache


# config.model fields that are not Transformer fields of the same name and type
CONFIG_ONLY_FIELDS = ("dtype",)  # a name ('float32', 'bfloat16', 'float16'), not a jnp type


def default_model_config() -> dict[str, Any]:
    """config.model of a new run, before a config sets its sizes: every
    Transformer field at its default. The Transformer's field defaults are the
    one home of model defaults; configs/common.py starts from this, and
    config.ADDED_FIELDS holds what reproduces runs saved before a field existed."""
    fields = {f.name: f.default for f in dataclasses.fields(Transformer)
              if f.name not in ("parent", "name") and f.default is not dataclasses.MISSING}
    fields["dtype"] = "float32"
    return fields


def make_model(model_cfg: ml_collections.ConfigDict) -> Transformer:
    """config.model -> Transformer. Every field comes from the config (no
    fallback here: a config saved before a field existed gets it from
    config.load_config's ADDED_FIELDS)."""
    names = [f.name for f in dataclasses.fields(Transformer) if f.name not in ("parent", "name", "dtype")]
    missing = [n for n in names + list(CONFIG_ONLY_FIELDS) if n not in model_cfg]
    if missing:
        raise ValueError(f"config.model lacks {missing}: load saved configs with config.load_config, "
                         "build new ones from configs/common.py")
    return Transformer(**{n: model_cfg[n] for n in names}, dtype=compute_dtype(model_cfg.dtype))


def init_params(model: Transformer, key: jax.Array, seq_len: int = 8) -> Any:
    """Float32 parameters (a pytree) for `model`."""
    z = jnp.zeros((1, seq_len), jnp.int32)
    return model.init(key, z, jnp.zeros((1, seq_len), jnp.float32), z, z + 1)["params"]
