#!/usr/bin/env bash
# The whole job on the embedded default, offline: installs, prepares the music21
# corpus into data/m21 (array_record shards + manifest.json), trains the tiny
# config on CPU into runs/tiny (checkpoints, metrics.jsonl, TensorBoard events,
# samples/step_N.{mid,png}), then samples runs/tiny/sample.{mid,png,wav} from
# the last checkpoint (and one per style: sample_chorale, sample_fiddle), and
# exports the page with the model into site/ (a static site). Run it again:
# each stage resumes or is already done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
.venv/bin/python -m experiments.prepare --source=music21 --out=data/m21
.venv/bin/python -m experiments.train --config=configs/tiny.py --workdir=runs/tiny
.venv/bin/python -m experiments.sample --workdir=runs/tiny --out=runs/tiny/sample.mid \
  --num_events=400 --seed=0
# the same, asked for one style each: the chorales' four voices, a fiddle tune's single line
for style in chorale fiddle; do
  .venv/bin/python -m experiments.sample --workdir=runs/tiny --out=runs/tiny/sample_$style.mid \
    --num_events=400 --seed=0 --style=$style
done
# a player-like press script through the play API (the script owns rhythm and
# dynamics, the model the pitches); prints the piece's adherence beside its path
.venv/bin/python -m experiments.sample --workdir=runs/tiny --out=runs/tiny/controlled.mid \
  --player_walk=48 --temperature=1.0 --top_p=0.95 --seed=0
# the page and the model as a static site: it plays with no server (the model runs in the page)
.venv/bin/python -m experiments.export --workdir=runs/tiny --out=site
echo
echo "Play it: .venv/bin/python -m experiments.serve --workdir=runs/tiny   # then open the URL it prints"
echo "   or, no server: python3 -m http.server --directory site 8000      # then open http://localhost:8000"
