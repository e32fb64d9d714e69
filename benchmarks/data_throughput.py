r"""Data throughput on the embedded corpus, beside mido in the same run.

    python -m benchmarks.data_throughput [--limit=N] [--batches=50]

Prints one JSON line:
  prepare_notes_per_s_per_worker  read (symusic) + tokenize + write shards, one worker
  mido_parse_notes_per_s          mido.MidiFile alone on the same files (the floor
                                  of any mido-based reader, like the original's)
  prepare_vs_mido                 the ratio of the two
  grain_batches_per_s             packed batches of 32 x 1024 from the shards
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time

import mido
from absl import app, flags

from yoshimidi_jax.data.prepare import PrepareOptions, prepare
from yoshimidi_jax.data.sources.base import SourceFiles
from yoshimidi_jax.data.sources.music21_corpus import convert_corpus

FLAGS = flags.FLAGS
flags.DEFINE_integer("limit", 0, "use only the first N files (0: all)")
flags.DEFINE_integer("batches", 50, "grain batches to time")
flags.DEFINE_string("cache_dir", "cache", "where the converted corpus is kept")


def main(argv):
    del argv
    source = convert_corpus(os.path.join(FLAGS.cache_dir, "music21"), workers=os.cpu_count() or 2, progress=False)
    paths = source.paths[: FLAGS.limit] if FLAGS.limit else source.paths
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ds")
        start = time.perf_counter()
        manifest = prepare(SourceFiles(paths=tuple(paths)), out, PrepareOptions(workers=1, progress=False))
        prepare_s = time.perf_counter() - start
        notes = manifest["notes"]

        start = time.perf_counter()
        for path in paths:
            mido.MidiFile(path)
        mido_s = time.perf_counter() - start

        # imported here, not at the top: worker processes import this module, and
        # grain takes 0.6 s to import that `experiments.prepare` never pays
        from yoshimidi_jax.data.pipeline import BatchSpec, make_batches

        spec = BatchSpec(seq_len=1024, batch_size=32, seed=0)
        it = iter(make_batches(out, "train", spec))
        next(it)  # warm up
        start = time.perf_counter()
        for _ in range(FLAGS.batches):
            next(it)
        grain_s = time.perf_counter() - start

    prepare_rate = notes / prepare_s
    mido_rate = notes / mido_s
    print(json.dumps({
        "prepare_notes_per_s_per_worker": round(prepare_rate),
        "mido_parse_notes_per_s": round(mido_rate),
        "prepare_vs_mido": round(prepare_rate / mido_rate, 2),
        "grain_batches_per_s": round(FLAGS.batches / grain_s, 2),
        "files": len(paths),
        "notes": notes,
        "tokens_per_note": manifest["tokens_per_note"],
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
    }))


if __name__ == "__main__":
    app.run(main)
