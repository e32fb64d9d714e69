"""The sample a training run writes at each eval: samples/step_N.{mid,png}
(the training loop receives this writer from experiments/train.py rather than
importing the sampler: train/ sits below sample/)."""

from __future__ import annotations

import os

import jax

from yoshimidi_jax.midi import write_midi
from yoshimidi_jax.midi.render import piano_roll_png
from yoshimidi_jax.sample.sampler import generate, to_events


def write_step_sample(model, params, cfg, step: int, local: str) -> str:
    """samples/step_N.{mid,png} from the current params (seeded by the step)."""
    os.makedirs(os.path.join(local, "samples"), exist_ok=True)
    key = jax.random.fold_in(jax.random.key(cfg.seed), step)
    seqs, _ = generate(
        model, jax.device_get(params), key, num_events=cfg.train.sample_events,
        temperature=cfg.train.sample_temperature,
    )
    events = to_events(seqs[0], model.vocab)
    stem = os.path.join(local, "samples", f"step_{step}")
    write_midi(events, stem + ".mid")
    piano_roll_png(events, stem + ".png", title=f"step {step}: {len(events)} notes")
    return stem + ".mid"
