"""The instrument's websocket protocol (v1): JSON text frames, parsed and
validated into typed messages here, with no I/O.

Client -> server (times `t` are the client's clock in milliseconds, e.g.
performance.now(), never decreasing within a session):

    {"type": "press", "id": 17, "keys": [60, 64], "velocity": 90, "t": 1234.5}
                                            (a chord of known size: its control asks for 2 notes)
    {"type": "press", "id": 17, "keys": [60], "velocity": 90, "t": 1234.5, "grows": true}
                                            (zero-wait keys: more keys may join it, so its
                                             control asks chord "any")
    {"type": "add", "id": 18, "keys": [64], "velocity": 80, "t": 1250.0}
                                            (zero-wait keys: one more note of the open press each;
                                             a new press if a release came since)
    {"type": "release", "keys": [60], "t": 1400.0}
    {"type": "settings", "temperature": 0.9, "top_p": 0.95, "strict": true}   (any subset)
    {"type": "reset"}                       (a fresh context in the session's style)
    {"type": "reset", "style": "fiddle"}    (... in this style from now on: "any" or one of STYLES)
    {"type": "record", "action": "start" | "stop"}
    {"type": "ping", "t": 1234.5}

Every field is checked: a bad message raises ProtocolError naming the field
and the reason (the server answers it with an "error" message and the session
goes on). The server's own messages are built by the functions at the end.

A session's style (tokens/styles.py) is fixed for a context: the model reads
it at every position of the session's cache, so it changes only with a fresh
context, a reset carrying `style`. The hello message lists the model's styles
("styles", empty for a model trained without them) and the session's
("style"); the reset's answer says the style the fresh context plays in.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Union

from yoshimidi_jax.tokens.presses import MAX_KEYS  # noqa: F401  (keys one press may name; the page's too)
from yoshimidi_jax.tokens.styles import STYLES

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 4096
MAX_ID = 2**53 - 1  # a JavaScript safe integer
MAX_T_MS = 1e12  # ~31 years of performance.now()
TEMPERATURE_RANGE = (0.0, 10.0)
TOP_P_RANGE = (0.0, 1.0)
ANY_STYLE = "any"
STYLE_NAMES = (ANY_STYLE, *STYLES)  # what a reset's "style" may be (the server checks the model takes it)


class ProtocolError(ValueError):
    """A client message that cannot be used: `field` names what (None: the
    whole message), the text says why; `msg_id` is the message's id if it had one."""

    def __init__(self, field: str | None, why: str, msg_id: int | None = None):
        super().__init__(f"{field}: {why}" if field else why)
        self.field, self.why, self.msg_id = field, why, msg_id


def _json_name(name: str):
    """A message field whose JSON name is not the attribute's."""
    return dataclasses.field(metadata={"json": name})


@dataclasses.dataclass(frozen=True)
class PressMsg:
    keys: tuple[int, ...]  # distinct, sorted low to high
    velocity: int
    t_ms: float = _json_name("t")
    id: int | None = None
    # true: more keys will join it ("add"), so its control asks chord "any" (the size is not known
    # yet); false: a chord of len(keys) notes (an "add" may still join it)
    grows: bool = False


@dataclasses.dataclass(frozen=True)
class AddMsg:
    """Keys joining the session's open press (zero-wait keys): one more note
    each in the same press, no TIME between; where no press is open (a
    release came since, or none was played) the add is a new press."""

    keys: tuple[int, ...]  # distinct, sorted low to high
    velocity: int
    t_ms: float = _json_name("t")
    id: int | None = None


@dataclasses.dataclass(frozen=True)
class ReleaseMsg:
    keys: tuple[int, ...]
    t_ms: float = _json_name("t")
    id: int | None = None


@dataclasses.dataclass(frozen=True)
class SettingsMsg:
    temperature: float | None = None
    top_p: float | None = None
    strict: bool | None = None


@dataclasses.dataclass(frozen=True)
class ResetMsg:
    style: str | None = None  # one of STYLE_NAMES; None: the session's style so far
    id: int | None = None


@dataclasses.dataclass(frozen=True)
class RecordMsg:
    action: str  # "start" | "stop"
    id: int | None = None


@dataclasses.dataclass(frozen=True)
class PingMsg:
    t_ms: float = _json_name("t")


ClientMsg = Union[PressMsg, AddMsg, ReleaseMsg, SettingsMsg, ResetMsg, RecordMsg, PingMsg]
MESSAGE_TYPES = {"press": PressMsg, "add": AddMsg, "release": ReleaseMsg, "settings": SettingsMsg, "reset": ResetMsg,
                 "record": RecordMsg, "ping": PingMsg}


def json_fields(cls: type) -> set[str]:
    """The JSON names of a message class's fields ("t" for t_ms)."""
    return {f.metadata.get("json", f.name) for f in dataclasses.fields(cls)}


# every message may carry an id (echoed in the answer and in errors)
_FIELDS = {kind: {"type", "id"} | json_fields(cls) for kind, cls in MESSAGE_TYPES.items()}
# every field name of the protocol (an error's field may also be a name the client made up)
FIELD_NAMES = frozenset().union(*_FIELDS.values())


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _number(msg: dict, field: str, lo: float, hi: float, msg_id: int | None, integer: bool = False):
    """msg[field], required, a finite number (an integer if asked) in [lo, hi]."""
    kind = "an integer" if integer else "a number"
    if field not in msg:
        raise ProtocolError(field, f"missing ({kind} is required)", msg_id)
    v = msg[field]
    if not (_is_int(v) if integer else _is_number(v)):
        raise ProtocolError(field, f"{v!r} is not {'an integer' if integer else 'a finite number'}", msg_id)
    if not lo <= v <= hi:
        raise ProtocolError(field, f"{v!r} is out of range [{lo:g}, {hi:g}]", msg_id)
    return int(v) if integer else float(v)


