#!/usr/bin/env bash
# The whole job on the embedded default, offline: installs, then prepares the
# music21 corpus into data/m21 (array_record shards + manifest.json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
.venv/bin/python -m experiments.prepare --source=music21 --out=data/m21
