"""Base model: one GPU (6 x 512 x 8 heads, context 1024, bf16 compute)."""

from configs.common import base_config


def get_config():
    c = base_config(num_layers=6, d_model=512, num_heads=8, max_len=1024, dtype="bfloat16")
    c.data.batch_size = 32
    c.train.steps = 50_000
    c.train.lr = 6e-4
    return c