def _keys(msg: dict, msg_id: int | None) -> tuple[int, ...]:
    if "keys" not in msg:
        raise ProtocolError("keys", "missing (a list of MIDI note numbers is required)", msg_id)
    keys = msg["keys"]
    if not isinstance(keys, list):
        raise ProtocolError("keys", f"{keys!r} is not a list", msg_id)
    if not 1 <= len(keys) <= MAX_KEYS:
        raise ProtocolError("keys", f"{len(keys)} keys: expected 1 to {MAX_KEYS}", msg_id)
    for k in keys:
        if not _is_int(k) or not 0 <= k <= 127:
            raise ProtocolError("keys", f"{k!r} is not a MIDI note number (an integer in [0, 127])", msg_id)
    if len(set(keys)) != len(keys):
        raise ProtocolError("keys", f"{keys} names a key twice", msg_id)
    return tuple(sorted(keys))


def decode_frame(frame: str | bytes) -> dict:
    """A websocket frame -> the JSON object it holds (before field checks)."""
    if isinstance(frame, (bytes, bytearray)):
        raise ProtocolError(None, f"binary frame ({len(frame)} bytes): messages are JSON text frames")
    if len(frame) > MAX_MESSAGE_BYTES or len(frame.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(None, f"message of {len(frame.encode('utf-8', 'surrogatepass'))} bytes: "
                                  f"at most {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = json.loads(frame)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ProtocolError(None, f"malformed JSON: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(None, f"expected a JSON object, got {type(msg).__name__}")
    return msg


def parse_message(frame: str | bytes) -> ClientMsg:
    """One client frame -> a typed message, or ProtocolError naming the field."""
    msg = decode_frame(frame)
    msg_id = None
    if "id" in msg:
        v = msg["id"]
        if not _is_int(v) or not 0 <= v <= MAX_ID:
            raise ProtocolError("id", f"{v!r} is not an integer in [0, {MAX_ID}]")
        msg_id = int(v)
    kind = msg.get("type")
    if kind is None:
        raise ProtocolError("type", f"missing: one of {sorted(_FIELDS)}", msg_id)
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ProtocolError("type", f"unknown message type {kind!r}: one of {sorted(_FIELDS)}", msg_id)
    unknown = sorted(set(msg) - _FIELDS[kind])
    if unknown:
        raise ProtocolError(unknown[0], f"unknown field for a {kind} message (fields: {sorted(_FIELDS[kind])})",
                            msg_id)
    if kind == "press":
        keys = _keys(msg, msg_id)
        velocity = _number(msg, "velocity", 1, 127, msg_id, integer=True)
        grows = msg.get("grows", False)
        if not isinstance(grows, bool):
            raise ProtocolError("grows", f"{grows!r} is not true or false", msg_id)
        return PressMsg(keys, velocity, _number(msg, "t", 0.0, MAX_T_MS, msg_id), msg_id, grows)
    if kind == "add":
        keys = _keys(msg, msg_id)
        velocity = _number(msg, "velocity", 1, 127, msg_id, integer=True)
        return AddMsg(keys, velocity, _number(msg, "t", 0.0, MAX_T_MS, msg_id), msg_id)
    if kind == "release":
        return ReleaseMsg(_keys(msg, msg_id), _number(msg, "t", 0.0, MAX_T_MS, msg_id), msg_id)
    if kind == "settings":
        values = {}
        for field, (lo, hi) in (("temperature", TEMPERATURE_RANGE), ("top_p", TOP_P_RANGE)):
            if field in msg:
                values[field] = _number(msg, field, lo, hi, msg_id)
        if "strict" in msg:
            if not isinstance(msg["strict"], bool):
                raise ProtocolError("strict", f"{msg['strict']!r} is not true or false", msg_id)
            values["strict"] = msg["strict"]
        if not values:
            raise ProtocolError(None, "a settings message needs temperature, top_p or strict", msg_id)
        return SettingsMsg(**values)
    if kind == "reset":
        style = None
        if "style" in msg:
            style = msg["style"]
            if not isinstance(style, str) or style not in STYLE_NAMES:
                raise ProtocolError("style", f"{style!r} is not a style: one of {', '.join(STYLE_NAMES)}", msg_id)
        return ResetMsg(style, msg_id)
    if kind == "record":
        action = msg.get("action")
        if action not in ("start", "stop"):
            raise ProtocolError("action", f"{action!r}: expected \"start\" or \"stop\"", msg_id)
        return RecordMsg(action, msg_id)
    return PingMsg(_number(msg, "t", 0.0, MAX_T_MS, msg_id))


# -- the server's messages ----------------------------------------------------

def error_message(field: str | None, why: str, msg_id: int | None = None) -> dict:
    return {"type": "error", "field": field, "error": why, "id": msg_id}


def dumps(msg: dict) -> str:
    return json.dumps(msg, separators=(",", ":"))
