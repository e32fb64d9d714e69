r"""Exports a trained run for the page's local engine (no server): the model's
single decode step with its KV cache as ONNX, and a manifest beside it.

    python -m experiments.export --workdir=runs/NAME --out=site/ [--nopage] [--bench_steps=1000]
    python -m http.server --directory site 8000      # the page plays, no server (--nopage: the model alone)

Writes OUT/model.onnx (the step, from JAX through jax2onnx; float32) and
OUT/manifest.json (the graph's inputs, outputs and cache shape, the
vocabulary's layout and version, the time codec's supports, the control
tables, the run's model config and step). Before writing, onnxruntime runs
the step against Transformer.decode over --check_steps tokens (logits within
1e-4, the same argmax). OUT is replaced whole, by renames: it never holds a
half-written export. It also writes the whole static site (--nopage: not)
(yoshimidi_jax/export/site.py): the page, engine.json (it plays the model in
itself) and sw.js (a service worker: it plays offline after the first load).
Refused, with the reason and nothing written: a
TIME_SHIFT model, weights over --max_weight_mb, a run with no checkpoint, an
OUT that holds other files. --bench_steps=N also times onnxruntime's step
(one CPU thread, p50/p99 over N steps). Prints one JSON line.
Needs requirements-export.txt (scripts/setup_env.sh installs it).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "a trained run's workdir (config.json + checkpoints/)")
flags.DEFINE_string("out", None, "the folder to write (replaced whole; refused if it holds other files)")
flags.DEFINE_integer("cache_len", 0, "KV cache entries of the exported step (0: the model's max_len)")
flags.DEFINE_float("max_weight_mb", 50.0, "refuse a model of more float32 weights than this (MB, 1e6 bytes)")
flags.DEFINE_integer("check_steps", 64, "steps of onnxruntime against JAX before writing (0: none)")
flags.DEFINE_bool("page", True, "also write the page (index.html, static/, engine.json, sw.js): a static site that "
                  "plays the model with no server and offline (python -m http.server --directory OUT)")
flags.DEFINE_integer("tokens_per_call", 4, "tokens one call of the exported graph takes (a press's forced "
                     "tokens go in one call; a call of fewer pads the rest)")
flags.DEFINE_integer("bench_steps", 0, "also time onnxruntime's step over this many steps, one thread (0: no)")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir or not FLAGS.out:
        raise app.UsageError("give --workdir=runs/NAME (a trained run) and --out=DIR")
    from yoshimidi_jax.export import MANIFEST_FILE, MODEL_FILE, ExportError, export_run
    from yoshimidi_jax.export.step import step_latency

    try:
        manifest = export_run(FLAGS.workdir, FLAGS.out, FLAGS.cache_len or None, int(FLAGS.max_weight_mb * 1e6),
                              FLAGS.check_steps, page=FLAGS.page, tokens_per_call=FLAGS.tokens_per_call)
    except ExportError as e:
        raise SystemExit(f"export refused: {e}") from None
    summary = {"out": FLAGS.out, "model_bytes": manifest["model_bytes"], "run_step": manifest["run_step"],
               "cache_len": manifest["cache"]["length"], "tokens_per_call": manifest["tokens_per_call"],
               "check": manifest["check"]}
    if FLAGS.bench_steps:
        from yoshimidi_jax.restore import restore

        model = restore(FLAGS.workdir).model
        with open(os.path.join(FLAGS.out, MODEL_FILE), "rb") as f:
            summary["onnxruntime_cpu"] = step_latency(f.read(), model, manifest["cache"]["length"], FLAGS.bench_steps)
    print(f"wrote {os.path.join(FLAGS.out, MODEL_FILE)} and {MANIFEST_FILE}")
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
