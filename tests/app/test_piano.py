"""The page's soundfont piano in a real headless Chromium: the vendored font
loads into the vendored SF2 synthesizer (spessasynth_lib, an AudioWorklet), a
real key press makes it play the model's note and real audio comes out of the
page's graph, the instrument choice changes the synthesizer's program, the
volume changes the output gain, and with the font missing the page plays its
own synth and says so. Reuses the browser and page helpers of test_browser.py
and the shared server of conftest.py."""

from __future__ import annotations

import os
import time

import pytest

from tests.app.test_browser import Page, browser  # noqa: F401  (browser: a fixture)
from yoshimidi_jax.app import server as app_server

VENDOR = os.path.join(app_server.STATIC_DIR, "vendor")
FONT = os.path.join(VENDOR, "soundfont", "FluidR3Mono_GM_yoshimidi.sf3")
SOUND = "window.yoshimidiSound"


@pytest.fixture
def page(browser, request):  # noqa: F811
    server = request.getfixturevalue("server")
    pages: list[Page] = []

    def open_page(missing_font: bool = False) -> Page:
        p = Page.__new__(Page)
        # As Page(...), but routes are set before the page loads.
        p.context = browser.new_context(viewport={"width": 1400, "height": 900})
        p.page = p.context.new_page()
        p.log = []
        p.page.on("console", lambda m: p.log.append(f"{m.type}: {m.text}"))
        p.page.on("pageerror", lambda e: p.log.append(f"PAGEERROR: {e}"))
        if missing_font:
            p.page.route("**/*.sf3", lambda route: route.fulfill(status=404, body="not found"))
        p.page.goto(server.url + "/")
        p.wait("window.yoshimidi.connection === 'open' && window.yoshimidi.hello !== null", 60)
        p.server = server
        pages.append(p)
        return p

    yield open_page
    for p in pages:
        p.close()


def level(p: Page) -> float:
    return p.page.evaluate(f"{SOUND}.level()")


def loudest(p: Page, seconds: float, until: float | None = None) -> float:
    """The highest output RMS seen over `seconds` (polled in the page); with
    `until`, it stops as soon as the level passed that."""
    return p.page.evaluate(
        """async ([ms, until]) => { let m = 0; const end = performance.now() + ms;
           while (performance.now() < end && !(until !== null && m > until)) {
             m = Math.max(m, window.yoshimidiSound.level());
             await new Promise((r) => setTimeout(r, 15)); } return m; }""", [seconds * 1000, until])


# An AudioWorklet on the page's output computing the same RMS as Sound.level()
# (the last 2048 samples, channels averaged, as an AnalyserNode downmixes) after
# every 128-sample block on the audio thread, keeping the highest: a busy main
# thread polling level() can miss a note's attack, this cannot.
METER = """
class PeakMeter extends AudioWorkletProcessor {
  constructor() {
    super();
    this.squares = new Float64Array(16);
    this.i = 0;
    this.peak = 0;
    this.port.onmessage = (e) => {
      if (e.data === "reset") this.peak = 0;
      else this.port.postMessage(this.peak);
    };
  }
  process(inputs) {
    const chans = inputs[0];
    let q = 0;
    if (chans.length) {
      for (let j = 0; j < chans[0].length; j++) {
        let x = 0;
        for (const c of chans) x += c[j];
        x /= chans.length;
        q += x * x;
      }
    }
    this.squares[this.i] = q;
    this.i = (this.i + 1) % this.squares.length;
    let total = 0;
    for (const v of this.squares) total += v;
    this.peak = Math.max(this.peak, Math.sqrt(total / 2048));
    return true;
  }
}
registerProcessor("test-peak-meter", PeakMeter);
"""


def start_meter(p: Page) -> None:
    """(Re)starts the peak meter on the page's output at 0."""
    p.page.evaluate("""async (code) => {
        const s = window.yoshimidiSound;
        s.ensure();
        if (!s.testMeter) {
          const url = URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
          await s.ctx.audioWorklet.addModule(url);
          s.testMeter = new AudioWorkletNode(s.ctx, "test-peak-meter");
          s.master.connect(s.testMeter);
          s.testMeter.connect(s.ctx.destination);  // (silent: rendered only when pulled by the output)
        }
        s.testMeter.port.postMessage("reset"); }""", METER)


