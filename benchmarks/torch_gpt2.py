"""A plain PyTorch GPT-2 training step, the baseline of
`benchmarks.train_throughput --baseline=torch`: the original project's model
family (learned positions, pre-LayerNorm blocks, fused causal attention
`F.scaled_dot_product_attention(is_causal=True)`, a 4x MLP, AdamW), float32,
at the dimensions of our config. Needs the optional requirements-bench.txt."""

from __future__ import annotations

import time
from collections.abc import Callable


def make_torch_step(vocab: int, layers: int, width: int, heads: int, context: int, batch: int,
                    activation: str = "relu", seed: int = 0) -> Callable[[int], float]:
    """-> run(n): n training steps on one fixed random batch; returns seconds per step."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)
    act = {"relu": F.relu, "gelu": F.gelu}[activation]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv, self.proj = nn.Linear(width, 3 * width, bias=False), nn.Linear(width, width, bias=False)
            self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

        def forward(self, x):
            B, L, D = x.shape
            q, k, v = (t.view(B, L, heads, D // heads).transpose(1, 2) for t in self.qkv(self.ln1(x)).split(D, 2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(B, L, D))
            return x + self.down(act(self.up(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(context, width)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln, self.head = nn.LayerNorm(width), nn.Linear(width, vocab, bias=False)

        def forward(self, ids):
            x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, context), generator=gen)
    targets = torch.randint(0, vocab, (batch, context), generator=gen)

    def step():
        loss = F.cross_entropy(model(ids).view(-1, vocab), targets.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations)

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            step()
        return (time.perf_counter() - start) / n

    return run
