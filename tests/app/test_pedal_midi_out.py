"""The sustain pedal and MIDI out, in a real headless Chromium against the
real server, with real keyboard events.

The pedal lives in the page (static/pedal.js): a key that goes up while the
pedal is down keeps its note ringing, and its `release` goes to the server
only at pedal up. These tests watch the page's websocket (Playwright's
route_web_socket passes every frame on to the real server and keeps a copy),
the page's own sound (its noteOff calls), the recording's .mid, and the
screen.

Headless Chromium has no MIDI device, so Web MIDI is tested at its boundary:
an init script replaces `navigator.requestMIDIAccess` with a fake MIDIAccess
holding one input (the test calls its `onmidimessage` with bytes, as a
keyboard or a pedal would) and one output that records every `send(bytes)`.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from tests.app.test_browser import Page, browser  # noqa: F401  (browser: the module's Chromium)
from yoshimidi_jax.midi import read_midi

OPEN = "window.yoshimidi.connection === 'open' && window.yoshimidi.hello !== null"

# A MIDIAccess-like object: one input ("Fake Keys"), one output ("Fake Synth")
# whose send(bytes, timestamp) calls are kept in window.fakeMidi.sent.
FAKE_MIDI = """
(() => {
  const sent = [];
  const listeners = [];
  const port = (id, name, type) => ({
    id, name, type, manufacturer: "test", version: "1", state: "connected", connection: "open",
    open() { return Promise.resolve(this); }, close() { return Promise.resolve(this); },
    addEventListener() {}, removeEventListener() {},
  });
  const input = Object.assign(port("fake-in", "Fake Keys", "input"), { onmidimessage: null });
  const output = Object.assign(port("fake-out", "Fake Synth", "output"), {
    send(data, timestamp) {
      sent.push({ data: Array.from(data), timestamp: timestamp ?? null, at: performance.now() });
    },
    clear() {},
  });
  const access = {
    inputs: new Map([[input.id, input]]), outputs: new Map([[output.id, output]]),
    sysexEnabled: false, onstatechange: null,
    addEventListener(type, f) { if (type === "statechange") listeners.push(f); },
    removeEventListener() {},
  };
  window.fakeMidi = {
    sent, calls: 0,
    emit(bytes) {
      if (typeof input.onmidimessage === "function")
        input.onmidimessage({ data: new Uint8Array(bytes), timeStamp: performance.now() });
    },
  };
  Object.defineProperty(navigator, "requestMIDIAccess", {
    configurable: true,
    value: () => { window.fakeMidi.calls += 1; return Promise.resolve(access); },
  });
})();
"""

# Counts the page's local noteOff calls (the sound engine the page plays through).
SPY_NOTE_OFF = """() => {
  const s = window.yoshimidiSound;
  if (s.__spied) return;
  s.__spied = true;
  window.localOffs = [];
  const off = s.noteOff;
  s.noteOff = function (voice) { window.localOffs.push(performance.now()); return off.call(this, voice); };
}"""


class MidiPage(Page):
    """A page with the fake Web MIDI, whose websocket passes through the test:
    `to_server` is every message the page sent, as parsed JSON."""

    def __init__(self, browser, url: str):  # noqa: F811
        self.to_server: list[dict] = []
        self.from_server: list[dict] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        self.context.add_init_script(FAKE_MIDI)
        self.page = self.context.new_page()
        self.log: list[str] = []
        self.page.on("console", lambda m: self.log.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.log.append(f"PAGEERROR: {e}"))
        self.page.route_web_socket(re.compile(r"/ws$"), self._route)
        self.page.goto(url)
        self.wait(OPEN, 60)
        self.page.evaluate(SPY_NOTE_OFF)

    def _route(self, ws) -> None:
        server = ws.connect_to_server()

        def up(m):
            if isinstance(m, str):
                self.to_server.append(json.loads(m))
            server.send(m)

        def down(m):
            if isinstance(m, str):
                self.from_server.append(json.loads(m))
            ws.send(m)

        ws.on_message(up)
        server.on_message(down)

    def pause(self, seconds: float) -> None:
        """Waits while Playwright keeps passing the websocket's frames (time.sleep would not)."""
        self.page.wait_for_timeout(seconds * 1000)

    def releases(self, key: int) -> list[dict]:
        return [m for m in self.to_server if m["type"] == "release" and key in m["keys"]]

    def press_of(self, key: int) -> dict:
        return [m for m in self.to_server if m["type"] == "press" and key in m["keys"]][-1]

    def notes_since(self, i: int) -> list[dict]:
        """The model's notes in the server's replies from_server[i:]."""
        return [n for m in self.from_server[i:] if m["type"] == "notes" for n in m["notes"]]

    def local_offs(self) -> int:
        return self.page.evaluate("window.localOffs.length")

    def wait_notes(self, before: int) -> list[dict]:
        self.wait("n => window.yoshimidi.notesReceived > n", 30, arg=before)
        return self.y("lastNotes")


