"""The instrument's server against real `experiments.serve` subprocesses, over
real websockets: the protocol end to end, errors that keep the session going,
rate limiting, many sessions, the session cap, Origin, idle sessions, HTTP."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import re
import socket
import statistics
import threading
import time

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.app.conftest import Client
from tests.app.test_protocol import BAD_MESSAGES
from yoshimidi_jax.midi import read_midi
from yoshimidi_jax.tokens.styles import STYLES

PITCH_LO, PITCH_HI = 21, 108  # experiments.serve's defaults (a piano)
MAX_NOTES = 5


def check_notes(reply: dict, keys: list[int], velocity: int = 80) -> list[int]:
    """A notes reply for a press of `keys`: min(len, 5) notes, the i-th lowest
    key paired with the i-th lowest pitch; returns the pitches."""
    assert reply["type"] == "notes", reply
    notes = reply["notes"]
    n = min(len(keys), MAX_NOTES)
    assert len(notes) == n, reply
    assert [x["key"] for x in notes] == sorted(keys)[:n], reply
    pitches = [x["pitch"] for x in notes]
    assert pitches == sorted(pitches), f"pitches not paired low to high: {reply}"
    assert len(set(pitches)) == n, f"a pitch twice in one press: {reply}"
    assert all(isinstance(p, int) and PITCH_LO <= p <= PITCH_HI for p in pitches), reply
    for x in notes:
        assert x["velocity"] == velocity and x["start_s"] == 0.0 and x["end_s"] is None, reply
    assert set(reply["control"]) == {"interval", "chord", "velocity"}, reply
    assert isinstance(reply["server_ms"], (int, float)) and reply["server_ms"] >= 0
    return pitches


# ---------------------------------------------------------------- the basics

def test_hello(server, client_factory):
    a, b = client_factory(server), client_factory(server)
    h = a.hello
    assert h["type"] == "hello" and h["protocol"] == 1
    assert isinstance(h["session"], str) and h["session"] and b.hello["session"] != h["session"]
    m = h["model"]
    assert m["name"] == "random-init" and m["workdir"] is None and m["step"] is None
    assert isinstance(m["params"], int) and m["params"] > 0
    assert h["settings"] == {"temperature": 1.0, "top_p": 0.95, "strict": False}
    assert h["styles"] == list(STYLES) and h["style"] == "any"  # configs/tiny.py: a model with styles
    assert h["limits"] == {"max_message_bytes": 4096, "messages_per_s": 60.0, "burst": 120, "max_keys": 10,
                           "max_notes_per_press": 5, "idle_timeout_s": 600.0}
    info = json.loads(server.get("/api/info")[2])
    assert info["model"] == m and info["max_sessions"] == 64 and info["sessions"] >= 2
    assert info["styles"] == list(STYLES)


def test_single_press_gets_one_note(server, client_factory):
    c = client_factory(server)
    reply = c.press([60], velocity=90, t=1234.5, msg_id=17)
    assert reply["type"] == "notes" and {"press", "notes", "control"} <= set(reply), reply
    assert reply["id"] == 17 and reply["t"] == 1234.5 and reply["press"] == 1
    check_notes(reply, [60], velocity=90)
    assert reply["control"] == {"interval": "*", "chord": "single", "velocity": "medium"}
    reply = c.press([72], velocity=120)
    assert reply["type"] == "notes", reply
    assert reply["press"] == 2 and reply["control"]["chord"] == "single" and reply["control"]["velocity"] == "hard"
    check_notes(reply, [72], velocity=120)


@pytest.mark.parametrize("keys, chord", [
    ([64, 60], "two"),
    ([67, 60, 64], "three"),
    ([48, 60, 52, 64, 55], "five"),
    ([40, 45, 50, 55, 60, 65, 70], "five"),
    (list(range(80, 30, -5)), "five"),  # 10 keys, given high to low
])
def test_chord_press_gets_min_k_5_notes(server, client_factory, keys, chord):
    c = client_factory(server)
    c.press([60])
    for _ in range(2):
        reply = c.press(keys)
        check_notes(reply, keys)
        assert reply["control"]["chord"] == chord
        for k in keys:
            c.release([k])
    c.ping()  # releases have no reply (nor an error): the next reply is the pong


STEP_RANGES = {"same": (0, 0), "up-step": (1, 2), "down-step": (-2, -1), "up-skip": (3, 5), "down-skip": (-5, -3)}


def test_strict_mode_keeps_the_interval(server, client_factory):
    c = client_factory(server)
    ack = c.request({"type": "settings", "strict": True})
    assert ack == {"type": "settings", "settings": {"temperature": 1.0, "top_p": 0.95, "strict": True}}
    key = 60
    reply = c.press([key])
    (pitch,) = check_notes(reply, [key])
    c.release([key])
    # zig-zag around the first pitch, away from the edges of the piano
    up_first = pitch < 64
    moves = [+2, -2, 0, +1, -1, +4, -4] if up_first else [-2, +2, 0, -1, +1, -4, +4]
    for move in moves:
        key += move
        reply = c.press([key])
        (new,) = check_notes(reply, [key])
        c.release([key])
        interval = reply["control"]["interval"]
        want = {0: "same", 1: "up-step", 2: "up-step", -1: "down-step", -2: "down-step", 4: "up-skip",
                -4: "down-skip"}[move]
        assert interval == want, reply
        lo, hi = STEP_RANGES[want]
        assert lo <= new - pitch <= hi, f"strict {want}: pitch {pitch} -> {new} (keys moved by {move})"
        pitch = new


def test_release_then_press(server, client_factory):
    c = client_factory(server)
    check_notes(c.press([60, 64]), [60, 64])
    c.release([60])
    c.release([64, 99])  # 99 was never pressed: ignored
    c.release([30])
    c.ping()
    check_notes(c.press([60]), [60])
    check_notes(c.press([60]), [60])  # struck again while held
    c.release([60])
    c.ping()
    assert server.stats()["counters"]["releases"] >= 4


def test_settings_ack(server, client_factory):
    c = client_factory(server)
    assert c.request({"type": "settings", "temperature": 0.5}) == {
        "type": "settings", "settings": {"temperature": 0.5, "top_p": 0.95, "strict": False}}
    assert c.request({"type": "settings", "top_p": 0.8, "strict": True}) == {
        "type": "settings", "settings": {"temperature": 0.5, "top_p": 0.8, "strict": True}}
    assert c.request({"type": "settings", "temperature": 0}) == {
        "type": "settings", "settings": {"temperature": 0.0, "top_p": 0.8, "strict": True}}
    check_notes(c.press([60, 67]), [60, 67])  # greedy plays too
    other = client_factory(server)  # settings are per session
    assert other.request({"type": "settings", "strict": False})["settings"]["temperature"] == 1.0


def test_reset_ack_forgets_the_music_keeps_settings_and_clock(server, client_factory):
    c = client_factory(server)
    c.request({"type": "settings", "temperature": 0.7})
    c.press([60])
    assert c.press([62])["control"]["interval"] == "up-step"
    assert c.request({"type": "reset"}) == {"type": "reset", "style": "any"}
    reply = c.press([64])
    check_notes(reply, [64])
    assert reply["control"]["interval"] == "*"  # no previous press any more
    assert reply["press"] == 3  # the session's press count goes on
    assert c.request({"type": "settings", "top_p": 0.9})["settings"]["temperature"] == 0.7
    err = c.press([60], t=1.0, msg_id=55)  # the clock is kept: t may not go back
    assert err["type"] == "error" and err["field"] == "t" and err["id"] == 55


def test_reset_in_a_style_keeps_it_until_another(server, client_factory):
    """A reset carrying a style starts the fresh context in it; a reset
    without one keeps it; "any" asks for none."""
    c = client_factory(server)
    check_notes(c.press([60]), [60])
    assert c.request({"type": "reset", "style": "fiddle"}) == {"type": "reset", "style": "fiddle"}
    for keys in ([60], [62, 65], [67]):
        check_notes(c.press(keys), keys)
    assert c.request({"type": "reset"}) == {"type": "reset", "style": "fiddle"}
    check_notes(c.press([64]), [64])
    assert c.request({"type": "reset", "style": "any"}) == {"type": "reset", "style": "any"}
    check_notes(c.press([65]), [65])
    err = c.request({"type": "reset", "id": 12, "style": "jazz"})
    assert err["type"] == "error" and err["field"] == "style" and err["id"] == 12 and "fiddle" in err["error"]
    assert client_factory(server).hello["style"] == "any"  # per session


def test_ping_pong(server, client_factory):
    c = client_factory(server)
    assert c.request({"type": "ping", "t": 1234.5}) == {"type": "pong", "t": 1234.5}
    assert c.request({"type": "ping", "t": 1234.5, "id": 3}) == {"type": "pong", "t": 1234.5}
    assert c.request({"type": "ping", "t": 99999.25}) == {"type": "pong", "t": 99999.25}
    err = c.request({"type": "ping"})
    assert (err["type"], err["field"]) == ("error", "t"), err


def test_record_gives_a_midi_file(server, client_factory):
    c = client_factory(server)
    c.press([48])  # before the recording: not in the file
    c.release([48])
    assert c.request({"type": "record", "action": "start"}) == {"type": "recording", "state": "started"}
    t0 = c.tick(100)
    played = []  # (pitch, velocity, onset_ms, end_ms)
    for keys, velocity, hold_ms in [([60], 70, 200), ([62, 65], 100, 300), ([64], 40, 150)]:
        t = c.tick(250)
        pitches = check_notes(c.press(keys, velocity=velocity, t=t), keys, velocity)
        end = c.tick(hold_ms)
        c.release(keys, t=end)
        played += [(p, velocity, t - t0, end - t0) for p in pitches]
    stop = c.request({"type": "record", "action": "stop"})
    assert stop["type"] == "recording" and stop["state"] == "stopped", stop
    assert stop["notes"] == len(played) == 4
    assert re.fullmatch(r"yoshimidi-\d{8}-\d{6}\.mid", stop["filename"]), stop["filename"]
    midi = base64.b64decode(stop["midi_base64"], validate=True)
    assert midi[:4] == b"MThd"
    events = read_midi(midi).events
    assert len(events) == len(played)
    got = sorted(zip(events.onset_s.tolist(), events.pitch.tolist(), events.velocity.tolist(),
                     events.duration_s.tolist()))
    first = min(p[2] for p in played)
    want = sorted(((on - first) / 1e3, p, v, (end - on) / 1e3) for p, v, on, end in played)
    for (on, p, v, d), (won, wp, wv, wd) in zip(got, want):
        assert (p, v) == (wp, wv), (got, want)
        assert on == pytest.approx(won, abs=0.005) and d == pytest.approx(wd, abs=0.005), (got, want)
    assert stop["seconds"] == pytest.approx(max(on + d for on, _, _, d in want), abs=0.01)
    err = c.request({"type": "record", "action": "stop"})  # stop again: nothing is recording
    assert err["type"] == "error" and err["field"] == "action", err
    check_notes(c.press([60]), [60])


def test_session_level_errors_carry_the_message_id(server, client_factory):
    """"id is the offending message's id when it had one" also for errors found
    past the parser (a stop with no recording, a release whose t goes back)."""
    c = client_factory(server)
    errors = [c.request({"type": "record", "action": "stop", "id": 4})]  # no recording to stop
    check_notes(c.press([60], t=1000.0), [60])
    errors.append(c.request({"type": "release", "id": 9, "keys": [60], "t": 10.0}))  # t went back
    assert [(e["type"], e["field"], e["id"]) for e in errors] == [("error", "action", 4), ("error", "t", 9)], errors


def test_record_keeps_notes_still_held_at_stop(server, client_factory):
    c = client_factory(server)
    c.request({"type": "record", "action": "start"})
    check_notes(c.press([60, 64, 67]), [60, 64, 67])  # never released
    stop = c.request({"type": "record", "action": "stop"})
    events = read_midi(base64.b64decode(stop["midi_base64"])).events
    assert stop["notes"] == len(events) == 3
    assert np.all(events.duration_s >= 0.2)


# ---------------------------------------------------------------- errors keep the session

def test_every_malformed_message_gets_an_error_and_the_session_goes_on(server, client_factory):
    c = client_factory(server)
    before = server.stats()["counters"]
    problems = []
    for name, frame, field, msg_id in BAD_MESSAGES:
        reply = c.request(frame)
        if reply.get("type") != "error" or reply.get("field") != field or reply.get("id") != msg_id \
                or not reply.get("error"):
            problems.append(f"{name}: {reply} (want field={field!r} id={msg_id!r})")
        after = c.press([60 + len(problems) % 5])
        if after["type"] != "notes" or len(after["notes"]) != 1:
            problems.append(f"after {name}: a press got {after}")
    assert not problems, "\n".join(problems)
    stats = server.stats()
    assert stats["counters"]["errors"] - before.get("errors", 0) == len(BAD_MESSAGES)
    assert stats["counters"]["presses"] - before.get("presses", 0) == len(BAD_MESSAGES)
    n_keys = sum(1 for row in BAD_MESSAGES if row[2] == "keys")
    assert stats["counters"]["error:keys"] - before.get("error:keys", 0) == n_keys


def test_binary_frame_is_an_error_and_the_session_goes_on(server, client_factory):
    c = client_factory(server)
    before = server.stats()["counters"].get("errors", 0)
    err = c.request(json.dumps({"type": "ping", "t": 1.0}).encode())
    assert err["type"] == "error" and err["field"] is None and "binary" in err["error"]
    check_notes(c.press([60]), [60])
    assert server.stats()["counters"]["errors"] == before + 1


def test_time_going_backwards_is_an_error(server, client_factory):
    c = client_factory(server)
    before = server.stats()["counters"].get("error:t", 0)
    check_notes(c.press([60], t=1000.0), [60])
    err = c.press([62], t=999.0, msg_id=8)
    assert (err["type"], err["field"], err["id"]) == ("error", "t", 8), err
    c.release([60], t=500.0)
    err = c.recv()
    assert (err["type"], err["field"]) == ("error", "t"), err
    check_notes(c.press([62], t=1000.0), [62])  # the same t again is fine
    assert server.stats()["counters"]["error:t"] == before + 2


# ---------------------------------------------------------------- flooding

def drain(c, quiet_s: float = 1.5) -> list[dict]:
    """Every reply until the server has said nothing for quiet_s."""
    replies = []
    while True:
        try:
            replies.append(c.recv(timeout_s=quiet_s))
        except TimeoutError:
            return replies


def test_a_flood_gets_exactly_one_rate_error(server, client_factory):
    c = client_factory(server)
    before = server.stats()["counters"].get("rate_limited", 0)
    n = 1000
    for i in range(n):
        c.send({"type": "ping", "t": 1.0 + i})
    replies = drain(c)
    pongs = [r for r in replies if r["type"] == "pong"]
    rate = [r for r in replies if r["type"] == "error" and r["field"] == "rate"]
    assert len(pongs) + len(rate) == len(replies), [r for r in replies if r["type"] not in ("pong", "error")]
    assert 120 <= len(pongs) < n / 2, len(pongs)
    assert server.stats()["counters"]["rate_limited"] - before == n - len(pongs)
    assert len(rate) == 1, (f"{len(rate)} rate errors for one flood of {n} pings "
                            f"(at reply positions {[i for i, r in enumerate(replies) if r['type'] == 'error']})")
    time.sleep(0.5)  # the rate falls: messages go through again
    c.t = 10_000.0
    c.ping()
    check_notes(c.press([60]), [60])


def test_a_sustained_flood_gets_one_rate_error(server, client_factory):
    """Protocol: "Flooding (more than messages_per_s sustained) gets ONE error
    with field "rate"": 2 s at 5x the rate is one flood."""
    c = client_factory(server)
    c.ping()
    rate, seconds = 300.0, 2.0
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        c.send({"type": "ping", "t": 10.0 + i})
        delay = start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    replies = drain(c)
    pongs = sum(r["type"] == "pong" for r in replies)
    rate_errors = sum(r["type"] == "error" and r["field"] == "rate" for r in replies)
    assert 120 <= pongs <= 120 + 60 * (time.perf_counter() - start), pongs  # the burst, then ~60/s
    assert rate_errors == 1, f"{rate_errors} rate errors for one {seconds:g} s flood at {rate:g} messages/s"


