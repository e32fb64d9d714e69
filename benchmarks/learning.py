r"""It learns: the tiny model against the best n-gram, on the same held-out tokens.

    python -m benchmarks.learning [--steps=2000] [--data=data/m21] [--workdir=runs/learning]

Trains configs/tiny.py on the prepared embedded corpus (CPU is fine), then
scores the eval split, one epoch in a fixed order with the same control
tokens, with both the model and n-gram models (n = 1..5, interpolated modified
Kneser-Ney, fitted on the train split as the pipeline feeds it). Both score
exactly the same target positions: every target of every eval window except
the first token of each window (which the model sees no context for) and the
BOS of each piece. The figure is token cross-entropy in nats per token; the
model's loss on the TIME *values* (its time head) is reported apart, since an
n-gram over ids cannot predict them.

Prints one JSON line: model_loss, ngram_loss, ngram_n, ngram_losses,
model_minus_ngram, model_time_value_loss, train_seconds, steps, eval_tokens.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 2000, "training steps of the tiny config")
flags.DEFINE_string("data", "data/m21", "prepared dataset (experiments.prepare)")
flags.DEFINE_string("workdir", "runs/learning", "where the model trains (emptied first)")
flags.DEFINE_enum("activation", "gelu", ["gelu", "relu"], "the model's MLP activation (config model.activation)")


def _stream_windows(data: str, spec) -> np.ndarray:
    """Every eval window of seq_len + 1 tokens, in order: [W, L + 1] (+ times, mask)."""
    from yoshimidi_jax.data.pipeline import make_batches

    windows = list(make_batches(data, "eval", spec))
    ids = np.concatenate([np.concatenate([w["inputs"], w["targets"][:, -1:]], axis=1) for w in windows])
    times = np.concatenate([np.concatenate([w["input_times"], w["target_times"][:, -1:]], axis=1)
                            for w in windows])
    mask = np.concatenate([w["loss_mask"] for w in windows])
    segs = np.concatenate([w["segment_ids"] for w in windows])
    pos = np.concatenate([w["positions"] for w in windows])
    return ids, times, mask, segs, pos


def _pieces(data: str, split: str, spec) -> list[np.ndarray]:
    from yoshimidi_jax.data.pipeline import piece_dataset
    from yoshimidi_jax.data.manifest import shard_paths

    return [x["ids"] for x in piece_dataset(shard_paths(data, split), spec)]


def _model_token_nll(restored, ids, times, mask, segs, pos, batch: int = 16):
    """Token CE and time-value CE at every target of the windows."""
    from yoshimidi_jax.tokens import TIME, TimeCodec

    model, params = restored.model, restored.params
    codec = TimeCodec()

    @jax.jit
    def nll(inp, inp_t, tgt, tgt_t, seg, p):
        logits, time_logits = model.apply({"params": params}, inp, inp_t, p, seg)
        token = optax.softmax_cross_entropy_with_integer_labels(logits, tgt)
        tv = optax.softmax_cross_entropy(time_logits, codec.two_hot_dense(tgt_t, jnp))
        return token, jnp.where(tgt == TIME, tv, 0.0)

    token_out, time_out = [], []
    for i in range(0, ids.shape[0], batch):
        sl = slice(i, i + batch)
        t, v = nll(ids[sl, :-1], times[sl, :-1], ids[sl, 1:], times[sl, 1:], segs[sl], pos[sl])
        token_out.append(np.asarray(t))
        time_out.append(np.asarray(v))
    return np.concatenate(token_out), np.concatenate(time_out)


def _ngram_nll_on_windows(model, ids: np.ndarray) -> np.ndarray:
    """The n-gram's -log p of every window target [W, L], with contexts taken
    from the whole piece (windows are consecutive cuts of one stream)."""
    from yoshimidi_jax.tokens import BOS, PAD
    from yoshimidi_jax.eval.ngram import log_probs

    stream = ids.reshape(-1)
    real = np.flatnonzero(stream != PAD)
    starts = real[stream[real] == BOS]
    ends = np.append(starts[1:], real[-1] + 1)
    pieces = [stream[s:e] for s, e in zip(starts, ends)]
    nll = np.full(stream.shape[0], np.nan)
    for s, lp in zip(starts, log_probs(model, pieces)):
        nll[s + 1 : s + 1 + lp.shape[0]] = -lp
    return nll.reshape(ids.shape)[:, 1:]


def main(argv):
    del argv
    from configs.tiny import get_config
    from yoshimidi_jax.restore import restore
    from yoshimidi_jax.tokens import Vocab
    from yoshimidi_jax.train.loop import batch_spec, train
    from yoshimidi_jax.eval.ngram import fit_ngram

    cfg = get_config()
    cfg.data.path = FLAGS.data
    cfg.model.activation = FLAGS.activation
    cfg.train.steps = FLAGS.steps
    cfg.train.warmup_steps = min(cfg.train.warmup_steps, FLAGS.steps // 10)
    cfg.train.eval_every = cfg.train.checkpoint_every = max(FLAGS.steps // 4, 1)
    cfg.train.progress = False
    shutil.rmtree(FLAGS.workdir, ignore_errors=True)
    start = time.perf_counter()
    train(cfg, FLAGS.workdir)
    train_seconds = time.perf_counter() - start

    eval_spec = batch_spec(cfg, "eval")
    eval_spec = dataclasses.replace(eval_spec, num_epochs=1, drop_remainder=False, batch_size=1)
    ids, times, mask, segs, pos = _stream_windows(FLAGS.data, eval_spec)
    token_nll, time_nll = _model_token_nll(restore(FLAGS.workdir), ids, times, mask, segs, pos)

    train_spec = dataclasses.replace(batch_spec(cfg, "train"), num_epochs=1, shuffle=False)
    train_pieces = _pieces(FLAGS.data, "train", train_spec)
    vocab = Vocab()
    losses = {}
    for n in (1, 2, 3, 4, 5):
        ng = fit_ngram(train_pieces, n, vocab.size)
        ng_nll = _ngram_nll_on_windows(ng, ids)
        assert not np.isnan(ng_nll[mask]).any()
        losses[n] = float(ng_nll[mask].mean())
    best_n = min(losses, key=losses.get)
    model_loss = float(token_nll[mask].mean())
    print(json.dumps({
        "model_loss": round(model_loss, 4),
        "ngram_loss": round(losses[best_n], 4),
        "ngram_n": best_n,
        "ngram_losses": {str(k): round(v, 4) for k, v in losses.items()},
        "model_minus_ngram": round(model_loss - losses[best_n], 4),
        "model_time_value_loss": round(float(time_nll[mask].sum() / max((time_nll[mask] > 0).sum(), 1)), 4),
        "train_seconds": round(train_seconds, 1),
        "steps": FLAGS.steps,
        "eval_tokens": int(mask.sum()),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {jax.devices()[0].platform}",
    }))


if __name__ == "__main__":
    app.run(main)