@pytest.fixture
def midi_page(browser, request):  # noqa: F811
    server = request.getfixturevalue("server")
    pages: list[MidiPage] = []

    def make() -> MidiPage:
        p = MidiPage(browser, server.url + "/?socket=page")  # its socket where route_web_socket sees it
        pages.append(p)
        return p

    yield make
    for p in pages:
        p.close()


def key_class(p: MidiPage, pitch: int) -> str:
    return p.page.get_attribute(f'.key[data-pitch="{pitch}"]', "class")


def test_space_pedal_holds_notes_until_pedal_up(midi_page):
    p = midi_page()
    kb = p.page.keyboard

    # without the pedal the release goes out at key up
    n = p.y("notesReceived")
    kb.down("s")  # D4, 62
    p.wait_notes(n)
    kb.up("s")
    p.pause(0.3)
    assert len(p.releases(62)) == 1, p.to_server

    kb.down("Space")
    p.wait("window.yoshimidi.pedal === true", 5)
    assert p.page.get_attribute("#pedal", "data-down") == "1"
    assert "pedal" in p.page.get_attribute("#keyboard", "class")
    offs = p.local_offs()
    n = p.y("notesReceived")
    kb.down("a")  # C4, 60
    notes = p.wait_notes(n)
    assert [x["key"] for x in notes] == [60]
    p.pause(0.1)
    kb.up("a")
    p.pause(1.0)
    # the key is up, the note still rings: no release to the server, no local note-off
    assert p.releases(60) == [], p.to_server
    assert p.local_offs() == offs, "the local sound was stopped under the pedal"
    assert p.y("sustained") == [60] and p.y("activeVoices") >= 1
    cls = key_class(p, 60)
    assert "sustained" in cls and "held" not in cls, cls

    kb.up("Space")
    p.wait("window.yoshimidi.pedal === false", 5)
    p.wait("() => window.localOffs.length > %d" % offs, 5)
    p.pause(0.3)
    released = p.releases(60)
    assert len(released) == 1, p.to_server
    held_ms = released[0]["t"] - p.press_of(60)["t"]
    assert held_ms >= 1000, f"the model heard the note for {held_ms} ms, not until pedal up"
    assert p.y("sustained") == [] and p.page.get_attribute("#pedal", "data-down") == "0"
    assert "sustained" not in key_class(p, 60)
    assert p.y("errors") == [] and p.page_errors() == []


def test_pedalled_recording_keeps_the_durations(midi_page, tmp_path):
    p = midi_page()
    kb = p.page.keyboard
    p.play("s")  # the session's first press may compile: not in the recording
    # each key's own key-down and key-up time stamps, page time (a loaded machine may deliver an event long
    # after it is asked)
    p.page.evaluate("() => { window.keyUps = {}; window.keyDowns = {}; "
                    "document.addEventListener('keyup', (e) => { window.keyUps[e.code] = e.timeStamp; }, true); "
                    "document.addEventListener('keydown', (e) => { window.keyDowns[e.code] = e.timeStamp; }, true); }")
    p.page.click("#record")
    p.wait("document.getElementById('record').dataset.state === 'recording'", 10)
    kb.down("Space")
    n = p.y("notesReceived")
    kb.down("a")
    p.wait_notes(n)
    p.pause(0.1)
    kb.up("a")
    p.pause(0.8)   # ringing under the pedal
    kb.up("Space")
    p.pause(0.1)
    n = p.y("notesReceived")
    kb.down("d")  # no pedal: a short note
    p.wait_notes(n)
    p.pause(0.1)
    kb.up("d")
    p.pause(0.2)
    with p.page.expect_download(timeout=30_000) as info:
        p.page.click("#record")
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    ev = read_midi(str(path)).events
    assert len(ev) == 2, ev
    pedalled, plain = (float(ev.duration_s[i]) for i in ev.onset_s.argsort())
    press_t = p.press_of(60)["t"]
    key_up, pedal_up = p.page.evaluate("[window.keyUps.KeyA, window.keyUps.Space]")
    key_s, pedal_s = (key_up - press_t) / 1000, (pedal_up - press_t) / 1000
    # the page stamps press and release with the key events' own times (app.js eventTime): equal to the
    # recording's tick (~0.5 ms), however late a loaded machine hands the events to the page
    assert abs(pedalled - pedal_s) < 0.005, (
        f"the pedalled note lasts {pedalled:.3f} s in the recording: its key was down {key_s:.3f} s, "
        f"the pedal came up after {pedal_s:.3f} s")
    held_d = (p.page.evaluate("window.keyUps.KeyD - window.keyDowns.KeyD")) / 1000
    assert abs(plain - held_d) < 0.005, (
        f"the note played without the pedal lasts {plain:.3f} s, its key was down {held_d:.3f} s")
    assert p.page_errors() == []


