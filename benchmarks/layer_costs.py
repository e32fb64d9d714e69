r"""Where a training step's time goes on this machine: forward + backward of
each part of one layer at the given dimensions, jitted, median of --reps.

    python -m benchmarks.layer_costs --layers_dims=6,512,8,1024,8

Parts: the model's attention (attention.causal_attention) over the whole
sequence in one block (the baseline) and in blocks that skip the key blocks
above the diagonal, jax.nn.dot_product_attention (XLA, is_causal, the
segment mask), the MLP with each activation. Prints one JSON line of
milliseconds and ratios against the baseline.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("layers_dims", ["6", "512", "8", "1024", "8"], "layers, width, heads, context, batch")
flags.DEFINE_integer("reps", 5, "timed repetitions (after one compile)")


def _time(fn, *args) -> float:
    grad = jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a).astype(jnp.float32)), argnums=tuple(range(len(args)))))
    jax.block_until_ready(grad(*args))
    times = []
    for _ in range(FLAGS.reps):
        start = time.perf_counter()
        jax.block_until_ready(grad(*args))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main(argv):
    del argv
    from yoshimidi_jax.model import attention as attn

    layers, D, H, L, B = (int(x) for x in FLAGS.layers_dims)
    K = D // H
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((B, H, L, K)), jnp.float32) for _ in range(3))
    seg = jnp.ones((B, L), jnp.int32)

    out = {"dims": [layers, D, H, L, B]}
    out["attention_full_ms"] = _time(lambda q, k, v: attn.causal_attention(q, k, v, seg, 0, jnp.float32), q, k, v)
    for block in (128, 256):
        if attn.use_blocks(L, block):
            out[f"attention_blockwise{block}_ms"] = _time(
                lambda q, k, v, b=block: attn.causal_attention(q, k, v, seg, b, jnp.float32), q, k, v)
    out["attention_jax_nn_ms"] = _time(
        lambda q, k, v: attn.library_attention(*(x.swapaxes(1, 2) for x in (q, k, v)), seg, "xla"), q, k, v)
    x = jnp.asarray(rng.standard_normal((B, L, D)), jnp.float32)
    w1 = jnp.asarray(rng.standard_normal((D, 4 * D)) * 0.02, jnp.float32)
    w2 = jnp.asarray(rng.standard_normal((4 * D, D)) * 0.02, jnp.float32)
    for name, act in (("gelu_tanh", lambda h: jax.nn.gelu(h, approximate=True)),
                      ("gelu_exact", lambda h: jax.nn.gelu(h, approximate=False)), ("relu", jax.nn.relu)):
        out[f"mlp_{name}_ms"] = _time(lambda x, w1, w2, a=act: a(x @ w1) @ w2, x, w1, w2)
    base = out["attention_full_ms"]
    out["ratios_vs_full_attention"] = {k: round(base / v, 3) for k, v in out.items()
                                       if k.startswith("attention_") and k != "attention_full_ms"}
    out["relu_vs_gelu_tanh"] = round(out["mlp_gelu_tanh_ms"] / out["mlp_relu_ms"], 3)
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}))


if __name__ == "__main__":
    app.run(main)
