"""Large model: ~300M params (24 x 1024 x 16 heads, context 1024, bf16)."""

from configs.common import base_config


def get_config():
    c = base_config(num_layers=24, d_model=1024, num_heads=16, max_len=1024, dtype="bfloat16")
    c.data.batch_size = 64
    c.train.steps = 200_000
    c.train.lr = 3e-4
    c.train.warmup_steps = 2_000
    return c
