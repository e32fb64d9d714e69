import json
import subprocess
import sys
import wave

import mido

from tests.conftest import REPO
from yoshimidi_jax.midi import read_midi


def test_sample_cli_writes_mid_png_wav(tmp_path, few_midi_files):
    out = tmp_path / "o" / "out.mid"
    cmd = [
        sys.executable, "-m", "experiments.sample", "--config=configs/tiny.py", f"--out={out}",
        "--num_events=48", "--seed=3", "--temperature=0.9", "--top_p=0.95",
        f"--prompt={few_midi_files[0]}", "--prompt_tokens=64", "--controls=1/*/2,*/0/*",
    ]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
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
