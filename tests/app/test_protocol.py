"""The play protocol's parser (app/protocol.py) and the websocket's Origin
check: pure functions, no server.

BAD_MESSAGES is also sent over a real socket by test_server.py."""

from __future__ import annotations

import json
import typing

import pytest
from starlette.datastructures import Headers

from yoshimidi_jax.app.protocol import (MAX_KEYS, MAX_MESSAGE_BYTES, MESSAGE_TYPES, STYLE_NAMES, AddMsg, ClientMsg,
                                        PingMsg,
                                        PressMsg, ProtocolError, RecordMsg, ReleaseMsg, ResetMsg, SettingsMsg,
                                        json_fields, parse_message)
from yoshimidi_jax.app.server import origin_allowed
from yoshimidi_jax.tokens.styles import STYLES


def j(**msg) -> str:
    return json.dumps(msg)


PRESS = {"type": "press", "id": 7, "keys": [60, 64], "velocity": 90, "t": 1234.5}


def press(**changes) -> str:
    """A valid press (id 7) with some fields changed; a value of ... removes the field."""
    msg = {**PRESS, **changes}
    return json.dumps({k: v for k, v in msg.items() if v is not ...})


ADD = {"type": "add", "id": 8, "keys": [64], "velocity": 80, "t": 1250.0}


def add(**changes) -> str:
    """A valid add (id 8) with some fields changed; a value of ... removes the field."""
    msg = {**ADD, **changes}
    return json.dumps({k: v for k, v in msg.items() if v is not ...})


def padded_ping(n_bytes: int) -> str:
    """A valid ping frame of exactly n_bytes (JSON whitespace padding)."""
    head = '{"type":"ping","t":1.0'
    return head + " " * (n_bytes - len(head) - 1) + "}"


assert len(padded_ping(MAX_MESSAGE_BYTES).encode()) == MAX_MESSAGE_BYTES

# (name, frame, the field the error names (None: the whole message), the id the error carries)
BAD_MESSAGES = [
    ("malformed JSON", '{"type": "press", "keys": [60', None, None),
    ("not JSON at all", "hello", None, None),
    ("JSON array", "[1, 2]", None, None),
    ("JSON string", '"press"', None, None),
    ("JSON null", "null", None, None),
    ("JSON number", "42", None, None),
    ("binary frame", json.dumps(PRESS).encode(), None, None),
    ("oversized frame", padded_ping(MAX_MESSAGE_BYTES + 1), None, None),
    ("oversized in UTF-8 bytes", '{"type":"ping","t":1,"x":"' + "é" * 2100 + '"}', None, None),
    ("unknown type", j(type="jump", id=3), "type", 3),
    ("type not a string", j(type=5), "type", None),
    ("missing type", j(keys=[60], velocity=80, t=1.0, id=4), "type", 4),
    ("unknown extra field", press(extra=1), "extra", 7),
    ("unknown field on reset", j(type="reset", keys=[60]), "keys", None),
    ("keys missing", press(keys=...), "keys", 7),
    ("keys not a list", press(keys=60), "keys", 7),
    ("keys a string", press(keys="60"), "keys", 7),
    ("key 128", press(keys=[60, 128]), "keys", 7),
    ("key -1", press(keys=[-1]), "keys", 7),
    ('key "60"', press(keys=["60"]), "keys", 7),
    ("key 60.0", press(keys=[60.0]), "keys", 7),
    ("key true (bool as int)", press(keys=[True]), "keys", 7),
    ("duplicate keys", press(keys=[60, 64, 60]), "keys", 7),
    ("no keys", press(keys=[]), "keys", 7),
    ("11 keys", press(keys=list(range(40, 40 + MAX_KEYS + 1))), "keys", 7),
    ("velocity missing", press(velocity=...), "velocity", 7),
    ("velocity 0", press(velocity=0), "velocity", 7),
    ("velocity 128", press(velocity=128), "velocity", 7),
    ("velocity 1.5", press(velocity=1.5), "velocity", 7),
    ("velocity true", press(velocity=True), "velocity", 7),
    ("velocity null", press(velocity=None), "velocity", 7),
    ("t negative", press(t=-1.0), "t", 7),
    ("t NaN", press(t=float("nan")), "t", 7),
    ("t Infinity", press(t=float("inf")), "t", 7),
    ('t "x"', press(t="x"), "t", 7),
    ("t missing", press(t=...), "t", 7),
    ('press grows "yes"', press(grows="yes"), "grows", 7),
    ("press grows 1", press(grows=1), "grows", 7),
    ("press grows null", press(grows=None), "grows", 7),
    ("add keys missing", add(keys=...), "keys", 8),
    ("add keys not a list", add(keys=64), "keys", 8),
    ("add key 128", add(keys=[128]), "keys", 8),
    ("add no keys", add(keys=[]), "keys", 8),
    ("add duplicate keys", add(keys=[64, 64]), "keys", 8),
    ("add velocity missing", add(velocity=...), "velocity", 8),
    ("add velocity 0", add(velocity=0), "velocity", 8),
    ("add t missing", add(t=...), "t", 8),
    ("add t negative", add(t=-5), "t", 8),
    ("add with grows (a press's field)", add(grows=True), "grows", 8),
    ("add with a made-up field", add(join=17), "join", 8),
    ("release keys not a list", j(type="release", keys=60, t=1.0), "keys", None),
    ("release t missing", j(type="release", keys=[60]), "t", None),
    ("ping t missing", j(type="ping", id=9), "t", 9),
    ("ping t a string", j(type="ping", t="now"), "t", None),
    ("temperature 11", j(type="settings", id=5, temperature=11), "temperature", 5),
    ("temperature -0.1", j(type="settings", temperature=-0.1), "temperature", None),
    ("temperature a string", j(type="settings", temperature="hot"), "temperature", None),
    ("top_p 1.5", j(type="settings", top_p=1.5), "top_p", None),
    ("top_p true", j(type="settings", top_p=True), "top_p", None),
    ('strict "yes"', j(type="settings", id=6, strict="yes"), "strict", 6),
    ("strict 1", j(type="settings", strict=1), "strict", None),
    ("settings with nothing to set", j(type="settings", id=8), None, 8),
    ('style "jazz"', j(type="reset", id=10, style="jazz"), "style", 10),
    ('style "Fiddle" (names are lower case)', j(type="reset", style="Fiddle"), "style", None),
    ("style 3 (a name, not an index)", j(type="reset", style=3), "style", None),
    ("style null", j(type="reset", style=None), "style", None),
    ("style on a settings message", j(type="settings", style="fiddle", temperature=1), "style", None),
    ('record action "pause"', j(type="record", id=2, action="pause"), "action", 2),
    ("record action missing", j(type="record"), "action", None),
    ("id -1", press(id=-1), "id", None),
    ('id "a"', press(id="a"), "id", None),
    ("id 1.5", press(id=1.5), "id", None),
    ("id true", press(id=True), "id", None),
    ("id beyond a JS safe integer", press(id=2**53), "id", None),
]


