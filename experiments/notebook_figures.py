"""Copies each ablation notebook's plots out of its committed outputs into
docs/ablations/<notebook>[-<n>].png, the figures docs/ablations.md shows.

    python -m experiments.notebook_figures [--notebooks=experiments/notebooks] [--out=docs/ablations]
"""

from __future__ import annotations

import base64
import glob
import os

import nbformat
from absl import app, flags

flags.DEFINE_string("notebooks", "experiments/notebooks", "folder of the executed .ipynb files")
flags.DEFINE_string("out", "docs/ablations", "where the .png files go")


def notebook_pngs(path: str) -> list[bytes]:
    """Every image/png output of a notebook, in cell order."""
    nb = nbformat.read(path, as_version=4)
    return [base64.b64decode(out["data"]["image/png"])
            for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]


def export(notebooks: str, out: str) -> tuple[list[str], list[str]]:
    """(the .png files written, the notebooks without a plot: not executed yet)."""
    os.makedirs(out, exist_ok=True)
    written, unplotted = [], []
    for path in sorted(glob.glob(os.path.join(notebooks, "*.ipynb"))):
        name = os.path.splitext(os.path.basename(path))[0]
        pngs = notebook_pngs(path)
        if not pngs:
            unplotted.append(path)
        for i, png in enumerate(pngs):
            target = os.path.join(out, f"{name}.png" if i == 0 else f"{name}-{i + 1}.png")
            with open(target, "wb") as f:
                f.write(png)
            written.append(target)
    return written, unplotted


def main(argv):
    del argv
    written, unplotted = export(flags.FLAGS.notebooks, flags.FLAGS.out)
    for path in written:
        print(path)
    if unplotted:
        raise SystemExit(f"no plot in the outputs of {', '.join(unplotted)}: execute them first (papermill)")


if __name__ == "__main__":
    app.run(main)
