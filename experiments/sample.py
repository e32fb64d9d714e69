r"""Samples music from a model: writes OUT.mid, OUT.png (piano roll), OUT.wav.

    python -m experiments.sample --config=configs/tiny.py --out=out.mid        # random init: noise, valid files
    python -m experiments.sample --workdir=runs/NAME --out=out.mid --num_events=512 \
        --temperature=0.9 --top_p=0.95 --seed=3 [--prompt=some.mid] [--controls=1/0/2,5/*/*]

With --workdir the run's config.json and latest orbax checkpoint are used
(random-init params, with a message, where there is no checkpoint yet).
--controls: comma-separated per-note controls "interval/chord/velocity"
(class numbers as in tokens/controls.py, '*' = any), inserted before the next
NOTE_ONs in order.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from yoshimidi_jax.midi import read_midi, write_midi
from yoshimidi_jax.model import model_cost
from yoshimidi_jax.sample import Constraints, generate, to_events
from yoshimidi_jax.sample.render import piano_roll_png, render_wav
from yoshimidi_jax.sample.restore import restore
from yoshimidi_jax.tokens import TokenSequence, encode
from yoshimidi_jax.tokens import controls as ctl

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "model config file (used when --workdir has no config.json)")
flags.DEFINE_string("workdir", None, "a training run's workdir (config.json + checkpoints/)")
flags.DEFINE_string("out", "out.mid", "output .mid path; .png and .wav are written beside it")
flags.DEFINE_integer("num_events", 512, "new token positions to sample (max events)")
flags.DEFINE_float("temperature", 1.0, "softmax temperature (<= 0: greedy)")
flags.DEFINE_float("top_p", 1.0, "nucleus sampling mass (1: off)")
flags.DEFINE_integer("top_k", 0, "keep the k most likely ids (0: off)")
flags.DEFINE_integer("seed", 0, "PRNG seed: the same seed gives the same music")
flags.DEFINE_string("prompt", None, "a .mid file whose beginning is the prompt")
flags.DEFINE_integer("prompt_tokens", 256, "how many tokens of --prompt to use")
flags.DEFINE_list("controls", [], "per-note controls interval/chord/velocity, '*' = any")
flags.DEFINE_integer("pitch_lo", 0, "lowest NOTE_ON pitch")
flags.DEFINE_integer("pitch_hi", 127, "highest NOTE_ON pitch")
flags.DEFINE_bool("allow_controls", False, "let the model sample CONTROL tokens itself")
flags.DEFINE_enum(
    "time_mode", "expectation", ["expectation", "sample"], "TIME values: log-time expectation or a sample"
)
flags.DEFINE_bool("wav", True, "also render a .wav")


def parse_controls(specs: list[str]) -> np.ndarray | None:
    if not specs:
        return None
    any_ = (ctl.ANY_INTERVAL, ctl.ANY_CHORD, ctl.ANY_VELOCITY)
    rows = []
    for spec in specs:
        parts = spec.split("/")
        if len(parts) != 3:
            raise app.UsageError(f"--controls item {spec!r}: expected interval/chord/velocity")
        rows.append([a if p == "*" else int(p) for p, a in zip(parts, any_)])
    r = np.array(rows)
    return ctl.control_id(r[:, 0], r[:, 1], r[:, 2]).astype(np.int32)


def main(argv: list[str]) -> None:
    del argv
    restored = restore(FLAGS.workdir, FLAGS.config, seed=FLAGS.seed)
    logging.info(restored.message)
    print(restored.message)
    print(model_cost(restored.config.model).summary())

    prompt = None
    if FLAGS.prompt:
        seq = encode(read_midi(FLAGS.prompt).events)
        n = min(FLAGS.prompt_tokens, len(seq) - 1)
        prompt = TokenSequence(seq.ids[:n], seq.times[:n])
    total = (len(prompt) + 1 if prompt is not None else 1) + FLAGS.num_events
    if total > restored.config.model.max_len:
        print(f"note: prompt + num_events = {total} positions, beyond the model's context of "
              f"{restored.config.model.max_len} (RoPE extrapolates; learned positions refuse)")
    constraints = Constraints(FLAGS.pitch_lo, FLAGS.pitch_hi, allow_controls=FLAGS.allow_controls)
    t0 = time.perf_counter()
    seqs, out = generate(
        restored.model,
        restored.params,
        jax.random.key(FLAGS.seed),
        num_events=FLAGS.num_events,
        prompt=prompt,
        temperature=FLAGS.temperature,
        top_p=FLAGS.top_p,
        top_k=FLAGS.top_k,
        controls=parse_controls(FLAGS.controls),
        constraints=constraints,
        time_mode=FLAGS.time_mode,
    )
    seconds = time.perf_counter() - t0
    events = to_events(seqs[0])

    stem = os.path.splitext(FLAGS.out)[0]
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    mid, png, wav = stem + ".mid", stem + ".png", stem + ".wav"
    write_midi(events, mid)
    piano_roll_png(events, png, title=f"{os.path.basename(mid)}: {len(events)} notes, seed {FLAGS.seed}")
    renderer = render_wav(events, mid, wav) if FLAGS.wav else None
    print(json.dumps({
        "mid": mid, "png": png, "wav": wav if FLAGS.wav else None, "renderer": renderer,
        "notes": len(events), "tokens": int(len(seqs[0])),
        "seconds_audio": float(events.end_s.max()) if len(events) else 0.0,
        "sample_seconds": round(seconds, 3), "step": restored.step,
    }))


if __name__ == "__main__":
    app.run(main)
