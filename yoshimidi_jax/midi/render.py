"""Rendering note events: a piano-roll .png (matplotlib, Agg) and a .wav
(fluidsynth with a General MIDI soundfont where both are installed: Debian's
fluidsynth, installed by scripts/setup_env.sh, and the TimGM6mb soundfont that
the pretty_midi package ships; else a
small built-in numpy synth: additive harmonics with an ADSR envelope)."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import wave

import numpy as np

from yoshimidi_jax.midi import NoteEvents

SAMPLE_RATE = 22_050
SOUNDFONT_GLOBS = ("/usr/share/sounds/sf2/*.sf2", "/usr/share/soundfonts/*.sf2", "/usr/share/sounds/sf3/*.sf3")


def piano_roll_png(events: NoteEvents, path: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(12, 4), dpi=100)
    if len(events):
        dur = np.maximum(events.duration_s, 0.01)
        rects = [Rectangle((o, p - 0.4), d, 0.8) for o, p, d in zip(events.onset_s, events.pitch, dur)]
        coll = PatchCollection(rects, cmap="viridis", edgecolor="none")
        coll.set_array(np.asarray(events.velocity, float))
        coll.set_clim(1, 127)
        ax.add_collection(coll)
        ax.set_xlim(0, max(float((events.onset_s + dur).max()), 0.1))
        ax.set_ylim(int(events.pitch.min()) - 2, int(events.pitch.max()) + 2)
        fig.colorbar(coll, ax=ax, label="velocity")
    ax.set_xlabel("seconds")
    ax.set_ylabel("pitch")
    ax.set_title(title or f"{len(events)} notes")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def find_soundfont() -> str | None:
    """A General MIDI soundfont: the system's, else the one pretty_midi ships."""
    for pattern in SOUNDFONT_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    spec = importlib.util.find_spec("pretty_midi")
    if spec is not None and spec.origin:
        shipped = os.path.join(os.path.dirname(spec.origin), "TimGM6mb.sf2")
        if os.path.exists(shipped):
            return shipped
    return None


def synth(events: NoteEvents, sample_rate: int = SAMPLE_RATE, tail_s: float = 0.5) -> np.ndarray:
    """Built-in synth: sum of harmonics per note, ADSR envelope -> int16 mono."""
    length = float(events.end_s.max()) + tail_s if len(events) else tail_s
    out = np.zeros(int(length * sample_rate) + 1, np.float32)
    attack, decay, sustain, release = 0.01, 0.1, 0.6, 0.15
    harmonics = np.array([1.0, 0.5, 0.25, 0.12])
    for onset, dur, pitch, vel in zip(events.onset_s, events.duration_s, events.pitch, events.velocity):
        dur = max(float(dur), 0.05)
        n = int((dur + release) * sample_rate)
        t = np.arange(n, dtype=np.float32) / sample_rate
        freq = 440.0 * 2 ** ((int(pitch) - 69) / 12)
        k = np.arange(1, len(harmonics) + 1)
        amp = harmonics * (k * freq < sample_rate / 2)
        wave_ = (amp[:, None] * np.sin(2 * np.pi * freq * k[:, None] * t[None])).sum(0)
        env = np.interp(t, [0, attack, attack + decay, dur, dur + release], [0, 1, sustain, sustain, 0])
        if dur < attack + decay:
            env = np.interp(t, [0, attack, dur, dur + release], [0, 1, sustain, 0])
        start = int(onset * sample_rate)
        seg = (vel / 127.0) * env * wave_
        out[start : start + n] += seg[: out.shape[0] - start]
    peak = float(np.abs(out).max())
    if peak > 0:
        out = out / peak * 0.8
    return (out * 32767).astype(np.int16)


def write_wav(samples: np.ndarray, path: str, sample_rate: int = SAMPLE_RATE) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.ascontiguousarray(samples, np.int16).tobytes())


def render_wav(events: NoteEvents, midi_path: str, wav_path: str, prefer_fluidsynth: bool = True) -> str:
    """Writes wav_path; returns the renderer used ('fluidsynth:<sf2>' or 'numpy')."""
    soundfont = find_soundfont()
    binary = shutil.which("fluidsynth")
    if prefer_fluidsynth and soundfont and binary:
        cmd = [binary, "-ni", "-F", wav_path, "-r", str(SAMPLE_RATE), soundfont, midi_path]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
            if os.path.getsize(wav_path) > 44:
                return f"fluidsynth:{soundfont}"
        except (subprocess.SubprocessError, OSError):
            pass
    write_wav(synth(events), wav_path)
    return "numpy"