def metered_peak(p: Page, seconds: float, until: float) -> float:
    """The highest RMS the meter saw since start_meter; waits up to `seconds`
    for it to pass `until`."""
    return p.page.evaluate(
        """async ([ms, until]) => { const m = window.yoshimidiSound.testMeter; const end = performance.now() + ms;
           const read = () => new Promise((r) => { m.port.onmessage = (e) => r(e.data); m.port.postMessage("read"); });
           let peak = await read();
           while (performance.now() < end && !(peak > until)) {
             await new Promise((r) => setTimeout(r, 15)); peak = await read(); }
           return peak; }""", [seconds * 1000, until])


# A note is heard when the output's RMS passes this; before a key, it is 0. On a
# loaded machine (a fresh-clone CI run) the audio thread may render a note's
# attack late: HEARD_WITHIN_S is how long a held key's note may take to be heard.
HEARD = 3e-3
HEARD_WITHIN_S = 3.0


def hold(p: Page, key: str, seconds: float = 0.4, until: float | None = None) -> tuple[list[dict], float]:
    """Holds `key` down (a real key event) until the model's notes came and
    for `seconds` after (with `until`: until the output's level passed it,
    for at most HEARD_WITHIN_S); returns the notes and the loudest output
    meanwhile."""
    before = p.y("notesReceived")
    if until is not None:
        start_meter(p)
    p.page.keyboard.down(key)
    p.wait("n => window.yoshimidi.notesReceived > n", 60, arg=before)
    notes = p.y("lastNotes")
    peak = loudest(p, seconds) if until is None else metered_peak(p, HEARD_WITHIN_S, until)
    p.page.keyboard.up(key)
    return notes, peak


def test_the_font_loads_and_a_key_plays_the_models_note_from_it(page):
    p = page()
    p.wait("window.yoshimidi.sound && window.yoshimidi.sound.fontState === 'ready'", 30)
    s = p.y("sound")
    assert s["engine"] == "font" and s["instrument"] == "piano" and s["program"] == 0, s
    assert s["fontBytes"] == os.path.getsize(FONT)
    assert "piano" in p.page.text_content("#sound") and "FluidR3" in p.page.text_content("#sound")
    # The chosen program's samples were decoded up front: every key at 9 velocities, on the muted channel.
    assert s["warmed"] == [0]
    p.wait(f"{SOUND}.warmNotesSeen >= 88 * 9", 10)
    assert p.page.get_attribute("#sound", "data-engine") == "font"
    # The font and the library are served from this server, with their licenses beside them.
    status, headers, body = p.server.get("/static/vendor/soundfont/FluidR3Mono_GM_yoshimidi.sf3")
    assert status == 200 and headers["content-type"] == "audio/x-soundfont" and body[:4] == b"RIFF"
    for name in ("spessasynth/LICENSE", "soundfont/FluidR3Mono_License.md"):
        assert os.path.getsize(os.path.join(VENDOR, name)) > 1000, name

    quiet = loudest(p, 0.2)
    own_before = p.page.evaluate(f"{SOUND}.own.scheduled")
    seen_before = s["fontNotesSeen"]
    notes, peak = hold(p, "a", until=HEARD)
    assert len(notes) == 1 and notes[0]["key"] == 60, notes
    # The synthesizer itself reports the note-on of the model's pitch and velocity.
    p.wait("n => window.yoshimidi.sound.fontNotesSeen > n", 5, arg=seen_before)
    last = p.y("sound")["lastFontNote"]
    assert last["pitch"] == notes[0]["pitch"] and last["velocity"] == notes[0]["velocity"], (last, notes)
    assert p.page.evaluate(f"{SOUND}.own.scheduled") == own_before, "the own synth played too"
    assert quiet < 1e-4 and peak > HEARD, (quiet, peak)  # real audio out of the graph
    assert p.y("audioState") == "running"

    # Two notes of one pitch: a short one (its note-off timed in the worklet)
    # and a held one. They get different MIDI channels, so the short one's
    # note-off (as the synthesizer reports it) leaves the held one sounding.
    chans = p.page.evaluate(f"""() => {{ const s = {SOUND}; window.offs = [];
        s.font.eventHandler.addEvent("noteOff", "test", (e) => window.offs.push([e.channel, e.midiNote]));
        window.shortV = s.noteOn(72, 90, {{ duration: 0.1 }}); window.heldV = s.noteOn(72, 90, {{}});
        return [window.shortV.channel, window.heldV.channel]; }}""")
    assert chans[0] != chans[1], chans
    p.wait("window.offs.length >= 1", 5)  # its 0.1 s end, as the worklet renders it (late on a loaded machine)
    time.sleep(0.2)
    assert p.page.evaluate("window.offs") == [[chans[0], 72]]  # and only its own: the held note sounds on
    p.page.evaluate(f"{SOUND}.noteOff(window.heldV)")
    p.wait("window.offs.length === 2", 5)
    assert p.page.evaluate("window.offs")[1] == [chans[1], 72]
    p.wait(f"{SOUND}.active === 0", 5)
    assert p.page_errors() == [], p.log


