"""The exported static site (experiments.export --page) in a real headless
Chromium with only a static file server (http.server, started here): the page
plays through its local engine (static/engine/session.js: the model in the
page, no websocket server), chords and strict presses obey as the control
asks, a recording downloads and parses, the cache refills when full, and,
its service worker having cached the site, it keeps playing with the file
server stopped, a reload included.

    .venv/bin/python -m pytest tests/export/test_static_site.py -q -s
"""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time

import jax
import mido
import numpy as np
import pytest

from tests.app.test_browser import Page, browser  # noqa: F401  (the module's Chromium; skips without playwright)
from tests.conftest import REPO
from tests.model.helpers import model_and_params, save_run, small_config
from yoshimidi_jax.app.protocol import MAX_KEYS
from yoshimidi_jax.export import MANIFEST_FILE, MODEL_FILE
from yoshimidi_jax.export.site import ENGINE_FILE, SERVICE_WORKER_FILE
from yoshimidi_jax.play.batch import JOB_TOKENS
from yoshimidi_jax.play.press import MAX_NOTES

CACHE = 48  # a small cache: the session below fills it several times (refills)
TIMES = "window.yoshimidiSound.times"
BOUNDS = {0: (0, 0), 1: (1, 2), 2: (3, 5), 3: (6, 11), 4: (12, 127),
          5: (-2, -1), 6: (-5, -3), 7: (-11, -6), 8: (-127, -12)}  # tokens/presses.py interval_bounds


def interval_class(d: int) -> int:
    return next(c for c, (lo, hi) in BOUNDS.items() if lo <= d <= hi)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A seeded small model saved as a run and exported with the page by the command line."""
    cfg = small_config(max_len=CACHE)
    _, params = model_and_params(cfg, seed=3)
    rng = np.random.default_rng(3)
    params = jax.tree.map(lambda x: np.asarray(x + rng.normal(0, 0.05, x.shape), np.float32), params)
    root = tmp_path_factory.mktemp("static_site")
    workdir = str(root / "run")
    save_run(workdir, cfg, params, step=5)
    out = str(root / "site")
    res = subprocess.run([sys.executable, "-m", "experiments.export", f"--workdir={workdir}", f"--out={out}",
                          "--page", "--check_steps=8"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                      ".json": "application/json"}

    def log_message(self, *args) -> None:
        pass


class FileServer:
    """python's http.server on the site, in a thread; stop() ends it (the network is gone)."""

    def __init__(self, directory: str):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=directory))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.shutdown()
            self.server.server_close()
            self.running = False


@pytest.fixture(scope="module")
def served(site):
    server = FileServer(site)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser, served):  # noqa: F811
    p = Page(browser, served.url + "/")
    yield p
    p.close()


def test_the_export_is_a_whole_site(site):
    names = {os.path.relpath(os.path.join(r, n), site).replace(os.sep, "/") for r, _, ns in os.walk(site) for n in ns}
    for name in ("index.html", ENGINE_FILE, SERVICE_WORKER_FILE, MODEL_FILE, MANIFEST_FILE, "static/app.js",
                 "static/engine/session.js", "static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm",
                 "static/vendor/soundfont/FluidR3Mono_GM_yoshimidi.sf3"):
        assert name in names, name
    assert json.load(open(os.path.join(site, ENGINE_FILE)))["engine"] == "local"
    # the page's engine keeps the server's limits, read from the manifest (the library's constants)
    assert json.load(open(os.path.join(site, MANIFEST_FILE)))["play"] == {
        "max_keys": MAX_KEYS, "max_notes": MAX_NOTES, "job_tokens": JOB_TOKENS, "pitch_lo": 21, "pitch_hi": 108}
    index = open(os.path.join(site, "index.html")).read()
    assert '"/static/' not in index and '"static/app.js"' in index  # relative: any folder of any host
    sw = open(os.path.join(site, SERVICE_WORKER_FILE)).read()
    for name in names - {SERVICE_WORKER_FILE}:
        assert json.dumps(name) in sw, name  # the service worker caches every file
    assert not [n for n in os.listdir(os.path.dirname(site)) if n.startswith(".site.")]  # no temporary left


