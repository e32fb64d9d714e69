"""Shared config skeleton: config.model, config.data, config.train. Model
fields start at the Transformer's own defaults (model.default_model_config: the
one home of model defaults); vocabulary and time settings are derived from
tokens.Vocab / tokens.TimeCodec so they never drift."""

from __future__ import annotations

import ml_collections

from yoshimidi_jax.model.transformer import default_model_config
from yoshimidi_jax.tokens import TimeCodec, Vocab


def base_config(
    *, num_layers: int, d_model: int, num_heads: int, max_len: int, dtype: str = "float32"
) -> ml_collections.ConfigDict:
    vocab, codec = Vocab(), TimeCodec()
    c = ml_collections.ConfigDict()
    c.seed = 0

    # every Transformer field at its default (see model/transformer.py for what each does), then the sizes
    c.model = ml_collections.ConfigDict(default_model_config())
    c.model.num_layers = num_layers
    c.model.d_model = d_model
    c.model.num_heads = num_heads
    c.model.max_len = max_len  # context length (learned positions: table size)
    c.model.dtype = dtype  # compute dtype; params stay float32
    c.model.vocab_size = c.model.get_ref("time_shifts") + vocab.size  # follows time_shifts
    c.model.num_time_supports = codec.num_supports
    c.model.time_min_s = codec.min_s
    c.model.time_max_s = codec.max_s

    c.data = ml_collections.ConfigDict()
    c.data.path = "data/m21"  # a prepared dataset (experiments.prepare)
    c.data.seq_len = max_len
    c.data.batch_size = 8  # global (all devices, all hosts)
    # independent readers of the records (record i -> stream i % streams), each
    # packing its own rows; a process reads streams / processes of them. 0: one
    # per process. Fixed, it keeps the global batch the same for any number of
    # processes (the two-process test trains on the batches of a one-process run)
    c.data.streams = 0
    c.data.p_drop_control_sequence = 0.1  # a piece gets no CONTROL at all (the unconditional mode)
    c.data.p_drop_control_press = 0.1  # a press gets no CONTROL token
    c.data.p_drop_control_attribute = 0.15  # one attribute of a CONTROL is ANY
    c.data.p_drop_style = 0.2  # a piece's style is not given (the unconditioned mode; tokens/styles.py)
    c.data.augment_velocity = True  # seeded per-piece dynamics (data/augment.py), train and eval
    # training only: a longer piece gives each epoch a random crop of this many
    # tokens, so a few long pieces do not outweigh many short ones (0: whole pieces)
    c.data.max_piece_tokens = 1024
    # how each stream reads ahead (grain.ReadOptions; never changes a batch, may
    # change on resume): threads making pieces, pieces made ahead. More threads
    # help only where a piece waits on storage (many cores, remote shards)
    c.data.read_threads = 2
    c.data.prefetch_pieces = 32

    c.train = ml_collections.ConfigDict()
    c.train.steps = 10_000  # optimizer micro-steps
    c.train.lr = 3e-4
    c.train.final_lr_fraction = 0.1
    c.train.warmup_steps = 500
    c.train.decay_steps = 0  # cosine length; 0: train.steps (fixed at the first start, kept on resume)
    c.train.weight_decay = 0.1
    c.train.b1 = 0.9
    c.train.b2 = 0.95
    c.train.grad_clip = 1.0  # global norm; 0: off
    c.train.grad_accum_steps = 1
    c.train.fsdp = False  # shard params/optimizer state over devices
    c.train.log_every = 20
    c.train.eval_every = 500  # also when checkpoints are saved
    c.train.eval_batches = 16
    c.train.checkpoint_every = 500
    c.train.keep_checkpoints = 3  # the last N, plus the best by eval loss
    c.train.sample_events = 256  # at each eval: samples/step_N.{mid,png}
    c.train.sample_temperature = 1.0
    c.train.progress = True  # tqdm bar
    return c
