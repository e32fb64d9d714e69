"""Tiny model: trains in minutes on 2 CPU cores (~0.9M params)."""

from configs.common import base_config


def get_config():
    c = base_config(num_layers=4, d_model=128, num_heads=4, max_len=256, dtype="float32")
    c.data.batch_size = 8
    c.train.steps = 3_000
    c.train.lr = 1e-3
    c.train.warmup_steps = 100
    c.train.eval_every = 250
    c.train.checkpoint_every = 250
    return c
