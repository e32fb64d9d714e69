r"""Prepares a dataset: MIDI files -> array_record shards + manifest.json.

    python -m experiments.prepare --source=music21 --out=data/m21
    python -m experiments.prepare --source=music21 --collections=all --out=data/m21_full
    python -m experiments.prepare --source=path/to/midi/folder --out=data/mine
    python -m experiments.prepare --source=lakh --out=data/lakh
"""

from __future__ import annotations

import json
import logging
import os

from absl import app, flags
from absl import logging as absl_logging

from yoshimidi_jax.data.prepare import PrepareOptions, prepare
from yoshimidi_jax.data.sources.base import SourceFiles

FLAGS = flags.FLAGS
flags.DEFINE_string("source", "music21", "music21 | lakh | a folder of .mid files")
flags.DEFINE_string("out", None, "output folder, e.g. data/m21", required=True)
flags.DEFINE_integer("workers", max(1, os.cpu_count() or 1), "processes for parsing and tokenizing")
flags.DEFINE_float("eval_fraction", 0.05, "share of pieces in the eval split (by content hash)")
flags.DEFINE_integer("records_per_shard", 2000, "pieces per array_record shard")
flags.DEFINE_list("collections", None, "music21: corpus collections (default: a set that converts in minutes; 'all': every one)")
flags.DEFINE_string("cache_dir", "cache", "where converted music21 MIDI files and the Lakh download are kept")
flags.DEFINE_float("convert_timeout_s", 60.0, "music21: give up converting one piece after this long")
flags.DEFINE_string("lakh_url", None, "lakh: URL of lmd_full.tar.gz (default: the Lakh MIDI dataset's)")
flags.DEFINE_string("lakh_md5", None, "lakh: expected md5 of the archive (optional)")
flags.DEFINE_bool("progress", True, "show progress bars")
flags.DEFINE_bool("parse_only", False, "stop after listing (music21: converting) the source's MIDI files")


def resolve_source() -> SourceFiles:
    source = FLAGS.source
    if source == "music21":
        from yoshimidi_jax.data.sources.music21_corpus import convert_corpus

        return convert_corpus(
            os.path.join(FLAGS.cache_dir, "music21"),
            collections=FLAGS.collections,
            workers=FLAGS.workers,
            timeout_s=FLAGS.convert_timeout_s,
            progress=FLAGS.progress,
        )
    if source == "lakh":
        from yoshimidi_jax.data.sources import lakh

        kwargs = {"url": FLAGS.lakh_url} if FLAGS.lakh_url else {}
        return lakh.lakh_source(
            os.path.join(FLAGS.cache_dir, "lakh"), expected_md5=FLAGS.lakh_md5, progress=FLAGS.progress, **kwargs
        )
    if os.path.isdir(source):
        from yoshimidi_jax.data.sources.folder import list_midi_files

        return list_midi_files(source)
    raise app.UsageError(f"--source={source!r}: not 'music21', 'lakh', or an existing folder")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # our INFO lines; orbax/absl only from WARNING (they log every file they touch)
    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("yoshimidi_jax").setLevel(logging.INFO)
    source = resolve_source()
    if FLAGS.parse_only:
        print(json.dumps({"files": len(source.paths), "source_failed": source.failures_by_reason}, indent=1))
        return
    options = PrepareOptions(
        eval_fraction=FLAGS.eval_fraction,
        records_per_shard=FLAGS.records_per_shard,
        workers=FLAGS.workers,
        progress=FLAGS.progress,
    )
    manifest = prepare(source, FLAGS.out, options, source_name=FLAGS.source)
    summary = {k: v for k, v in manifest.items() if k not in ("rejected", "source_failed_list")}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    app.run(main)
