"""experiments.export: the decode step in onnxruntime against Transformer.decode
over a real controlled piece, the manifest, and the refusals (nothing left in --out).

    .venv/bin/python -m pytest tests/export -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import onnxruntime as ort
import pytest

from configs.common import base_config
from tests.conftest import REPO
from tests.model.helpers import model_and_params, save_run, small_config
from yoshimidi_jax.export import MANIFEST_FILE, MODEL_FILE, ExportError, export_run, weight_bytes, write_site
from yoshimidi_jax.export.step import TOKENS_PER_CALL
from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.model import init_cache
from yoshimidi_jax.sample.tracker import advance, init_track
from yoshimidi_jax.tokens import PAD, TIME, Vocab, encode
from yoshimidi_jax.tokens import controls as ctl

STEPS = 1024  # tokens of a real piece fed to both: one at a time to JAX, 1..K a call to onnxruntime
K = TOKENS_PER_CALL
CACHE = STEPS  # the graph returns each call's rows, the caller writes them: the cache holds CACHE tokens
STEP = 7  # the checkpoint's step
STYLE = 1  # classical (the piece is Mozart's)
VOCAB = Vocab()


def _save_run(workdir, cfg, params=None, step=STEP) -> None:
    save_run(workdir, cfg, params, step)


def _export_cli(workdir, out, *flags) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "experiments.export", f"--workdir={workdir}", f"--out={out}", *flags]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def _leftovers(out) -> list[str]:
    """Anything the exporter left beside --out (temporary folders)."""
    parent = os.path.dirname(os.path.abspath(out))
    return [n for n in os.listdir(parent) if n.startswith(f".{os.path.basename(out)}.")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A seeded small model saved as a trained run (config.json + an orbax
    checkpoint). Its weights are spread out (and the control and note-age
    biases, zero at init, given values) so the logits differ by O(1) between
    ids and every input of the step counts."""
    cfg = small_config(max_len=128)
    model, params = model_and_params(cfg, seed=3)
    rng = np.random.default_rng(3)
    params = jax.tree.map(lambda x: np.asarray(x + rng.normal(0, 0.05, x.shape), np.float32), params)
    for name in ("interval_bias", "velocity_bias", "chord_bias", "note_off_age_bias"):
        params[name] = rng.normal(0, 0.3, params[name].shape).astype(np.float32)
    workdir = str(tmp_path_factory.mktemp("export") / "run")
    _save_run(workdir, cfg, params)
    return workdir, model, jax.tree.map(jnp.asarray, params)


@pytest.fixture(scope="module")
def exported(run):
    """The run exported by the command line, with a cache that holds all STEPS."""
    workdir, _, _ = run
    out = os.path.join(os.path.dirname(workdir), "site")
    res = _export_cli(workdir, out, f"--cache_len={CACHE}", "--check_steps=16", "--nopage")  # the model alone
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    with open(os.path.join(out, MANIFEST_FILE)) as f:
        return out, json.load(f), summary


@pytest.fixture(scope="module")
def piece(few_midi_files):
    """STEPS tokens of a real piece (a Mozart quartet movement) with its presses' CONTROLs."""
    seq = encode(read_midi(few_midi_files[3]).events)
    ids, times = ctl.insert_controls(seq.ids, seq.times, ctl.annotate(seq.ids, seq.times))
    assert len(ids) >= STEPS
    return ids[:STEPS].astype(np.int32), times[:STEPS].astype(np.float32)


