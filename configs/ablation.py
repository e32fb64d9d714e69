"""The tiny model for ablations (experiments/notebooks/): a short run on
the embedded corpus that evaluates and checkpoints once, at its end.

    cfg = get_config(data_path="data/m21", steps=800, model={"num_layers": 2})
"""

import ml_collections

from configs.tiny import get_config as tiny_config


def get_config(data_path: str = "data/m21", steps: int = 800, seq_len: int = 256, seed: int = 0,
               model: dict | None = None) -> ml_collections.ConfigDict:
    c = tiny_config()
    c.seed = seed
    c.data.path = data_path
    c.data.seq_len = seq_len
    c.model.max_len = seq_len
    c.model.update(model or {})
    c.train.steps = steps
    c.train.warmup_steps = max(1, min(c.train.warmup_steps, steps // 10))
    c.train.eval_every = c.train.checkpoint_every = steps
    c.train.progress = False
    return c
