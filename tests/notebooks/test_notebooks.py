"""The ablation notebooks (experiments/notebooks/), each run end to end at a
tiny scale: the jupytext .py (the source) made into a notebook, executed by
papermill in a fresh kernel with its parameters cell overridden; any cell
error fails the test. The committed .ipynb must be the same code as its .py,
with its outputs (the full-scale plots) in it."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import REPO

NOTEBOOK_DIR = os.path.join(REPO, "experiments", "notebooks")
SMALL_MODEL = {"num_layers": 1, "d_model": 32, "num_heads": 2}


def tiny_parameters(name: str, data: str, work: str) -> dict:
    common = {"DATA": data, "SEQ_LEN": 64, "SEED": 0}
    return {
        "control_dropout": {**common, "WORKDIR": work, "STEPS": 4, "SETTINGS": [[0.0, 0.0], [0.5, 0.5]],
                            "PRESSES": 20, "EVAL_BATCHES": 2, "MODEL": SMALL_MODEL},
        "time_representation": {**common, "WORKDIR": work, "STEPS": 4, "SAMPLE_ROWS": 4,
                                "VARIANTS": {"two-hot K=16": [0, 16], "grid 10 ms x 100": [100, 64]},
                                "MODEL": SMALL_MODEL},
        "model_size": {**common, "WORKDIR": work, "SIZES": {"1x32": [1, 32, 2], "2x32": [2, 32, 2]},
                       "LEARNING_RATES": [1e-3, 3e-3], "BUDGET_TINY_STEPS": 0.5, "CURVE_POINTS": 2,
                       "EVAL_BATCHES": 1, "BATCH": 4},
        "sampling": {**common, "RUN": os.path.join(work, "run"), "TRAIN_STEPS": 4, "TEMPERATURES": [1.0],
                     "TOP_PS": [0.95, 1.0], "ROWS": 4, "PRESSES": 20, "MODEL": SMALL_MODEL},
    }[name]


NAMES = ("control_dropout", "time_representation", "model_size", "sampling")


def _outputs_of(nb) -> list[dict]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_at_tiny_scale(name, few_prepared, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    papermill = pytest.importorskip("papermill")
    import nbformat

    source = jupytext.read(os.path.join(NOTEBOOK_DIR, f"{name}.py"))
    assert any("parameters" in cell.metadata.get("tags", []) for cell in source.cells), "no parameters cell"
    work = str(tmp_path / "work")
    params = tiny_parameters(name, few_prepared, work)
    nbformat.write(source, str(tmp_path / "in.ipynb"))
    _share_compiled_programs(monkeypatch)
    papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), parameters=params,
                               kernel_name="python3", cwd=REPO, progress_bar=False)
    done = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    outputs = _outputs_of(done)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no plot"
    assert any("text/markdown" in o.get("data", {}) for o in outputs), "no table"
    results_path = os.path.join(params.get("WORKDIR") or params["RUN"],
                                "sampling_grid.json" if name == "sampling" else "results.json")
    with open(results_path) as f:
        results = json.load(f)
    _check_results(name, results, params)


def _share_compiled_programs(monkeypatch) -> None:
    """The kernel (it inherits this environment) uses the persistent compilation
    cache of the tests and the entry points (tests/conftest.py): the four
    notebooks train and sample the same tiny model, and each of their runs
    compiles the same programs again."""
    from yoshimidi_jax.compile_cache import default_dir

    folder = default_dir()
    if folder:
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", os.path.abspath(os.path.expanduser(folder)))
        monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def _check_results(name: str, results, params: dict) -> None:
    """Numbers that are what they say: the notebook ran every setting and measured it."""
    if name == "control_dropout":
        assert [[r["p_sequence"], r["p_press"]] for r in results] == params["SETTINGS"]
        for r in results:
            assert r["step"] == params["STEPS"]
            assert 0 < r["loss_conditioned"] < 10 and 0 < r["loss_unconditioned"] < 10
            assert r["presses"] > 0 and 0 <= r["free"]["all"] <= 1 and 0 <= r["agreement"] <= 1
    elif name == "time_representation":
        assert set(results) == set(params["VARIANTS"])
        grid, two_hot = results["grid 10 ms x 100"], results["two-hot K=16"]
        # the grid writes each gap as one or more shift tokens: more tokens per note,
        # and its time is in its tokens (no time-head term)
        assert grid["tokens_per_note"] > two_hot["tokens_per_note"] > 1
        assert grid["time_nats_per_note"] == 0 and two_hot["time_nats_per_note"] > 0
        assert grid["notes"] == two_hot["notes"] > 0
    elif name == "model_size":
        assert len(results) == len(params["SIZES"]) * len(params["LEARNING_RATES"])
        by_size = {r["size"]: r for r in results}
        small, large = by_size["1x32"], by_size["2x32"]
        # the same compute: the larger model takes fewer steps
        assert large["flops_per_token"] > small["flops_per_token"] and large["steps"] < small["steps"]
        for r in results:
            assert len(r["eval_loss"]) >= 1 and all(0 < x < 10 for x in r["eval_loss"])
    else:
        assert len(results) == len(params["TEMPERATURES"]) * len(params["TOP_PS"])
        for r in results:
            assert set(r["ratio"]) >= {"onsets_per_press", "time_on_grid"} and r["presses"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_its_py_with_outputs(name):
    """The .ipynb beside each .py holds the same cells (jupytext pairing) and
    the outputs of its full-scale run: plots and the results table."""
    jupytext = pytest.importorskip("jupytext")

    py = jupytext.read(os.path.join(NOTEBOOK_DIR, f"{name}.py"))
    ipynb = jupytext.read(os.path.join(NOTEBOOK_DIR, f"{name}.ipynb"))
    source = lambda nb: [(c.cell_type, c.source.strip()) for c in nb.cells]  # noqa: E731
    assert source(py) == source(ipynb), f"{name}.ipynb and {name}.py differ: run `jupytext --sync` on them"
    outputs = _outputs_of(ipynb)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name}.ipynb has no plot committed"
    assert any("text/markdown" in o.get("data", {}) for o in outputs), f"{name}.ipynb has no table committed"


def test_ablation_figures_are_the_notebooks_plots(tmp_path):
    """docs/ablations/*.png (the figures of docs/ablations.md) are exactly the
    plots in the committed notebooks' outputs, and docs/ablations.md shows
    each (linked relative to itself: ablations/<name>.png)."""
    from experiments.notebook_figures import export

    written, unplotted = export(NOTEBOOK_DIR, str(tmp_path))
    assert not unplotted and len(written) >= len(NAMES)
    with open(os.path.join(REPO, "docs", "ablations.md")) as f:
        page = f.read()
    for path in written:
        name = os.path.basename(path)
        committed = os.path.join(REPO, "docs", "ablations", name)
        assert os.path.exists(committed), f"docs/ablations/{name} missing: python -m experiments.notebook_figures"
        with open(path, "rb") as a, open(committed, "rb") as b:
            fresh = a.read()
            assert fresh[:8] == b"\x89PNG\r\n\x1a\n"
            assert fresh == b.read(), f"docs/ablations/{name} is stale: python -m experiments.notebook_figures"
        assert f"(ablations/{name})" in page, f"docs/ablations.md does not show ablations/{name}"