def play(p: Page, keys: str) -> list[dict]:
    """Real key-downs of `keys` at once, a note each; the keys go up; -> the notes, low key first."""
    n_times = p.page.evaluate(f"{TIMES}.count")
    notes = p.play(keys, hold_s=0.03)
    p.wait(f"n => {TIMES}.count >= n", 10, arg=n_times + len(keys))
    time.sleep(0.03)  # the releases' TIME NOTE_OFF are fed before the next press
    return notes


def test_the_page_plays_with_only_a_static_file_server(page):
    y = page.y()
    assert y["engine"] == "local" and page.page.text_content("#engine") == "local model"
    assert y["hello"]["engine"] == "local" and y["connection"] == "open"
    assert y["hello"]["limits"] == {"max_keys": MAX_KEYS, "max_notes_per_press": MAX_NOTES}
    before = page.y()
    notes = play(page, "a")
    assert len(notes) == 1 and notes[0]["key"] == 60 and 21 <= notes[0]["pitch"] <= 108
    page.wait("n => window.yoshimidi.drawnNotes >= n", 10, arg=before["drawnNotes"] + 1)  # on the roll
    times = page.page.evaluate(f"{TIMES}.since(0)")
    assert times and times[-1]["pitch"] == notes[0]["pitch"] and times[-1]["down"] is not None
    assert page.y("errors") == [] and page.page_errors() == []


def test_a_press_is_answered_before_its_last_note_is_stepped(page):
    """The local engine answers a press as soon as its last NOTE_ON is
    sampled and steps that token after the answer is out (it only shapes what
    comes next): each press's steps before the answer are its forced tokens
    and all but its last note; the first step after it is the last note."""
    page.page.evaluate("""() => {
      const s = window.yoshimidiLocal.current, m = s.model, run = m.run, handle = s.handle;
      window.stepLog = [];
      m.run = function (tokens, seconds) {  // the cache in use only (a refill ahead steps a fork)
        for (const tok of tokens) {
          const p = tok - s.vocab.noteOn;
          if (this === m) window.stepLog.push(["step", p >= 0 && p < s.vocab.numPitches ? p : "other"]);
        }
        return run.call(this, tokens, seconds);
      };
      s.handle = async function (msg) {
        const replies = await handle.call(this, msg);
        window.stepLog.push([msg.type, ...replies.flatMap((r) => (r.notes || []).map((n) => n.pitch))]);
        return replies;
      };
    }""")
    try:
        played = [play(page, k)[0]["pitch"] for k in "asdfgh"]
        log = page.page.evaluate("window.stepLog")
    finally:
        page.page.evaluate("() => { const s = window.yoshimidiLocal.current; delete s.model.run; delete s.handle; }")
    answers = [i for i, e in enumerate(log) if e[0] == "press"]
    assert [log[i][1] for i in answers] == played, log
    for i in answers:
        assert log[i + 1] == ["step", log[i][1]], log[i - 4: i + 3]  # its NOTE_ON, stepped after the answer
        press_steps = [e[1] for e in log[:i][::-1][:3] if e[0] == "step"]
        assert log[i][1] not in press_steps, log[i - 4: i + 3]  # and not before it
    assert page.y("errors") == [] and page.page_errors() == []


