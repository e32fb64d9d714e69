"""Exporting a trained model for the page's local engine: the single decode
step with its KV cache as an ONNX graph (jax2onnx), checked with onnxruntime,
and a manifest of what the page needs beside it (experiments/export.py).

Needs requirements-export.txt (scripts/setup_env.sh installs it); the rest
of the library never imports this package."""

from yoshimidi_jax.export.step import (
    MANIFEST_FILE, MAX_WEIGHT_BYTES, MODEL_FILE, ExportError, OnnxStep, check_exportable, export_run,
    export_step, manifest_for, step_inputs, weight_bytes, write_site,
)

__all__ = [
    "MANIFEST_FILE", "MAX_WEIGHT_BYTES", "MODEL_FILE", "ExportError", "OnnxStep", "check_exportable", "export_run",
    "export_step", "manifest_for", "step_inputs", "weight_bytes", "write_site",
]
