#!/usr/bin/env bash
# The whole job on the embedded default, offline: installs, prepares the music21
# corpus into data/m21 (array_record shards + manifest.json), then writes a
# sample (runs/quickstart/sample.{mid,png,wav}) from the tiny config.
# (Until the training entry point lands, the sample comes from random init.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
.venv/bin/python -m experiments.prepare --source=music21 --out=data/m21
.venv/bin/python -m experiments.sample --config=configs/tiny.py --out=runs/quickstart/sample.mid \
  --num_events=240 --seed=0