def test_instrument_choice_sets_the_program_and_volume_sets_the_gain(page):
    p = page()
    p.wait("window.yoshimidi.sound && window.yoshimidi.sound.fontState === 'ready'", 30)
    options = p.page.eval_on_selector_all("#instrument option", "os => os.map(o => [o.value, o.disabled])")
    assert ["piano", False] in options and ["strings", False] in options and ["synth", False] in options
    assert len(options) >= 5

    p.page.select_option("#instrument", "strings")
    assert p.y("sound")["program"] == 48 and 48 in p.y("sound")["warmed"]
    # Every channel the page uses took GM program 48 (the synthesizer's own channel state).
    p.wait(f"{SOUND}.font.midiChannels.slice(0, 8).every(c => c.patch.program === 48)", 5)
    assert "strings" in p.page.text_content("#sound")
    # The model picks the pitch; at the piano's top the string ensemble may not sound
    # (a press that drew pitch 106 gave silence in one fresh-clone CI run): keys until
    # a pitch in the middle of the range.
    for key in "sdfg":
        seen = p.y("sound")["fontNotesSeen"]
        notes, peak = hold(p, key, until=HEARD)
        p.wait("n => window.yoshimidi.sound.fontNotesSeen > n", 5, arg=seen)
        if 36 <= notes[0]["pitch"] <= 96:
            break
    assert 36 <= notes[0]["pitch"] <= 96, notes
    assert p.y("sound")["lastFontNote"]["pitch"] == notes[0]["pitch"] and peak > HEARD, (notes, peak)

    # Volume: the slider sets the output gain (a squared curve), shown beside it.
    assert abs(p.y("sound")["gain"] - 0.64) < 1e-3  # the default, 80 %
    p.set_range("volume", 20)
    p.wait(f"Math.abs({SOUND}.master.gain.value - 0.04) < 0.002", 5)
    assert p.page.text_content("#volume-value") == "20%" and p.y("sound")["volume"] == 20
    p.set_range("volume", 0)
    p.wait(f"{SOUND}.master.gain.value < 1e-4", 5)
    _, silent = hold(p, "d", 0.3)
    assert silent < 1e-5, silent
    p.set_range("volume", 80)

    # The own synth is a choice too; the font then plays nothing.
    p.page.select_option("#instrument", "synth")
    s = p.y("sound")
    assert s["engine"] == "synth" and p.page.text_content("#sound") == "own synth"
    font_before, own_before = s["fontScheduled"], p.page.evaluate(f"{SOUND}.own.scheduled")
    _, peak = hold(p, "f", until=HEARD)
    assert p.y("sound")["fontScheduled"] == font_before
    assert p.page.evaluate(f"{SOUND}.own.scheduled") == own_before + 1 and peak > HEARD
    # The choice is kept for the next visit.
    assert "synth" in p.page.evaluate("localStorage.getItem('yoshimidi.sound')")
    assert p.page_errors() == [], p.log


def test_without_the_font_the_page_plays_its_own_synth_and_says_so(page):
    p = page(missing_font=True)
    p.wait("window.yoshimidi.sound && window.yoshimidi.sound.fontState === 'failed'", 30)
    s = p.y("sound")
    assert s["engine"] == "synth" and "404" in s["fontError"], s
    text = p.page.text_content("#sound")
    assert text.startswith("own synth") and "soundfont not loaded" in text and "404" in text, text
    assert p.page.get_attribute("#sound", "data-font") == "failed"
    assert p.page.eval_on_selector("#instrument", "e => e.value") == "synth"
    assert p.page.eval_on_selector("#instrument option[value=piano]", "o => o.disabled")
    before = p.y("scheduledVoices")
    notes, peak = hold(p, "g", until=HEARD)
    assert len(notes) == 1 and p.y("scheduledVoices") == before + 1 and peak > HEARD, (notes, peak)
    assert p.page_errors() == [], p.log


def test_the_vendored_files_stay_small():
    """The sound's files (the synthesizer and the font) stay light; the page's
    own model runtime (vendor/onnxruntime-web, issue 23) is counted apart."""
    total = 0
    for part in ("spessasynth", "soundfont"):
        for root, _, files in os.walk(os.path.join(VENDOR, part)):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    assert 1 * 2**20 < total < 4 * 2**20, total
