"""Parameter count and training FLOPs per token for a model config.

flops_per_token = 6 * N_nonembed + 12 * L * d_model * context   (PaLM, app. B)
  6N: forward + backward matmuls over the non-embedding weights (the heads are
  counted in N: they are matmuls); 12 L d T: the attention scores and the
  weighted sum over a context of T (forward + backward, no causal discount).
Counts come from jax.eval_shape (nothing is allocated, so large configs are fine).
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
import numpy as np

from yoshimidi_jax.model.transformer import init_params, make_model


@dataclasses.dataclass(frozen=True)
class ModelCost:
    params: int  # all parameters
    embedding_params: int  # token, time-support and learned position tables (lookups, not matmuls)
    nonembedding_params: int
    flops_per_token: float  # training (fwd + bwd) at full context
    context: int

    def summary(self) -> str:
        return (
            f"params {self.params:,} (non-embedding {self.nonembedding_params:,}); "
            f"train FLOPs/token {self.flops_per_token:.3g} at context {self.context}"
        )


def model_cost(model_cfg: ml_collections.ConfigDict, context: int | None = None) -> ModelCost:
    model = make_model(model_cfg)
    shapes = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
    sizes = {"/".join(str(getattr(k, "key", k)) for k in path): int(np.prod(leaf.shape))
             for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]}
    total = sum(sizes.values())
    embed = sum(v for k, v in sizes.items() if k.startswith(("token_embed", "time_embed", "pos_embed")))
    t = int(context or model_cfg.max_len)
    flops = 6.0 * (total - embed) + 12.0 * model_cfg.num_layers * model_cfg.d_model * t
    return ModelCost(total, embed, total - embed, flops, t)
