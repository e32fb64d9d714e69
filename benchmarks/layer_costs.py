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
flags.DEFINE_bool("torch", False, "also time PyTorch's own parts of the same shapes (requirements-bench.txt): "
                  "fused causal attention, the ReLU MLP and one matmul")


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
    out["matmul_ms"] = _time(lambda x, w1: x.reshape(-1, D) @ w1, x, w1)  # [B L, D] x [D, 4D], fwd + bwd
    if FLAGS.torch:
        out["torch"] = _torch_parts(B, H, L, K, D)
        out["jax_over_torch_time"] = {
            "attention": round(out["attention_blockwise128_ms" if "attention_blockwise128_ms" in out
                                   else "attention_full_ms"] / out["torch"]["attention_ms"], 3),
            "mlp_relu": round(out["mlp_relu_ms"] / out["torch"]["mlp_relu_ms"], 3),
            "matmul": round(out["matmul_ms"] / out["torch"]["matmul_ms"], 3)}
    base = out["attention_full_ms"]
    out["ratios_vs_full_attention"] = {k: round(base / v, 3) for k, v in out.items()
                                       if k.startswith("attention_") and k != "attention_full_ms"}
    out["relu_vs_gelu_tanh"] = round(out["mlp_gelu_tanh_ms"] / out["mlp_relu_ms"], 3)
    print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}))


def _torch_parts(B: int, H: int, L: int, K: int, D: int) -> dict:
    """PyTorch's forward + backward of the same parts: F.scaled_dot_product_attention(is_causal=True)
    (its fused CPU flash attention), the ReLU MLP, one matmul; medians of --reps."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, L, K, generator=g, requires_grad=True) for _ in range(3))
    x = torch.randn(B, L, D, generator=g, requires_grad=True)
    w1 = (torch.randn(D, 4 * D, generator=g) * 0.02).requires_grad_()
    w2 = (torch.randn(4 * D, D, generator=g) * 0.02).requires_grad_()

    def timed(fn):
        fn().sum().backward()
        times = []
        for _ in range(FLAGS.reps):
            start = time.perf_counter()
            fn().sum().backward()
            times.append(time.perf_counter() - start)
        return float(np.median(times)) * 1e3

    return {"attention_ms": round(timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)), 2),
            "mlp_relu_ms": round(timed(lambda: F.relu(x @ w1) @ w2), 2),
            "matmul_ms": round(timed(lambda: x.reshape(-1, D) @ w1), 2),
            "threads": torch.get_num_threads()}


if __name__ == "__main__":
    app.run(main)
