import wave

import numpy as np

from yoshimidi_jax.midi import NoteEvents
from yoshimidi_jax.midi.render import SAMPLE_RATE, piano_roll_png, render_wav, synth


def _events():
    return NoteEvents.from_arrays(onset_s=[0.0, 0.5, 0.5, 1.0], duration_s=[0.5, 0.25, 1.0, 0.01],
                                  pitch=[60, 64, 67, 72], velocity=[100, 80, 60, 127])


def test_synth_and_wav(tmp_path):
    audio = synth(_events())
    assert audio.dtype == np.int16 and abs(audio.shape[0] / SAMPLE_RATE - 2.0) < 0.05
    assert np.abs(audio).max() > 10000
    render_wav(_events(), str(tmp_path / "x.mid"), str(tmp_path / "x.wav"), prefer_fluidsynth=False)
    with wave.open(str(tmp_path / "x.wav")) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnframes() == audio.shape[0]


def test_png_including_empty(tmp_path):
    piano_roll_png(_events(), str(tmp_path / "a.png"))
    empty = NoteEvents.from_arrays(onset_s=[], duration_s=[], pitch=[], velocity=[])
    piano_roll_png(empty, str(tmp_path / "b.png"))
    render_wav(empty, str(tmp_path / "b.mid"), str(tmp_path / "b.wav"), prefer_fluidsynth=False)
    assert (tmp_path / "a.png").stat().st_size > 1000 and (tmp_path / "b.png").exists()


def test_fluidsynth_renders_with_a_real_soundfont(tmp_path):
    """The real renderer: Debian's fluidsynth + pretty_midi's GM soundfont.
    scripts/setup_env.sh installs both; CI must have them."""
    import os
    import shutil

    import pytest

    from yoshimidi_jax.midi import write_midi
    from yoshimidi_jax.midi.render import find_soundfont

    if not (shutil.which("fluidsynth") and find_soundfont()):
        if os.environ.get("CI"):
            pytest.fail("fluidsynth or a soundfont is missing on CI: scripts/setup_env.sh should install them")
        pytest.skip("fluidsynth or a soundfont is not installed")
    mid, wav = str(tmp_path / "x.mid"), str(tmp_path / "x.wav")
    write_midi(_events(), mid)
    assert render_wav(_events(), mid, wav).startswith("fluidsynth:")
    with wave.open(wav) as w:
        rate, frames, channels = w.getframerate(), w.getnframes(), w.getnchannels()
        audio = np.frombuffer(w.readframes(frames), np.int16).reshape(-1, channels)[:, 0].astype(float)
    assert frames / rate > 1.4  # the last note ends at 1.5 s
    first = audio[int(0.05 * rate) : int(0.45 * rate)]  # C4 alone
    assert np.abs(first).max() > 1000
    spectrum = np.abs(np.fft.rfft(first * np.hanning(first.shape[0])))
    freqs = np.fft.rfftfreq(first.shape[0], 1 / rate)
    strongest = freqs[np.argmax(spectrum)]
    # C4 = 261.6 Hz: the strongest partial is it or one of its harmonics
    assert min(abs(strongest / 261.63 - k) for k in (1, 2, 3, 4)) < 0.05, strongest
