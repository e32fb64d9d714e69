"""The page's websocket in a worker (static/worker_socket.js, net_worker.js),
in a real headless Chromium against the real server and the real soundfont
synthesizer: the worker starts a key's note through its own port into the
synthesizer's processor (static/audio_port_shim.js) the moment the answer
comes, before the page's main thread has it, on a channel lent to that
press; the note sounds and ends at key-up, or at pedal up under the sustain
pedal; ?socket=page keeps the socket on the main thread (no routes). The
organ is chosen: it sounds as long as its note is on, so a note that was
never ended would be heard."""

from __future__ import annotations

import time

import pytest

from tests.app.test_browser import Page, browser  # noqa: F401  (browser: a fixture)
from tests.app.test_piano import HEARD, HEARD_WITHIN_S, level, loudest, metered_peak, start_meter

ROUTE_CHANNELS = {8, 10, 11, 12, 13, 14}  # sound.js ROUTE_CHANNELS
TIMES = "window.yoshimidiSound.times"


@pytest.fixture
def organ(browser, request):  # noqa: F811
    server = request.getfixturevalue("server")
    pages: list[Page] = []

    def open_page(query: str = "") -> Page:
        p = Page(browser, server.url + "/" + query)
        pages.append(p)
        p.page.mouse.click(5, 5)  # a gesture: the audio context runs
        p.wait("window.yoshimidi.sound && window.yoshimidi.sound.fontState === 'ready'", 60)
        p.page.select_option("#instrument", "organ")
        p.wait("window.yoshimidi.audioState === 'running'", 30)
        p.page.evaluate("document.activeElement && document.activeElement.blur()")
        return p

    yield open_page
    for p in pages:
        p.close()


def press(p: Page, key: str) -> dict:
    """A real key down; waits for the model's note -> its timing entry."""
    count = p.page.evaluate(f"{TIMES}.count")
    p.page.keyboard.down(key)
    p.wait(f"n => {TIMES}.count > n", 60, arg=count)
    return p.page.evaluate(f"n => {TIMES}.since(n)[0]", count)


def quiet_within(p: Page, seconds: float, below: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if level(p) < below:
            return True
        time.sleep(0.05)
    return False


def test_the_worker_starts_the_note_and_the_key_up_ends_it(organ):
    p = organ()
    assert p.y("socketIn") == "worker"
    p.wait("window.yoshimidi.soundRouted", 30)
    start_meter(p)
    timing = press(p, "s")
    try:
        assert metered_peak(p, HEARD_WITHIN_S, HEARD) > HEARD  # heard (a loaded machine renders it late)
        assert timing["routed"] and timing["engine"] == "font", timing
        # started by the worker, before the page's main thread handled the answer
        assert timing["started"] <= timing["arrived"] + 0.5, timing
        sound = p.y("sound")
        heard = sound["lastFontNote"]
        assert heard["channel"] in ROUTE_CHANNELS and heard["pitch"] == timing["pitch"], heard
        assert sound["channelPrograms"][heard["channel"]] == 16, sound["channelPrograms"]  # the organ there too
        peak = loudest(p, 0.4)
        assert peak > 0.01, peak
    finally:
        p.page.keyboard.up("s")
    assert quiet_within(p, 1.5, peak / 20), f"the note still sounds after its key went up ({level(p)})"
    p.wait("window.yoshimidi.activeVoices === 0", 5)
    assert p.page_errors() == []


def test_under_the_pedal_a_routed_note_rings_until_pedal_up(organ):
    p = organ()
    p.wait("window.yoshimidi.soundRouted", 30)
    kb = p.page.keyboard
    kb.down(" ")
    start_meter(p)
    try:
        timing = press(p, "d")
        assert timing["routed"], timing
        assert metered_peak(p, HEARD_WITHIN_S, HEARD) > HEARD  # heard (a loaded machine renders it late)
        peak = loudest(p, 0.3)
        kb.up("d")
        assert loudest(p, 0.6) > peak / 3, "the pedal did not hold the note"
    finally:
        kb.up(" ")
    assert quiet_within(p, 1.5, peak / 20), f"the note still sounds after pedal up ({level(p)})"
    assert p.page_errors() == []


def test_a_chord_typed_key_by_key_gets_a_channel_per_key(organ):
    p = organ()
    p.wait("window.yoshimidi.soundRouted", 30)
    count = p.page.evaluate(f"{TIMES}.count")
    kb = p.page.keyboard
    for k in "sfh":
        kb.down(k)
    p.wait(f"n => {TIMES}.count >= n + 3", 60, arg=count)
    entries = p.page.evaluate(f"n => {TIMES}.since(n)", count)
    for k in "sfh":
        kb.up(k)
    assert all(e["routed"] for e in entries), entries
    assert len({e["channel"] for e in entries}) == 3 and {e["channel"] for e in entries} <= ROUTE_CHANNELS, entries
    assert quiet_within(p, 1.5, 0.002), f"a note still sounds after the keys went up ({level(p)})"
    p.wait("window.yoshimidi.activeVoices === 0", 5)


def test_the_socket_on_the_main_thread_routes_nothing(organ):
    p = organ("?socket=page")
    assert p.y("socketIn") == "page"
    timing = press(p, "s")
    p.page.keyboard.up("s")
    assert not timing["routed"] and timing["started"] >= timing["arrived"], timing
    assert not p.y("soundRouted")


def test_presses_the_server_drops_give_their_channels_back(browser, server_factory):  # noqa: F811
    """Keys typed faster than the session's rate (a server allowing 1 message
    a second after a burst of 10: it drops the excess and sends one "rate"
    error naming no press): the channels lent to the dropped presses come
    back after 10 s, and a key is routed again."""
    srv = server_factory("--max_sessions=2", "--messages_per_s=1", "--burst=10", name="slow")
    p = Page(browser, srv.url + "/")
    try:
        p.page.mouse.click(5, 5)
        p.wait("window.yoshimidi.sound && window.yoshimidi.sound.fontState === 'ready'", 60)
        p.page.evaluate("document.activeElement && document.activeElement.blur()")
        p.wait("window.yoshimidi.soundRouted && window.yoshimidi.audioState === 'running'", 30)
        kb = p.page.keyboard
        for k in "asdfghjkasdfghjk":  # 32 messages in 4 s: the first 10 pass, then 1 a second
            kb.down(k)
            kb.up(k)
            time.sleep(0.25)  # the last note's channel is free again: the next press is lent one
        p.wait("window.yoshimidi.errors.some((e) => e.field === 'rate')", 20)
        time.sleep(11.5)  # unanswered for 10 s, swept every second; the bucket refills meanwhile
        timing = press(p, "s")
        p.page.keyboard.up("s")
        assert timing["routed"], timing
    finally:
        p.close()