def test_onnxruntime_step_matches_jax_decode_over_a_real_piece(run, exported, piece):
    _, model, params = run
    out, manifest, _ = exported
    ids, times = piece
    assert VOCAB.is_control(ids).sum() > 100 and (ids == TIME).sum() > 100 and VOCAB.is_note_off(ids).sum() > 100
    session = ort.InferenceSession(os.path.join(out, MODEL_FILE), providers=["CPUExecutionProvider"])
    names = [i["name"] for i in manifest["inputs"]]
    assert [i.name for i in session.get_inputs()] == names and manifest["tokens_per_call"] == K
    decode = jax.jit(lambda tok, t, cache, index, start: model.apply(
        {"params": params}, tok, t, cache, index, start, jnp.full((1,), STYLE, jnp.int32), method=model.decode))
    step_track = jax.jit(advance)
    cache = init_cache(model.num_layers, 1, STEPS, model.num_heads, model.d_model // model.num_heads)
    track = init_track(1)
    wants, want_times, starts, chords = [], [], [], 0
    for i, (tok, t) in enumerate(zip(ids.tolist(), times.tolist())):
        start = track.position_start  # where the tokens before this one stand, as the page's Track keeps it
        want, want_time, cache = decode(jnp.asarray([[tok]], jnp.int32), jnp.asarray([[t]], jnp.float32), cache,
                                        jnp.int32(i), start)
        wants.append(np.asarray(want)[0, 0])
        want_times.append(np.asarray(want_time)[0, 0])
        starts.append(start)
        chords += int(np.asarray(start.press_len)[0] >= 2)
        track = step_track(track, jnp.asarray([tok], jnp.int32), jnp.asarray([t], jnp.float32))
    # onnxruntime: calls of 1, 2, .. K tokens in turn from where the call's first token stands, PAD after them
    ort_cache = [np.zeros((1, model.num_heads, CACHE, model.d_model // model.num_heads), np.float32)
                 for _ in range(2 * model.num_layers)]
    gots, got_times, i, n = [], [], 0, 0
    while i < STEPS:
        n = n % K + 1
        m = min(n, STEPS - i)
        tok, t = np.full((1, K), PAD, np.int32), np.zeros((1, K), np.float32)
        tok[0, :m], t[0, :m] = ids[i: i + m], times[i: i + m]
        feeds = [tok, t, np.asarray(i, np.int32), *(np.asarray(x) for x in starts[i]), np.asarray([STYLE], np.int32),
                 *ort_cache]
        got, got_time, *rows = session.run(None, dict(zip(names, feeds)))
        assert all(r.shape == (1, model.num_heads, K, model.d_model // model.num_heads) for r in rows)
        for kv, new in zip(ort_cache, rows):  # the m real tokens' keys/values, written where they stand
            kv[:, :, i: i + m] = new[:, :, :m]
        gots.extend(got[0, :m])
        got_times.extend(got_time[0, :m])
        i += m
    got, got_time, want, want_time = (np.stack(x) for x in (gots, got_times, wants, want_times))
    diffs, time_diffs = np.abs(got - want).max(-1), np.abs(got_time - want_time).max(-1)
    same_argmax = got.argmax(-1) == want.argmax(-1)
    print(f"{len(ids)} steps: max |logit diff| {diffs.max():.2e}, max |time logit diff| {time_diffs.max():.2e}")
    assert diffs.max() < 1e-4, (diffs.max(), int(diffs.argmax()))
    assert time_diffs.max() < 1e-4, (time_diffs.max(), int(time_diffs.argmax()))
    assert all(same_argmax), [i for i, s in enumerate(same_argmax) if not s]
    assert chords > 20  # the piece played chords: the press context was exercised
    # the caches the two hold after the piece agree too: the rows the graph returned are JAX's cache
    for got_kv, want_kv in zip(ort_cache, [layer[kv] for layer in cache for kv in ("k", "v")]):
        np.testing.assert_allclose(got_kv, np.asarray(want_kv), atol=1e-4)


def test_manifest_describes_the_graph_and_the_tables(run, exported):
    _, model, _ = run
    out, manifest, summary = exported
    assert sorted(os.listdir(out)) == [MANIFEST_FILE, MODEL_FILE] and not _leftovers(out)
    data = open(os.path.join(out, MODEL_FILE), "rb").read()
    assert manifest["model_bytes"] == len(data) == summary["model_bytes"]
    assert len(data) < 1.2 * weight_bytes(model) + 200_000  # the weights, and little else
    assert manifest["run_step"] == STEP and manifest["format_version"] == 3
    assert manifest["check"]["steps"] == 16 and manifest["check"]["argmax_differs"] == 0
    assert manifest["cache"]["shape"] == [1, model.num_heads, CACHE, model.d_model // model.num_heads]
    assert manifest["cache"]["capacity"] == STEPS and manifest["tokens_per_call"] == K
    assert manifest["model_config"]["d_model"] == model.d_model and manifest["compute_dtype"] == "float32"
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [o["name"] for o in manifest["outputs"]]
    assert manifest["outputs"][0]["shape"] == [1, K, VOCAB.size]
    assert manifest["cache"]["inputs"] == [i["name"] for i in manifest["inputs"]][-2 * model.num_layers:]
    v = manifest["vocab"]
    assert v["size"] == VOCAB.size and v["version"] == VOCAB.version
    assert v["blocks"]["control"] == {"start": VOCAB.control, "size": 240}
    assert len(manifest["time_codec"]["supports_s"]) == model.num_time_supports
    c = manifest["controls"]
    assert c["interval"]["names"][1] == "up-step" and c["interval"]["bounds"][6] == [-5, -3]
    assert int(ctl.control_id(2, 1, 0)) == v["blocks"]["control"]["start"] + (
        2 * c["chord"]["values"] + 1) * c["velocity"]["values"] + 0


def test_refuses_a_time_shift_model(tmp_path):
    cfg = small_config()
    cfg.model.time_shifts = 64
    _save_run(str(tmp_path / "run"), cfg)
    with pytest.raises(ExportError, match=r"TIME_SHIFT model \(model.time_shifts=64\)"):
        export_run(str(tmp_path / "run"), str(tmp_path / "site"))
    assert not os.path.exists(tmp_path / "site") and not _leftovers(tmp_path / "site")


def test_refuses_a_model_too_big_for_the_browser(tmp_path, run):
    big = base_config(num_layers=12, d_model=1024, num_heads=16, max_len=1024)  # ~150M params: eval_shape only
    _save_run(str(tmp_path / "big"), big)
    with pytest.raises(ExportError, match=r"too big for the browser: \d+\.\d MB .* over the 50 MB limit"):
        export_run(str(tmp_path / "big"), str(tmp_path / "site"))
    # and a trained run over a lower limit, refused before its weights are read
    with pytest.raises(ExportError, match="over the 0.1 MB limit"):
        export_run(run[0], str(tmp_path / "site"), max_weight_bytes=100_000)
    assert not os.path.exists(tmp_path / "site") and not _leftovers(tmp_path / "site")


def test_refuses_a_run_without_a_checkpoint_or_a_run(tmp_path):
    _save_run(str(tmp_path / "untrained"), small_config())
    out = tmp_path / "site"
    res = _export_cli(tmp_path / "untrained", out)
    assert res.returncode != 0 and "export refused: no checkpoint in" in res.stderr, res.stderr[-2000:]
    with pytest.raises(ExportError, match="no run at .*: the folder does not exist"):
        export_run(str(tmp_path / "nowhere"), str(out))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ExportError, match="it has no config.json"):
        export_run(str(tmp_path / "empty"), str(out))
    assert not os.path.exists(out) and not _leftovers(out)


def test_a_refusal_leaves_a_previous_export_and_other_folders_untouched(tmp_path, run):
    out = tmp_path / "site"
    write_site(str(out), {MODEL_FILE: b"old model", MANIFEST_FILE: b"{}"})
    cfg = small_config()
    cfg.model.time_shifts = 8
    _save_run(str(tmp_path / "shifts"), cfg)
    with pytest.raises(ExportError):
        export_run(str(tmp_path / "shifts"), str(out))
    assert (out / MODEL_FILE).read_bytes() == b"old model" and sorted(os.listdir(out)) == [MANIFEST_FILE, MODEL_FILE]
    # a folder of other files is never replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="holds other files"):
        write_site(str(other), {MODEL_FILE: b"x", MANIFEST_FILE: b"{}"})
    assert os.listdir(other) == ["notes.txt"] and not _leftovers(other) and not _leftovers(out)


def test_write_site_replaces_a_previous_export_whole(tmp_path):
    out = tmp_path / "site"
    write_site(str(out), {MODEL_FILE: b"one", MANIFEST_FILE: b"{}", "extra.bin": b"stale"})
    write_site(str(out), {MODEL_FILE: b"two", MANIFEST_FILE: b"{}"})
    assert sorted(os.listdir(out)) == [MANIFEST_FILE, MODEL_FILE] and (out / MODEL_FILE).read_bytes() == b"two"
    assert not _leftovers(out)