def test_cc64_from_a_midi_input_sustains(midi_page):
    p = midi_page()
    p.wait("document.getElementById('midi').textContent === 'Fake Keys'", 10)
    fake = "bytes => window.fakeMidi.emit(bytes)"
    p.page.evaluate(fake, [0xB0, 64, 127])  # pedal down (channel 1)
    p.wait("window.yoshimidi.pedal === true", 5)
    n = p.y("notesReceived")
    p.page.evaluate(fake, [0x90, 67, 100])  # G4 down
    notes = p.wait_notes(n)
    assert [(x["key"], x["velocity"]) for x in notes] == [(67, 100)]
    p.page.evaluate(fake, [0x80, 67, 0])  # key up
    p.pause(0.8)
    assert p.releases(67) == [] and p.y("sustained") == [67], p.to_server
    p.page.evaluate(fake, [0xB0, 64, 0])  # pedal up
    p.wait("window.yoshimidi.pedal === false", 5)
    p.pause(0.3)
    released = p.releases(67)
    assert len(released) == 1, p.to_server
    assert released[0]["t"] - p.press_of(67)["t"] >= 800
    # a key let go with the pedal up goes at once (note-on with velocity 0 is a key up too)
    n = p.y("notesReceived")
    p.page.evaluate(fake, [0x91, 69, 90])
    p.wait_notes(n)
    p.page.evaluate(fake, [0x91, 69, 0])
    p.pause(0.3)
    assert len(p.releases(69)) == 1
    assert p.page_errors() == []


def test_midi_out_sends_the_models_notes(midi_page, tmp_path):
    p = midi_page()
    kb = p.page.keyboard
    p.wait("window.yoshimidi.midiOut && window.yoshimidi.midiOut.state === 'ready'", 10)
    assert p.page.eval_on_selector_all("#midi-out option", "os => os.map(o => o.textContent)") == [
        "none", "Fake Synth"]
    assert p.page.input_value("#midi-out") == "none"  # nothing goes out until an output is chosen
    p.play("a")
    p.pause(0.2)
    assert p.page.evaluate("window.fakeMidi.sent") == []

    p.page.select_option("#midi-out", value="fake-out")
    p.page.select_option("#midi-channel", "5")  # channel 5: status bytes 0x94, 0x84
    p.wait("window.yoshimidi.midiOut.output === 'Fake Synth' && window.yoshimidi.midiOut.channel === 5", 5)
    assert "Fake Synth" in p.page.text_content("#midi-out-status")
    p.page.uncheck("#local-sound")  # only MIDI out plays
    p.wait("window.yoshimidi.midiOut.local === false", 5)
    scheduled = p.y("scheduledVoices")

    p.set_range("dynamics", 70)
    i = len(p.from_server)
    p.play("dg", hold_s=0.1)   # a chord: two notes
    p.pause(0.3)
    p.play("k", shift=True, hold_s=0.1)
    p.pause(0.3)
    notes = p.notes_since(i)
    assert sorted(n["key"] for n in notes) == [64, 67, 72], notes
    assert sorted(n["velocity"] for n in notes) == [70, 70, 112], notes
    sent = [tuple(s["data"]) for s in p.page.evaluate("window.fakeMidi.sent")]
    ons = [s for s in sent if s[0] == 0x94]
    offs = [s for s in sent if s[0] == 0x84]
    assert all(s[0] in (0x94, 0x84) for s in sent), sent
    want_on = sorted((0x94, n["pitch"], n["velocity"]) for n in notes)
    assert sorted(ons) == want_on, (sent, notes)
    assert sorted(offs) == sorted((0x84, n["pitch"], 0) for n in notes), (sent, notes)
    # each note-off ends a note that is on (the same pitch may come again after its note-off)
    on: set[int] = set()
    for status, pitch, _ in sent:
        if status == 0x94:
            on.add(pitch)
        else:
            assert pitch in on, f"note-off of {pitch} before its note-on: {sent}"
            on.discard(pitch)
    assert on == set(), sent
    assert p.y("scheduledVoices") == scheduled, "the local sound played while muted"

    # under the pedal the note-off goes out at pedal up
    count = len(sent)
    kb.down("Space")
    n0 = p.y("notesReceived")
    kb.down("j")
    (note,) = p.wait_notes(n0)
    kb.up("j")
    p.pause(0.5)
    sent = [tuple(s["data"]) for s in p.page.evaluate("window.fakeMidi.sent")]
    assert sent[count:] == [(0x94, note["pitch"], note["velocity"])], sent[count:]
    kb.up("Space")
    p.pause(0.2)
    sent = [tuple(s["data"]) for s in p.page.evaluate("window.fakeMidi.sent")]
    assert sent[count:] == [(0x94, note["pitch"], note["velocity"]), (0x84, note["pitch"], 0)], sent[count:]

    # the page with MIDI out chosen, the pedal down and a key ringing under it
    p.page.check("#local-sound")
    kb.down("Space")
    n0 = p.y("notesReceived")
    kb.down("h")
    p.wait_notes(n0)
    kb.up("h")
    p.pause(0.4)
    shot = tmp_path / "yoshimidi-pedal-midi-out.png"
    p.page.screenshot(path=str(shot))
    out = os.environ.get("YOSHIMIDI_ARTIFACTS")
    if out:
        os.makedirs(out, exist_ok=True)
        shutil.copy(shot, os.path.join(out, shot.name))
    kb.up("Space")
    assert p.y("errors") == [] and p.page_errors() == []
