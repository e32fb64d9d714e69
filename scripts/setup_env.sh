#!/usr/bin/env bash
# Creates .venv from requirements.txt (again only when requirements.txt changed)
# and installs the Debian packages the project uses (fluidsynth, to render .wav;
# chromium, for the instrument page's browser tests). Needs python3.11 (or
# python3 >= 3.11).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
# Debian packages: fluidsynth renders .wav (else the built-in synth is used);
# chromium runs the page's browser tests (else they skip, saying why)
missing=()
command -v fluidsynth >/dev/null 2>&1 || missing+=(fluidsynth)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} (apt-get)..."
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } \
      || echo "warning: apt-get could not install ${missing[*]}: .wav files use the built-in synth / browser tests skip" >&2
  else
    echo "note: ${missing[*]} not installed (needs apt-get as root): .wav files use the built-in synth / browser tests skip" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi
# the exporter (experiments/export.py): jax2onnx, onnx, onnxruntime, without jax2onnx's declared
# pins (requirements-export.txt says why), again only when requirements-export.txt changed
stamp=.venv/.requirements-export.sha256
want=$(sha256sum requirements-export.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --no-deps -r requirements-export.txt
  echo "$want" > "$stamp"
fi
