"""A prepared dataset's manifest.json and the shard files it names: what the
training path reads (without the writers and worker pool of prepare.py)."""

from __future__ import annotations

import json
import os

MANIFEST = "manifest.json"
SPLITS = ("train", "eval")


def read_manifest(data_dir: str) -> dict:
    path = os.path.join(data_dir, MANIFEST)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: run `python -m experiments.prepare --out={data_dir}` first")
    with open(path) as f:
        return json.load(f)


def shard_paths(data_dir: str, split: str) -> list[str]:
    manifest = read_manifest(data_dir)
    return [os.path.join(data_dir, name) for name in manifest["split"][split]["shards"]]
