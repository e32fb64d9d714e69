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

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from yoshimidi_jax.model import attention as attn
from yoshimidi_jax.model import dots
from yoshimidi_jax.model import kv_cache
from yoshimidi_jax.model.press_features import PressContext, press_context
from yoshimidi_jax.tokens import TIME, TimeCodec, Vocab
from yoshimidi_jax.tokens.controls import control_attributes
from yoshimidi_jax.tokens.presses import velocity_bucket
from yoshimidi_jax.tokens.vocab import NUM_CHORD_SIZES, NUM_INTERVAL_CLASSES, NUM_VELOCITY_BUCKETS


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
    def __call__(self, x_BxLxD, positions_BxL, mask_Bx1xLxT, cache=None, cache_index=None, segment_ids_BxL=None):
        h_BxLxD = _norm(self.norm, self.dtype, "attn_norm")(x_BxLxD)
        h_BxLxD, cache = attn.Attention(
            self.num_heads, self.positional, self.rope_base, self.dtype, self.attention_block, self.attention,
            name="attn"
        )(h_BxLxD, positions_BxL, mask_Bx1xLxT, cache, cache_index, segment_ids_BxL)
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
    factored_controls: bool = False
    control_reference: bool = False
    control_bias: bool = False
    control_bias_scale: float = 1.0
    activation: str = "gelu"  # the MLP's: 'gelu' (tanh approximation) | 'relu'
    attention_block: int = 0  # training attention in query blocks of this size, skipping masked keys (0: off)
    attention: str = "blocks"  # training attention: 'blocks' | 'jax' | 'cudnn' (attention.Attention)
    time_shifts: int = 0  # TIME_SHIFT ids in the vocabulary (tokens/vocab.py); 0: continuous time only
    time_shift_s: float = 0.01
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
            # the previous press's reference pitch, at CONTROL positions (press_features.py)
            self.control_ref_embed = self.param("control_ref_embed", init, (129, self.d_model), jnp.float32)
        if self.control_bias:
            # output biases indexed by the control in force (press_features.py), zero-initialised;
            # used times control_bias_scale, so that Adam (whose steps are ~lr in
            # size whatever the gradient) moves them that much faster than weights
            zeros = nn.initializers.zeros
            self.interval_bias = self.param("interval_bias", zeros, (NUM_INTERVAL_CLASSES + 1, 255), jnp.float32)
            # by (bucket asked, bucket in force): whether a VELOCITY must come, and which
            self.velocity_bias = self.param(
                "velocity_bias", zeros, (NUM_VELOCITY_BUCKETS + 1, NUM_VELOCITY_BUCKETS + 1, self.vocab_size),
                jnp.float32)
            self.chord_bias = self.param("chord_bias", zeros, (NUM_CHORD_SIZES + 1, NUM_CHORD_SIZES + 1, 2), jnp.float32)
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
        self, inputs_BxL: jax.Array, times_BxL: jax.Array, positions_BxL: jax.Array, ctx: PressContext | None = None
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
        if self.positional == "learned":
            x_BxLxD = x_BxLxD + jnp.take(self.pos_embed, jnp.clip(positions_BxL, 0, self.max_len - 1), axis=0)
        return x_BxLxD.astype(self.dtype)

    def heads(self, x_BxLxD: jax.Array, ctx: PressContext | None = None) -> tuple[jax.Array, jax.Array]:
        """(token logits [B, L, V], time logits [B, L, S]), in float32."""
        x_BxLxD = self.final_norm(x_BxLxD).astype(jnp.float32)
        logits_BxLxV = self.token_head(x_BxLxD)
        if self.control_bias:
            logits_BxLxV = logits_BxLxV + self.control_logit_bias(ctx)
        return logits_BxLxV, self.time_head(x_BxLxD)

    def control_logit_bias(self, ctx: PressContext) -> jax.Array:
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

    def __call__(
        self, inputs_BxL: jax.Array, times_BxL: jax.Array, positions_BxL: jax.Array, segment_ids_BxL: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """-> (logits [B, L, V], time logits [B, L, S])."""
        ctx = None
        if self.control_reference or self.control_bias:
            ctx = press_context(inputs_BxL, segment_ids_BxL, vocab=self.vocab)
        x_BxLxD = self.embed(inputs_BxL, times_BxL, positions_BxL, ctx)
        for block in self.blocks:  # attention: causal and within segments (attention.causal_attention)
            x_BxLxD, _ = block(x_BxLxD, positions_BxL, None, None, None, segment_ids_BxL)
        return self.heads(x_BxLxD, ctx)

    def decode(
        self, inputs_BxL: jax.Array, times_BxL: jax.Array, cache: kv_cache.Cache, cache_index: jax.Array,
        press_start: tuple | None = None,
    ) -> tuple[jax.Array, jax.Array, kv_cache.Cache]:
        """L new tokens at sequence indices cache_index..cache_index+L-1 (one
        piece per row, position == index) -> (logits [B, L, V], time logits
        [B, L, S], updated cache). press_start: (control, press_len, ref) [B]
        each, where the tokens before these stand (a sample Track's values);
        None: the start of a piece."""
        B, L = inputs_BxL.shape
        positions_BxL = jnp.broadcast_to(cache_index + jnp.arange(L, dtype=jnp.int32), (B, L))
        ctx = None
        if self.control_reference or self.control_bias:
            ctx = press_context(inputs_BxL, None, press_start, self.vocab)
        x_BxLxD = self.embed(inputs_BxL, times_BxL, positions_BxL, ctx)
        mask_1x1xLxT = attn.decode_mask(cache_index, L, cache[0]["k"].shape[2])
        new_cache = []
        for block, layer in zip(self.blocks, cache):
            x_BxLxD, layer = block(x_BxLxD, positions_BxL, mask_1x1xLxT, layer, cache_index)
            new_cache.append(layer)
        logits_BxLxV, time_logits_BxLxS = self.heads(x_BxLxD, ctx)
        return logits_BxLxV, time_logits_BxLxS, new_cache


def make_model(model_cfg: ml_collections.ConfigDict) -> Transformer:
    """config.model -> Transformer."""
    return Transformer(
        vocab_size=model_cfg.vocab_size,
        num_time_supports=model_cfg.num_time_supports,
        time_min_s=model_cfg.time_min_s,
        time_max_s=model_cfg.time_max_s,
        num_layers=model_cfg.num_layers,
        d_model=model_cfg.d_model,
        num_heads=model_cfg.num_heads,
        mlp_ratio=model_cfg.mlp_ratio,
        max_len=model_cfg.max_len,
        positional=model_cfg.positional,
        rope_base=model_cfg.get("rope_base", 10_000.0),
        norm=model_cfg.get("norm", "rmsnorm"),
        factored_controls=model_cfg.get("factored_controls", False),
        control_reference=model_cfg.get("control_reference", False),
        control_bias=model_cfg.get("control_bias", False),
        control_bias_scale=model_cfg.get("control_bias_scale", 1.0),
        activation=model_cfg.get("activation", "gelu"),
        attention_block=model_cfg.get("attention_block", 0),
        attention=model_cfg.get("attention", "blocks"),
        time_shifts=model_cfg.get("time_shifts", 0),
        time_shift_s=model_cfg.get("time_shift_s", 0.01),
        dtype=compute_dtype(model_cfg.dtype),
    )


def init_params(model: Transformer, key: jax.Array, seq_len: int = 8) -> Any:
    """Float32 parameters (a pytree) for `model`."""
    z = jnp.zeros((1, seq_len), jnp.int32)
    return model.init(key, z, jnp.zeros((1, seq_len), jnp.float32), z, z + 1)["params"]
