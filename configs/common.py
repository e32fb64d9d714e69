"""Shared config skeleton: config.model (this issue), config.data and
config.train (filled by the training issue). Vocabulary and time settings are
derived from tokens.Vocab / tokens.TimeCodec so they never drift."""

from __future__ import annotations

import ml_collections

from yoshimidi_jax.tokens import TimeCodec, Vocab


def base_config(
    *, num_layers: int, d_model: int, num_heads: int, max_len: int, dtype: str = "float32"
) -> ml_collections.ConfigDict:
    vocab, codec = Vocab(), TimeCodec()
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.num_layers = num_layers
    c.model.d_model = d_model
    c.model.num_heads = num_heads
    c.model.mlp_ratio = 4
    c.model.max_len = max_len  # context length (learned positions: table size)
    c.model.positional = "rope"  # 'rope' | 'learned'
    c.model.rope_base = 10_000.0
    c.model.dtype = dtype  # compute dtype; params stay float32
    c.model.norm = "rmsnorm"  # 'rmsnorm' | 'layernorm'
    c.model.activation = "gelu"  # the MLP's: 'gelu' (tanh approximation) | 'relu'
    # training attention in blocks of this many queries, each against only the
    # keys up to its end (the masked blocks above the diagonal are skipped; the
    # same result); 0: the whole [L, L] at once. Used where seq_len is a multiple > 1.
    # 128: ~2x faster attention (forward + backward) at context 256 and 1024 on CPU (benchmarks/RESULTS.md)
    c.model.attention_block = 128
    # training attention: 'blocks' (ours, in blocks of attention_block), 'jax'
    # (jax.nn.dot_product_attention, XLA), 'cudnn' (its cuDNN flash attention on
    # a GPU with bf16/fp16 compute; elsewhere 'blocks'). Same results.
    c.model.attention = "blocks"
    c.model.factored_controls = True  # CONTROL embedding += one embedding per attribute
    c.model.control_reference = True  # CONTROL embedding += the previous press's reference pitch
    c.model.control_bias = True  # logits += learned biases indexed by the control in force
    c.model.control_bias_scale = 10.0  # those biases learn this much faster (a parameter multiplier)
    # how time is written: 0, continuous TIME positions (a two-hot time head over
    # num_time_supports log-spaced supports); N > 0, TIME_SHIFT tokens of 1..N
    # steps of time_shift_s (Performance RNN's grid; the time head goes unused)
    c.model.time_shifts = 0
    c.model.time_shift_s = 0.01
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
    c.data.augment_velocity = True  # seeded per-piece dynamics (data/augment.py), train and eval

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
