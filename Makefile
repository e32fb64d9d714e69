# Shortcuts, as in the original project's README. Each uses .venv (made by
# scripts/setup_env.sh). SOURCE may be music21, lakh or a folder of .mid files.
SOURCE ?= music21
DATA ?= data/m21
PY := .venv/bin/python

.PHONY: env parse tokenize train serve test test-fast bench
CONFIG ?= configs/tiny.py
WORKDIR ?= runs/tiny

env:
	bash scripts/setup_env.sh

# MIDI files from the source (music21: converted into cache/music21), counted
parse: env
	$(PY) -m experiments.prepare --source=$(SOURCE) --out=$(DATA) --parse_only

# parse + tokenize into array_record shards and manifest.json
tokenize: env
	$(PY) -m experiments.prepare --source=$(SOURCE) --out=$(DATA)

# train CONFIG into WORKDIR (resumes if WORKDIR has a checkpoint)
train: env
	$(PY) -m experiments.train --config=$(CONFIG) --workdir=$(WORKDIR) --config.data.path=$(DATA)

# play WORKDIR from a web page (prints the URL)
serve: env
	$(PY) -m experiments.serve --workdir=$(WORKDIR)

test:
	bash scripts/test.sh

test-fast:
	bash scripts/test.sh -m "not slow"

bench: env
	$(PY) -m benchmarks.data_throughput
