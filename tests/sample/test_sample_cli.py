import json
import os
import subprocess
import sys
import wave

import mido

from tests.conftest import REPO
from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.tokens.styles import STYLES


def test_sample_cli_writes_mid_png_wav(tmp_path, few_midi_files):
    out = tmp_path / "o" / "out.mid"
    cmd = [
        sys.executable, "-m", "experiments.sample", "--config=configs/tiny.py", f"--out={out}",
        "--num_events=48", "--seed=3", "--temperature=0.9", "--top_p=0.95",
        f"--prompt={few_midi_files[0]}", "--prompt_tokens=64", "--controls=1/*/2,*/0/*", "--style=chorale",
    ]
    cache = tmp_path / "jax_cache"
    env = dict(os.environ, YOSHIMIDI_JAX_CACHE=str(cache))
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    # jax's persistent compilation cache: the run's programs are on disk, and a
    # second run of the same command loads the sampler instead of compiling it
    # (a few small programs, jax.random's among them, can get another cache key
    # in another process: those are allowed to compile again)
    compiled = sorted(os.listdir(cache))
    assert any(f.startswith("jit_run") for f in compiled), compiled  # the sampler was cached
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    new = sorted(set(os.listdir(cache)) - set(compiled))
    assert not [f for f in new if f.startswith("jit_run")], new
    second = json.loads(again.stdout.strip().splitlines()[-1])
    first = json.loads(res.stdout.strip().splitlines()[-1])
    assert {k: v for k, v in second.items() if k != "sample_seconds"} == {
        k: v for k, v in first.items() if k != "sample_seconds"}
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert "random-init" in res.stdout and "params" in res.stdout
    for ext in ("mid", "png", "wav"):
        path = tmp_path / "o" / f"out.{ext}"
        assert path.exists() and path.stat().st_size > 0, ext
    mido.MidiFile(str(out))
    assert len(read_midi(str(out)).events) > 0
    with wave.open(str(tmp_path / "o" / "out.wav")) as w:
        assert w.getnframes() > 0 and w.getsampwidth() == 2
    assert summary["notes"] > 0
    assert summary["style"] == "chorale"


def _sample(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "experiments.sample", "--config=configs/tiny.py", f"--out={tmp_path / 'x.mid'}",
           "--wav=false", *flags]
    env = dict(os.environ, YOSHIMIDI_JAX_CACHE=str(tmp_path / "jax_cache"))
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)


def test_sample_cli_style(tmp_path):
    """--style: a bad name (or a negative --style_guidance) is a usage error
    naming the allowed ones (before the model is restored); a good one plays a
    --player_walk session in it; a run trained without styles takes only 'any'."""
    bad = _sample(tmp_path, "--style=jazz")
    assert bad.returncode != 0
    assert "--style" in bad.stderr and all(name in bad.stderr for name in (*STYLES, "any")), bad.stderr[-2000:]
    assert "params" not in bad.stdout  # refused before restoring a model
    negative = _sample(tmp_path, "--style=fiddle", "--style_guidance=-1")
    assert negative.returncode != 0 and "--style_guidance=-1.0: a finite weight >= 0" in negative.stderr, \
        negative.stderr[-2000:]
    assert "params" not in negative.stdout
    good = _sample(tmp_path, "--style=fiddle", "--player_walk=6", "--seed=1")
    assert good.returncode == 0, good.stderr[-3000:]
    report = json.loads(good.stdout.strip().splitlines()[-1])
    assert report["style"] == "fiddle" and report["notes"] > 0 and report["controlled_presses"] == 6
    bare = _sample(tmp_path, "--config.model.num_styles=0", "--style=fiddle", "--num_events=8")
    assert bare.returncode != 0 and "this run was trained without styles" in bare.stderr, bare.stderr[-2000:]
    assert "random-init" in bare.stdout  # refused once the model says it takes no style


def test_sample_cli_default_guidance_is_the_styles_own(tmp_path):
    """Asked for a style and no --style_guidance, a sample leans into it by the
    style's own weight (sample/guidance.py WEIGHTS): classical's is 1, one row
    per sample; at 2 each row runs twice and the music differs."""
    def sampled(*flags: str) -> bytes:
        res = _sample(tmp_path, "--num_events=24", "--seed=3", "--style=classical", *flags)
        assert res.returncode == 0, res.stderr[-2000:]
        return (tmp_path / "x.mid").read_bytes()

    default = sampled()
    assert default == sampled("--style_guidance=1")
    assert default != sampled("--style_guidance=2")
