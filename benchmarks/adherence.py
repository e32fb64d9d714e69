r"""Control adherence: do presses of a given kind get notes of that kind?

    python -m benchmarks.adherence --workdir=runs/tiny [--presses=600 --temperature=1.0 --top_p=0.95]

Free sampling (the grammar mask only; the model's own rhythm) with per-press
controls inserted where the model starts a press, scored on the decoded notes
(yoshimidi_jax.sample.adherence):
  adherence_heldout  controls of held-out pieces (the eval split, with the
                     training's velocity augmentation at a fixed seed)
  adherence_player   player-like press scripts (sample/player_walk.py)
  adherence_chance   the held-out targets scored on unconditioned samples
  adherence_chance_player  the player targets scored on unconditioned samples
  adherence_strict   player targets with --strict masks (1.0 by construction)
  agreement          mean probability the model gave the strict mask's choices
                     where the mask narrowed them (before masking)
Each is a dict interval/chord/velocity/all; `presses` counts the scored ones.
Every condition samples on a piano (pitches 21..108); an interval with no room
there (down from the lowest key) is counted in `infeasible`, not scored.
Prints one JSON line.
"""

from __future__ import annotations

import json
import time

import jax
import numpy as np
from absl import app, flags
from array_record.python.array_record_data_source import ArrayRecordDataSource

from yoshimidi_jax.data.augment import augment_velocity
from yoshimidi_jax.data.manifest import shard_paths
from yoshimidi_jax.data.records import deserialize
from yoshimidi_jax.sample import Constraints, generate, to_events
from yoshimidi_jax.sample.adherence import AdherenceCounts, score
from yoshimidi_jax.sample.player_walk import player_walk
from yoshimidi_jax.sample.restore import restore
from yoshimidi_jax.tokens import decode, encode
from yoshimidi_jax.tokens.controls import Control, annotate

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/tiny", "a trained run")
flags.DEFINE_string("data", None, "prepared data (default: the run's config.data.path)")
PIANO = (21, 108)  # the pitch range every condition samples in
flags.DEFINE_integer("presses", 800, "controlled presses to aim for, per condition")
flags.DEFINE_integer("batch", 16, "rows sampled at once")
flags.DEFINE_integer("num_events", 0, "tokens per row (0: the model's context - 1)")
flags.DEFINE_float("temperature", 1.0, "sampling temperature")
flags.DEFINE_float("top_p", 0.95, "nucleus mass")
flags.DEFINE_integer("seed", 0, "PRNG seed")


def heldout_controls(data_dir: str, rows: int, per_row: int, seed: int) -> list[list[Control]]:
    """Consecutive presses' controls from held-out pieces, one piece per row."""
    src = ArrayRecordDataSource(shard_paths(data_dir, "eval"))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(len(src)):
        tokens = deserialize(src[i]).tokens
        events = augment_velocity(decode(tokens.ids, tokens.times), np.random.default_rng([seed, i]))
        seq = encode(events)
        c = annotate(seq.ids, seq.times)
        if len(c.position) < per_row + 1:
            continue
        start = int(rng.integers(0, len(c.position) - per_row))
        out.append([Control(int(a), int(b), int(v)) for a, b, v in
                    zip(c.interval[start:start + per_row], c.chord[start:start + per_row],
                        c.velocity[start:start + per_row])])
        if len(out) == rows:
            break
    return out


def player_controls(rows: int, per_row: int, seed: int) -> list[list[Control]]:
    return [[p.control for p in player_walk(per_row, seed=seed * 1000 + r)] for r in range(rows)]


def run_condition(restored, targets, controlled: bool, strict: bool, key, num_events: int):
    """-> (AdherenceCounts over all rows, agreement values, seconds)."""
    per_row = max(len(t) for t in targets)
    ctrl = np.full((len(targets), per_row), -1, np.int32)
    if controlled:
        for r, t in enumerate(targets):
            ctrl[r, : len(t)] = [c.id() for c in t]
    t0 = time.perf_counter()
    seqs, out = generate(
        restored.model, restored.params, key, num_events=num_events, batch=len(targets),
        temperature=FLAGS.temperature, top_p=FLAGS.top_p, controls=ctrl,
        constraints=Constraints(PIANO[0], PIANO[1], allow_eos=False, strict=strict),
    )
    seconds = time.perf_counter() - t0
    total = AdherenceCounts.zero()
    for r, seq in enumerate(seqs):
        used = int(out.forced[r].sum()) if controlled else len(targets[r])
        total = total + score(to_events(seq), targets[r][:used], complete=False, pitch_range=PIANO)
    agreement = np.asarray(out.agreement)
    return total, agreement[agreement >= 0], seconds


def main(argv):
    del argv
    restored = restore(FLAGS.workdir)
    if restored.step is None:
        raise SystemExit(f"no checkpoint in {FLAGS.workdir}: train first")
    cfg = restored.config
    num_events = FLAGS.num_events or cfg.model.max_len - 1
    per_row = num_events // 3  # more targets than a row can use: presses are >= 3 tokens
    rounds = -(-FLAGS.presses // (FLAGS.batch * num_events // 6))  # ~6 tokens per press in practice
    data = FLAGS.data or cfg.data.path
    result = {"step": restored.step, "temperature": FLAGS.temperature, "top_p": FLAGS.top_p,
              "num_events": num_events}
    key = jax.random.key(FLAGS.seed)
    sums = {}
    agreements = []
    for rnd in range(rounds):
        held = heldout_controls(data, FLAGS.batch, per_row, seed=FLAGS.seed + rnd)
        player = player_controls(FLAGS.batch, per_row, seed=FLAGS.seed + rnd)
        conds = {
            "heldout": (held, True, False), "player": (player, True, False),
            "chance": (held, False, False), "chance_player": (player, False, False),
            "strict": (player, True, True),
        }
        for name, (targets, controlled, strict) in conds.items():
            key, sub = jax.random.split(key)
            counts, agree, _ = run_condition(restored, targets, controlled, strict, sub, num_events)
            sums[name] = sums.get(name, AdherenceCounts.zero()) + counts
            if strict:
                agreements.append(agree)
    for name, counts in sums.items():
        result[f"adherence_{name}"] = counts.rates()
        result[f"presses_{name}"] = counts.given["all"]
        result[f"infeasible_{name}"] = counts.infeasible
    agree = np.concatenate(agreements) if agreements else np.zeros(0)
    result["agreement"] = round(float(agree.mean()), 4) if agree.size else None
    result["agreement_steps"] = int(agree.size)
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