@pytest.mark.parametrize("name, frame, field, msg_id", BAD_MESSAGES, ids=[row[0] for row in BAD_MESSAGES])
def test_rejects_bad_messages_naming_the_field(name, frame, field, msg_id):
    with pytest.raises(ProtocolError) as info:
        parse_message(frame)
    e = info.value
    assert e.field == field, f"{name}: {e}"
    assert e.msg_id == msg_id, f"{name}: {e}"
    assert e.why and isinstance(e.why, str)


def test_bad_messages_table_covers_every_field():
    """Every field of every message, as the protocol's message classes name
    them, has a bad-message case (so has "type" and the whole message, None):
    a new field without one fails here."""
    assert set(MESSAGE_TYPES.values()) == set(typing.get_args(ClientMsg))
    fields = {None, "type"}.union(*(json_fields(cls) for cls in MESSAGE_TYPES.values()))
    assert {"keys", "velocity", "t", "id", "temperature", "top_p", "strict", "action", "style"} <= fields  # read
    named = {row[2] for row in BAD_MESSAGES}
    assert fields <= named, f"fields with no bad-message case: {sorted(fields - named, key=str)}"


def test_a_bad_style_names_the_allowed_ones():
    with pytest.raises(ProtocolError) as info:
        parse_message(j(type="reset", style="jazz"))
    assert info.value.field == "style"
    assert all(name in info.value.why for name in ("any", *STYLES)), info.value.why
    assert STYLE_NAMES == ("any", *STYLES)


def test_error_carries_the_id_of_a_message_with_a_valid_id():
    with pytest.raises(ProtocolError) as info:
        parse_message(press(id=12345, velocity=300))
    assert (info.value.field, info.value.msg_id) == ("velocity", 12345)
    assert "300" in str(info.value)
    with pytest.raises(ProtocolError) as info:  # an invalid id is not echoed
        parse_message(press(id="12345", velocity=300))
    assert (info.value.field, info.value.msg_id) == ("id", None)