def test_a_flood_does_not_starve_another_client(server, client_factory):
    flooder, player = client_factory(server), client_factory(server)
    check_notes(flooder.press([60]), [60])
    for _ in range(3):
        check_notes(player.press([60]), [60])  # compiled and warm
    flood_replies: list[tuple[float, dict]] = []

    def flood():
        for i in range(1000):
            flooder.send({"type": "press", "id": i + 100, "keys": [55 + i % 12], "velocity": 80, "t": 100.0 + i})
        while True:  # until quiet (a compile of a new batch shape may stall the replies for seconds)
            got_rate = any(r.get("field") == "rate" for _, r in flood_replies)
            try:
                flood_replies.append((time.perf_counter(), flooder.recv(timeout_s=1.5 if got_rate else 30)))
            except TimeoutError:
                return

    thread = threading.Thread(target=flood, daemon=True)
    started = time.perf_counter()
    thread.start()
    latencies = []  # (sent at, seconds)
    while thread.is_alive() and time.perf_counter() - started < 60 and len(latencies) < 400:
        t0 = time.perf_counter()
        reply = player.press([60 + len(latencies) % 7])
        latencies.append((t0, time.perf_counter() - t0))
        check_notes(reply, [60 + (len(latencies) - 1) % 7])
        time.sleep(0.02)
    thread.join(60)
    assert not thread.is_alive()
    notes = [t for t, r in flood_replies if r["type"] == "notes"]
    assert len(notes) >= 120 and sum(r.get("field") == "rate" for _, r in flood_replies) >= 1
    during = [s for t0, s in latencies if t0 <= notes[-1]]  # presses while the flood was being played
    assert len(during) >= 10, (len(during), len(latencies), notes[-1] - started)
    p50 = statistics.median(during)
    assert p50 < 0.1, f"the other client's p50 press latency during the flood: {p50 * 1e3:.0f} ms " \
                      f"({len(during)} presses; max {max(during) * 1e3:.0f} ms)"