def test_a_chord_and_strict_presses_obey(page):
    page.set_range("chord-window", 40)
    chords = typed = 0
    for _ in range(12):  # chords typed key by key: a note per key, distinct (none struck while sounding)
        before = page.y()
        notes = play(page, "adg")
        pitches = [n["pitch"] for n in notes]
        assert len(notes) == 3 and len(set(pitches)) == 3, notes
        after = page.y()
        # the keys came within the join window and joined the open press (an add plays a new press
        # where the press's top note leaves no room above): one press, its notes low to high, as the
        # data writes chords
        typed += after["addsSent"] - before["addsSent"] == 2  # the three keys came within the window
        if after["addsSent"] - before["addsSent"] == 2 and all(n["joined"] for n in notes[1:]):
            assert pitches == sorted(pitches), notes
            chords += 1
        if chords == 3:
            break
    # (the key events' round trips on a loaded machine may miss the 40 ms window in every try)
    assert chords >= 1 or typed == 0, (chords, typed)
    page.page.check("#strict")
    page.wait("window.yoshimidi.settingsAck && window.yoshimidi.settingsAck.strict === true", 10)
    prev_key = prev_pitch = None
    checked = 0
    for key, name in [("a", 60), ("k", 72), ("a", 60), ("d", 64), ("s", 62), ("s", 62), ("g", 67), ("a", 60),
                      ("w", 61), ("h", 69), ("a", 60), ("k", 72), ("d", 64), ("a", 60)] * 2:
        (note,) = play(page, key)
        if prev_key is not None:
            lo, hi = BOUNDS[interval_class(name - prev_key)]
            if any(21 <= prev_pitch + d <= 108 for d in range(lo, hi + 1)):  # the class has a pitch in range
                assert lo <= note["pitch"] - prev_pitch <= hi, (name - prev_key, prev_pitch, note)
                checked += 1
        prev_key, prev_pitch = name, note["pitch"]
    assert checked >= 20
    page.page.uncheck("#strict")
    # presses and releases of about 5 tokens each, 4 for a release: the cache of 48 refilled many times,
    # mostly ahead, between presses (engine/session.js refillAhead), and the presses obeyed throughout
    assert page.y("notesReceived") > 3 * CACHE / 5
    refills = page.page.evaluate("[window.yoshimidiLocal.current.refills, window.yoshimidiLocal.current.refillsAhead]")
    assert refills[1] >= 5 and refills[0] >= refills[1], refills
    assert page.y("errors") == [] and page.page_errors() == []


def test_a_recording_downloads_and_parses(page):
    page.page.click("#record")
    page.wait("document.getElementById('record').dataset.state === 'recording'", 10)
    played = [play(page, k)[0]["pitch"] for k in "asdf"]
    with page.page.expect_download(timeout=30_000) as info:
        page.page.click("#record")
    data = open(info.value.path(), "rb").read()
    midi = mido.MidiFile(file=io.BytesIO(data))
    ons = [m.note for m in mido.merge_tracks(midi.tracks) if m.type == "note_on" and m.velocity > 0]
    assert ons == played, (ons, played)
    assert midi.length > 0


@pytest.mark.parametrize("broken", ["missing", "truncated"])
def test_the_page_names_why_a_broken_site_cannot_play(browser, site, tmp_path, broken):  # noqa: F811
    """A site whose model.onnx is gone or cut short: the page says which file
    and why (the log under the roll), the connection shows as refused, and
    no key is answered."""
    import shutil

    copy = str(tmp_path / "site")
    shutil.copytree(site, copy)
    model = os.path.join(copy, MODEL_FILE)
    size = os.path.getsize(model)
    if broken == "missing":
        os.remove(model)
        why = f"no {MODEL_FILE} at"
    else:
        with open(model, "r+b") as f:
            f.truncate(size // 2)
        why = f"{MODEL_FILE} has {size // 2} bytes, the manifest says {size}"
    server = FileServer(copy)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        page.wait_for_function("window.yoshimidi && window.yoshimidi.connection === 'refused'", timeout=60_000)
        log = page.text_content("#error-list")
        assert "the local model did not load" in log and why in log, log
        assert page.text_content("#engine").strip() == "local model"
        page.keyboard.down("a")
        time.sleep(0.3)
        page.keyboard.up("a")
        assert page.evaluate("window.yoshimidi.notesReceived") == 0
    finally:
        context.close()
        server.stop()


def test_it_keeps_playing_offline(page, served):
    page.page.evaluate("navigator.serviceWorker.ready")
    page.wait("(async () => { const names = await caches.keys(); if (names.length !== 1) return false;"
              " const c = await caches.open(names[0]); return (await c.keys()).length > 20; })()", 60)
    served.stop()  # the network is gone
    notes = play(page, "s")
    assert len(notes) == 1 and 21 <= notes[0]["pitch"] <= 108
    page.page.reload()  # served by the service worker
    page.wait("window.yoshimidi.connection === 'open' && window.yoshimidi.hello !== null", 60)
    assert page.y("engine") == "local"
    before = page.y("drawnNotes")
    notes = play(page, "d")
    assert len(notes) == 1 and 21 <= notes[0]["pitch"] <= 108
    page.wait("n => window.yoshimidi.drawnNotes >= n", 10, arg=before + 1)
    assert page.y("errors") == [] and page.page_errors() == []