GOOD_MESSAGES = [
    ("press", json.dumps(PRESS), PressMsg(keys=(60, 64), velocity=90, t_ms=1234.5, id=7)),
    ("press: keys sorted, no id", j(type="press", keys=[67, 60, 64], velocity=1, t=0),
     PressMsg(keys=(60, 64, 67), velocity=1, t_ms=0.0, id=None)),
    ("press: extremes", j(type="press", id=0, keys=[127, 0], velocity=127, t=1e9),
     PressMsg(keys=(0, 127), velocity=127, t_ms=1e9, id=0)),
    ("press: 10 keys", j(type="press", keys=list(range(50, 60)), velocity=64, t=5),
     PressMsg(keys=tuple(range(50, 60)), velocity=64, t_ms=5.0)),
    ("press that grows", press(keys=[60], grows=True),
     PressMsg(keys=(60,), velocity=90, t_ms=1234.5, id=7, grows=True)),
    ("press grows false", press(grows=False), PressMsg(keys=(60, 64), velocity=90, t_ms=1234.5, id=7)),
    ("add", json.dumps(ADD), AddMsg(keys=(64,), velocity=80, t_ms=1250.0, id=8)),
    ("add: two keys, no id", j(type="add", keys=[67, 64], velocity=1, t=0), AddMsg(keys=(64, 67), velocity=1, t_ms=0.0)),
    ("release", j(type="release", keys=[60], t=1400.0), ReleaseMsg(keys=(60,), t_ms=1400.0)),
    ("release with an id", j(type="release", id=3, keys=[64, 60], t=1), ReleaseMsg(keys=(60, 64), t_ms=1.0, id=3)),
    ("settings: all three", j(type="settings", temperature=0.9, top_p=0.95, strict=True),
     SettingsMsg(temperature=0.9, top_p=0.95, strict=True)),
    ("settings: strict only", j(type="settings", strict=False), SettingsMsg(strict=False)),
    ("settings: greedy, range ends", j(type="settings", temperature=0, top_p=1),
     SettingsMsg(temperature=0.0, top_p=1.0)),
    ("settings: temperature 10", j(type="settings", temperature=10), SettingsMsg(temperature=10.0)),
    ("reset", j(type="reset"), ResetMsg()),
    ("reset in a style", j(type="reset", id=4, style="fiddle"), ResetMsg(style="fiddle", id=4)),
    *[(f"reset in {name}", j(type="reset", style=name), ResetMsg(style=name)) for name in STYLE_NAMES],
    ("record start", j(type="record", action="start"), RecordMsg("start")),
    ("record stop", j(type="record", action="stop", id=4), RecordMsg("stop", id=4)),
    ("ping", j(type="ping", t=1234.5), PingMsg(1234.5)),
    ("ping of exactly the size limit", padded_ping(MAX_MESSAGE_BYTES), PingMsg(1.0)),
]


@pytest.mark.parametrize("name, frame, expected", GOOD_MESSAGES, ids=[row[0] for row in GOOD_MESSAGES])
def test_accepts_valid_messages(name, frame, expected):
    msg = parse_message(frame)
    assert type(msg) is type(expected)
    assert msg == expected


def test_parsed_values_have_the_right_types():
    msg = parse_message(j(type="press", keys=[60], velocity=80, t=12))
    assert isinstance(msg.t_ms, float) and isinstance(msg.keys, tuple) and isinstance(msg.velocity, int)
    s = parse_message(j(type="settings", temperature=1))
    assert isinstance(s.temperature, float) and s.top_p is None and s.strict is None


# -- the websocket's Origin check -----------------------------------------------------

HOST = "127.0.0.1:8000"


@pytest.mark.parametrize("headers, extra, allowed", [
    ({"host": HOST, "origin": "http://127.0.0.1:8000"}, (), True),
    ({"host": HOST, "origin": "http://127.0.0.1:8000/"}, (), True),
    ({"host": HOST, "origin": "https://127.0.0.1:8000"}, (), True),
    ({"host": "Example.org:8080", "origin": "http://example.ORG:8080"}, (), True),
    ({"host": HOST}, (), True),  # no Origin: not a browser
    ({"host": HOST, "origin": "http://evil.example"}, (), False),
    ({"host": HOST, "origin": "http://evil.example:8000"}, (), False),
    ({"host": HOST, "origin": "http://127.0.0.1:9000"}, (), False),
    ({"host": HOST, "origin": "http://127.0.0.1"}, (), False),
    ({"host": HOST, "origin": "null"}, (), False),
    ({"host": HOST, "origin": "ftp://127.0.0.1:8000"}, (), False),
    ({"origin": "http://127.0.0.1:8000"}, (), False),  # no Host to compare with
    ({"host": HOST, "origin": "http://localhost:3000"}, ("http://localhost:3000",), True),
    ({"host": HOST, "origin": "http://localhost:3000"}, ("http://localhost:3000/",), True),
    ({"host": HOST, "origin": "http://localhost:3001"}, ("http://localhost:3000",), False),
], ids=["same", "same-slash", "same-https", "same-case", "absent", "other-host", "other-host-same-port",
        "other-port", "no-port", "null", "ftp", "no-host", "extra", "extra-slash", "not-extra"])
def test_origin_allowed(headers, extra, allowed):
    assert origin_allowed(Headers(headers), extra) is allowed
    assert origin_allowed(headers, extra) is allowed  # a plain (lower-case) dict works too