# ---------------------------------------------------------------- many sessions

def settled_sessions(server) -> int:
    """The sessions open once those of earlier tests (closed) are gone from the server."""
    return server.wait_stats(lambda s: s["sessions"] == 0, timeout_s=5)["sessions"]


def test_fifty_sessions_at_once(server):
    from websockets.asyncio.client import connect

    baseline = settled_sessions(server)
    n, presses = 50, 3

    async def one(i: int, all_open: asyncio.Barrier, all_played: asyncio.Barrier, done: asyncio.Event) -> int:
        async with connect(server.ws_url, open_timeout=60, max_size=1 << 22) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 60))
            assert hello["type"] == "hello"
            await all_open.wait()
            got = 0
            for j in range(presses):
                keys = [48 + (i + j) % 24] if j != 1 else [48 + i % 12, 60 + i % 12]
                await ws.send(json.dumps({"type": "press", "id": j, "keys": keys, "velocity": 80, "t": 100.0 * j}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
                assert reply["type"] == "notes" and reply["id"] == j, reply
                assert [x["key"] for x in reply["notes"]] == sorted(keys), reply
                got += len(reply["notes"])
                await ws.send(json.dumps({"type": "release", "keys": keys, "t": 100.0 * j + 50}))
            await all_played.wait()
            await done.wait()
            return got

    async def main():
        all_open, all_played, done = asyncio.Barrier(n + 1), asyncio.Barrier(n + 1), asyncio.Event()
        tasks = [asyncio.create_task(one(i, all_open, all_played, done)) for i in range(n)]
        try:
            await asyncio.wait_for(all_open.wait(), 120)
            open_now = (await asyncio.to_thread(server.stats))["sessions"]
            t0 = time.perf_counter()
            await asyncio.wait_for(all_played.wait(), 120)
            seconds = time.perf_counter() - t0
            done.set()
            return open_now, seconds, await asyncio.wait_for(asyncio.gather(*tasks), 60)
        finally:
            for t in tasks:
                t.cancel()

    open_now, seconds, results = asyncio.run(main())
    assert open_now == baseline + n
    assert results == [presses + 1] * n
    assert server.wait_stats(lambda s: s["sessions"] == baseline)["sessions"] == baseline
    print(f"{n} sessions x {presses} presses played in {seconds:.1f} s")


def test_a_client_gone_mid_press_does_not_hurt_the_others(server, client_factory):
    baseline = settled_sessions(server)
    stays = client_factory(server)
    check_notes(stays.press([60]), [60])
    before = server.stats()["counters"]
    for i in range(3):
        gone = Client(server.ws_url)
        gone.send({"type": "press", "id": 1, "keys": [60, 64, 67], "velocity": 80, "t": 1.0})
        gone.ws.close()  # before the notes come back
        check_notes(stays.press([62 + i]), [62 + i])
    s = server.wait_stats(lambda s: s["sessions"] == baseline + 1)
    assert s["sessions"] == baseline + 1
    assert s["counters"]["sessions_closed"] - before.get("sessions_closed", 0) == 3
    stays.close()
    assert server.wait_stats(lambda s: s["sessions"] == baseline)["sessions"] == baseline


# ---------------------------------------------------------------- Origin, HTTP

def test_origin_is_checked(server, client_factory):
    before = server.stats()["counters"].get("origin_refused", 0)
    with pytest.raises(InvalidStatus) as info:
        Client(server.ws_url, origin="http://evil.example")
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        Client(server.ws_url, origin=f"http://127.0.0.1:{server.port + 1}")
    assert server.stats()["counters"]["origin_refused"] == before + 2
    c = client_factory(server, origin=server.origin)
    check_notes(c.press([60]), [60])


def raw_handshake(port: int, host: str, origin: str | None = None) -> tuple[int, bytes]:
    """A websocket handshake written by hand over a real socket, naming the
    Host header (client libraries take it from the URL): (HTTP status, body)."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /ws HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", *([f"Origin: {origin}"] if origin else [])]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the handshake without an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while status != 101 and length and len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, body


def http_get(port: int, path: str, host: str) -> tuple[int, bytes]:
    """GET path with this Host header: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_dns_rebinding_is_refused_by_the_host_header(server):
    """A page on evil.example whose name now points at 127.0.0.1 sends its own
    name as Host and a matching Origin: the Origin check alone lets it in."""
    port = server.port
    before = server.stats()["counters"].get("host_refused", 0)
    evil = f"evil.example:{port}"
    status, body = raw_handshake(port, evil, origin=f"http://{evil}")
    assert status == 403 and f"Host '{evil}'".encode() in body and b"DNS rebinding" in body, (status, body)
    assert f"localhost:{port}".encode() in body, body  # it says what it answers to
    for path in ("/", "/api/info", "/api/stats"):
        status, body = http_get(port, path, evil)
        assert status == 403 and b"DNS rebinding" in body, (path, status, body)
    assert server.stats()["counters"]["host_refused"] == before + 4
    # the loopback names with the server's port are answered; another port is not
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert raw_handshake(port, host, origin=f"http://{host}")[0] == 101, host
        assert http_get(port, "/api/info", host)[0] == 200, host
    assert raw_handshake(port, f"localhost:{port + 1}")[0] == 403
    assert server.stats()["counters"]["host_refused"] == before + 5


# ---------------------------------------------------------------- what clients send never grows the server

def test_a_field_named_by_a_lone_surrogate_leaves_stats_working(server, client_factory):
    c = client_factory(server)
    reply = c.request('{"type":"ping","t":1,"\\ud800":1}')  # a legal JSON escape, not encodable as UTF-8
    assert reply["type"] == "error" and reply["field"] == "\ud800" and "unknown field" in reply["error"], reply
    status, _, body = server.get("/api/stats")  # raised HTTP 500 from then on
    assert status == 200 and json.loads(body)["counters"]["error:unknown_field"] >= 1
    c.ping()


def test_unknown_field_names_never_become_counters(server, client_factory):
    c = client_factory(server)
    before = server.stats()["counters"]
    names = [f"made-up-{i}-" + "x" * 1000 for i in range(20)]
    for name in names:
        reply = c.request(json.dumps({"type": "ping", "t": c.tick(1.0), name: 1}))
        assert reply["type"] == "error" and reply["field"] == name, reply["field"][:40]
    _, _, body = server.get("/api/stats")
    counters = json.loads(body)["counters"]
    assert set(counters) - set(before) <= {"errors", "error:unknown_field"}, sorted(counters)
    assert counters["error:unknown_field"] - before.get("error:unknown_field", 0) == len(names)
    assert len(body) < 4096, f"/api/stats is {len(body)} bytes"
    c.ping()


def test_page_and_static_files_are_served_locally(server):
    status, headers, body = server.get("/")
    html = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert 'id="roll"' in html and "/static/app.js" in html
    assert not re.search(r"(https?:)?//[a-z0-9]", html, re.I), "the page references a remote URL"
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/app.js" in refs and "/static/style.css" in refs
    modules = ["app.js"]
    seen = set()
    while modules:
        name = modules.pop()
        if name in seen:
            continue
        seen.add(name)
        status, headers, body = server.get(f"/static/{name}")
        assert status == 200 and "javascript" in headers["content-type"], (name, headers)
        js = body.decode()
        assert not re.search(r"https?://", js), f"{name} references a remote URL"
        modules += re.findall(r'from\s+"\./([\w.-]+\.js)"', js)
    assert {"app.js", "synth.js", "roll.js", "keys.js", "midi.js"} <= seen
    for ref in refs:
        if ref.startswith("/static/"):
            status, _, body = server.get(ref)
            assert status == 200 and body and not re.search(rb"https?://", body), ref
    with pytest.raises(Exception) as info:
        server.get("/static/no-such-file.js")
    assert getattr(info.value, "code", None) == 404
    stats = server.stats()
    assert {"model", "sessions", "max_sessions", "opened", "counters"} <= set(stats)


# ---------------------------------------------------------------- the cap, idle sessions

@pytest.fixture(scope="module")
def small_server(server_factory):
    s = server_factory("--max_sessions=2", "--idle_timeout_s=2", name="small")
    yield s
    s.stop()


def test_sessions_beyond_the_cap_are_refused(small_server, client_factory):
    srv = small_server
    assert srv.wait_stats(lambda s: s["sessions"] == 0)["sessions"] == 0
    a, b = client_factory(srv), client_factory(srv)
    assert a.hello["limits"]["idle_timeout_s"] == 2.0
    refused = client_factory(srv, expect_hello=False)
    msg = refused.recv(timeout_s=10)
    assert msg["type"] == "refused" and "2 sessions" in msg["reason"], msg
    with pytest.raises(ConnectionClosed) as info:
        refused.recv(timeout_s=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1013
    stats = srv.stats()
    assert stats["sessions"] == 2 and stats["counters"]["sessions_refused"] == 1
    a.close()
    assert srv.wait_stats(lambda s: s["sessions"] == 1)["sessions"] == 1
    b.ping()  # keeps b from idling out
    c = client_factory(srv)
    assert c.hello["type"] == "hello" and c.hello["session"] not in (a.hello["session"], b.hello["session"])
    c.ping()
    b.ping()
    b.close()
    c.close()
    assert srv.wait_stats(lambda s: s["sessions"] == 0)["sessions"] == 0


def test_an_idle_session_gets_bye(small_server, client_factory):
    srv = small_server
    assert srv.wait_stats(lambda s: s["sessions"] == 0)["sessions"] == 0
    before = srv.stats()["counters"].get("idle_closed", 0)
    silent, busy = client_factory(srv), client_factory(srv)
    t0 = time.perf_counter()
    bye = None
    while time.perf_counter() - t0 < 15 and bye is None:
        busy.ping()  # a session that talks is not idle
        try:
            bye = silent.recv(timeout_s=0.4)
        except TimeoutError:
            pass
    elapsed = time.perf_counter() - t0
    assert bye is not None and bye["type"] == "bye" and "idle" in bye["reason"], bye
    assert 1.5 <= elapsed <= 8, elapsed
    with pytest.raises(ConnectionClosed) as info:
        silent.recv(timeout_s=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000
    busy.ping()
    s = srv.wait_stats(lambda s: s["sessions"] == 1)
    assert s["sessions"] == 1 and s["counters"]["idle_closed"] == before + 1


# ---------------------------------------------------------------- zero-wait keys

def test_keys_added_one_by_one_join_the_open_press(server, client_factory):
    """A press that grows asks chord "any"; each add is one more note of the
    same press (same press number, pitches rising: no TIME between), until a
    release: then an add is a press of its own."""
    c = client_factory(server)
    before = server.stats()["counters"]
    first = c.request({"type": "press", "id": 1, "keys": [60], "velocity": 90, "t": 100.0, "grows": True})
    check_notes(first, [60], velocity=90)
    assert first["press"] == 1 and first["joined"] is False and first["control"]["chord"] == "*", first
    pitches = [first["notes"][0]["pitch"]]
    for i, key in enumerate([64, 55]):  # a key below the first still joins: its note goes above
        reply = c.request({"type": "add", "id": 2 + i, "keys": [key], "velocity": 70, "t": 110.0 + 5 * i})
        check_notes(reply, [key], velocity=70)
        if not reply["joined"]:  # only where the press's top note is the piano's top (rare: not scored further)
            assert pitches[-1] == PITCH_HI, (pitches, reply)
            return
        assert reply["press"] == 1 and reply["id"] == 2 + i and reply["control"] == first["control"], reply
        pitches.append(reply["notes"][0]["pitch"])
    assert pitches == sorted(pitches) and len(set(pitches)) == len(pitches), pitches
    c.release([60], t=200.0)
    late = c.request({"type": "add", "id": 9, "keys": [72], "velocity": 80, "t": 210.0})
    check_notes(late, [72])
    assert late["joined"] is False and late["press"] == 2 and late["control"]["chord"] == "*", late
    assert late["control"]["interval"] == "up-octave"  # from the open press's lowest key (55) to 72
    bad = c.request({"type": "add", "id": 10, "keys": 72, "velocity": 80, "t": 220.0})
    assert bad["type"] == "error" and bad["field"] == "keys" and bad["id"] == 10 and "list" in bad["error"], bad
    after = server.stats()["counters"]
    assert after["adds"] - before.get("adds", 0) == len(pitches) - 1 + 1
    assert after["adds_joined"] - before.get("adds_joined", 0) == len(pitches) - 1
