r"""Control adherence: do presses of a given kind get notes of that kind?

    python -m benchmarks.adherence --workdir=runs/tiny [--presses=600 --temperature=1.0 --top_p=0.95]
    python -m benchmarks.adherence --workdir=runs/tiny --conditions=player_press,player_zero_wait

Free sampling (the grammar mask only; the model's own rhythm) with per-press
controls inserted where the model starts a press, scored on the decoded notes
(yoshimidi_jax.eval.adherence):
  adherence_heldout  controls of held-out pieces (the eval split, with the
                     training's velocity augmentation at a fixed seed)
  adherence_player   player-like press scripts (play/walk.py)
  adherence_chance   the held-out targets scored on unconditioned samples
  adherence_chance_player  the player targets scored on unconditioned samples
  adherence_strict   player targets with --strict masks (1.0 by construction)
  adherence_player_press   the same scripts played through the instrument's API
                     (play.Player: the player's rhythm, releases), each chord
                     one press whose control asks its size
  adherence_player_zero_wait  ... played key by key (zero-wait keys): the
                     first key a press that grows (chord ANY), each further
                     key joins it; `chord` = presses that end with as many
                     notes as keys
  adherence_player_zero_wait_strict  ... with strict masks
  agreement          mean probability the model gave the strict mask's choices
                     where the mask narrowed them (before masking)
Each is a dict interval/chord/velocity/all; `presses` counts the scored ones.
Every condition samples on a piano (pitches 21..108); an interval with no room
there (down from the lowest key) is counted in `infeasible`, not scored.
Prints one JSON line.
"""

from __future__ import annotations

import json

from absl import app, flags

from yoshimidi_jax.eval.adherence import ALL_CONDITIONS, measure_adherence
from yoshimidi_jax.restore import restore

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/tiny", "a trained run")
flags.DEFINE_string("data", None, "prepared data (default: the run's config.data.path)")
flags.DEFINE_integer("presses", 800, "controlled presses to aim for, per condition")
flags.DEFINE_integer("batch", 16, "rows sampled at once")
flags.DEFINE_integer("num_events", 0, "tokens per row (0: the model's context - 1)")
flags.DEFINE_float("temperature", 1.0, "sampling temperature")
flags.DEFINE_float("top_p", 0.95, "nucleus mass")
flags.DEFINE_integer("seed", 0, "PRNG seed")
flags.DEFINE_list("conditions", list(ALL_CONDITIONS), f"conditions to measure, of {', '.join(ALL_CONDITIONS)}")


def main(argv):
    del argv
    restored = restore(FLAGS.workdir)
    if restored.step is None:
        raise SystemExit(f"no checkpoint in {FLAGS.workdir}: train first")
    result = measure_adherence(
        restored.model, restored.params, FLAGS.data or restored.config.data.path, presses=FLAGS.presses,
        batch=FLAGS.batch, num_events=FLAGS.num_events, temperature=FLAGS.temperature, top_p=FLAGS.top_p,
        seed=FLAGS.seed, conditions=tuple(FLAGS.conditions))
    print(json.dumps({"step": restored.step, **result}))


if __name__ == "__main__":
    app.run(main)
