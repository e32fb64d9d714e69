"""The instrument's web server (starlette): the page, and one websocket per tab.

    app = create_app(player, model_info, ServerOptions(max_sessions=64))
    uvicorn.run(app, host="127.0.0.1", port=8000)       # experiments/serve.py does this

Each websocket is a Session (app/session.py) with its own decode state,
created on connect and freed on disconnect or after idle_timeout_s without a
message; beyond max_sessions the next one gets a "refused" message. Each
session is a row of one BatchPlayer (play/batch.py); one decode thread
(app/batcher.py) decodes the presses and releases of every session waiting
at that moment as one batch, so the event loop stays free and a busy server
makes bigger, cheaper batches. A session has at most one message in flight. A message
is checked (app/protocol.py) and rate-limited (a token bucket per session:
one "rate" error per flood, the excess dropped) before it costs any decoding;
a client that keeps flooding after its rate error (ServerOptions.flood_close_after
more messages dropped in the same flood) is disconnected: a "bye" saying why,
then websocket close code 1008 with the reason, counted as flood_closed, so the
event loop spends no more time on it; for flood_cooldown_s after that, new
sessions from its address start with an empty bucket (the rate, no burst:
reconnecting buys no burst of decoded presses; app/rate_limit.py FloodMemory).
The websocket takes connections whose Origin is the page's own (a page on
another site cannot drive the instrument); clients that send no Origin
(not browsers: scripts, benchmarks) are let in. The page, the API and the
websocket answer only a Host header naming this server (app/hosts.py:
loopback, the address the connection came in on, ServerOptions.hosts,
--allow_origin), so a page that rebinds its own DNS name to 127.0.0.1 gets
nothing (HTTP 403 saying why).
The counters in /api/stats are a fixed set of names: nothing a client sends
becomes a counter's name.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import gc
import logging
import mimetypes
import os
import secrets
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import jax
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from yoshimidi_jax.app import hosts, protocol
from yoshimidi_jax.app.protocol import (AddMsg, PingMsg, PressMsg, ProtocolError, RecordMsg, ReleaseMsg, ResetMsg,
                                        SettingsMsg)
from yoshimidi_jax.app.batcher import Batcher, KeepWarm
from yoshimidi_jax.app.rate_limit import FloodMemory, bucket_for
from yoshimidi_jax.app.session import Session
from yoshimidi_jax.play.batch import BatchPlayer, FlushJob
from yoshimidi_jax.play.press import MAX_NOTES
from yoshimidi_jax.play.press import PlaySettings
from yoshimidi_jax.tokens.controls import ControlError
from yoshimidi_jax.tokens.styles import NO_STYLE, STYLES, check_style, model_styles

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# The page's soundfont (static/vendor/soundfont/): binary, not the text/plain
# StaticFiles would guess for an unknown suffix.
mimetypes.add_type("audio/x-soundfont", ".sf2")
mimetypes.add_type("audio/x-soundfont", ".sf3")
log = logging.getLogger("yoshimidi.serve")

CLOSE_POLICY = 1008  # a websocket close code: origin not allowed, or a client that kept flooding
CLOSE_TRY_LATER = 1013  # server full


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    max_sessions: int = 64
    idle_timeout_s: float = 600.0
    messages_per_s: float = 60.0  # per session, sustained
    burst: int = 120  # per session
    flood_close_after: int = 2000  # messages dropped in one flood after its rate error: then the socket closes
    flood_cooldown_s: float = 10.0  # an address closed for flooding: its new sessions start with no burst this long
    seed: int = 0  # sessions' PRNG keys are fold_in(key(seed), session number)
    settings: PlaySettings = PlaySettings(temperature=1.0, top_p=0.95)  # a new session's
    style: int = NO_STYLE  # a new session's style (tokens/styles.py); a reset may change it
    allowed_origins: tuple[str, ...] = ()  # more origins (scheme://host:port) besides the page's own
    hosts: tuple[str, ...] = ()  # names the Host header may carry besides loopback's (--host)
    keep_warm_ms: float = 5.0  # while someone plays, a decode thread idle this long calls the model (0: never)

    def __post_init__(self) -> None:
        for name in ("max_sessions", "idle_timeout_s", "messages_per_s", "burst", "flood_close_after"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
        if not self.flood_cooldown_s >= 0:
            raise ValueError(f"flood_cooldown_s={self.flood_cooldown_s!r} must be >= 0")
        if not 0 <= self.keep_warm_ms <= 1000:
            raise ValueError(f"keep_warm_ms={self.keep_warm_ms!r} must be a time between 0 (never) and 1000 ms")


def origin_allowed(headers, extra: tuple[str, ...] = ()) -> bool:
    """A websocket handshake's Origin is the page's own (same host:port as the
    Host header), one of `extra`, or absent (a non-browser client)."""
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin.rstrip("/") in {o.rstrip("/") for o in extra}:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == headers.get("host", "").lower()


def error_counter(field: str | None) -> str:
    """The counter an error about `field` is counted under: "error:<field>"
    for the protocol's own field names ("error:None": the whole message); a
    name the client made up is "error:unknown_field", so the counters stay a
    small fixed set whatever clients send."""
    if field is not None and field not in protocol.FIELD_NAMES:
        return "error:unknown_field"
    return f"error:{field}"


def request_host_refusal(scope: dict, headers, options: ServerOptions) -> str | None:
    """Why an HTTP or websocket request (an ASGI scope and its headers) is
    refused for its Host header (app/hosts.py); None if it may go on."""
    local_address, port = (scope.get("server") or (None, None))[:2]
    default_port = hosts.DEFAULT_PORTS.get(scope.get("scheme", "http"), 80)
    allowed = hosts.allowed_hosts(port or default_port, options.hosts, options.allowed_origins, local_address)
    return hosts.host_refusal(headers.get("host"), allowed, default_port)


class Hub:
    """The server's shared state: live sessions, their slots in the batch
    player, counters, and the decode thread (app/batcher.py)."""

    def __init__(self, players: list[BatchPlayer], model_info: dict, options: ServerOptions):
        if sum(p.num_slots for p in players) < options.max_sessions:
            raise ValueError(f"BatchPlayers of {[p.num_slots for p in players]} slots cannot hold "
                             f"{options.max_sessions} sessions")
        self.players, self.model_info, self.options = players, model_info, options
        self.styles = model_styles(players[0].model.num_styles)  # the styles the model takes
        check_style(options.style, players[0].model.num_styles)
        self.sessions: dict[str, Session] = {}
        # (shard, slot), interleaved: sessions spread over the decode threads
        slots = [(i, s) for s in range(max(p.num_slots for p in players)) for i, p in enumerate(players)
                 if s < p.num_slots]
        self.free_slots = collections.deque(slots[: options.max_sessions])
        self.counters: collections.Counter = collections.Counter()
        self.flood_memory = FloodMemory(options.flood_cooldown_s)  # addresses closed for flooding lately
        self.opened = 0
        self.boot = secrets.token_hex(3)  # session ids differ across restarts
        self.keep_warm = KeepWarm(options.keep_warm_ms / 1000.0)  # shared: one call warms every thread's weights
        self.batchers = [Batcher(p, self.keep_warm) for p in players]  # one decode thread per shard
        self._base_key = jax.random.key(options.seed)

    def info(self) -> dict:
        return {"model": self.model_info, "styles": list(self.styles), "sessions": len(self.sessions),
                "max_sessions": self.options.max_sessions}

    def stats(self) -> dict:
        bs = self.batchers
        return {**self.info(), "opened": self.opened, "counters": dict(self.counters), "decode_threads": len(bs),
                "batches": sum(b.batches for b in bs), "jobs": sum(b.jobs for b in bs),
                "decode_busy_s": round(sum(b.busy_s for b in bs), 3), "refills_ahead": sum(b.refills for b in bs),
                # cache refills run in each decode thread's refill thread, outside every batch: a press waits
                # for no other session's refill (refills_in_press: refills inside a batch, 0 when all is well)
                "refill_s": round(sum(b.refill_s for b in bs), 3), "refill_waits": sum(b.refill_waits for b in bs),
                "refills_in_press": sum(p.refills_in_batch for p in self.players),
                # calls made only to keep the weights in the CPU's caches while someone plays (--keep_warm_ms)
                "keep_warm_ms": self.options.keep_warm_ms, "keep_warm_calls": self.keep_warm.calls,
                "keep_warm_s": round(self.keep_warm.busy_s, 3),
                "kv_bytes_per_session": self.players[0].kv_bytes_per_slot,
                # objects out of the garbage collector's reach (experiments/serve.py freeze_heap)
                "gc_frozen": gc.get_freeze_count(),
                # how long a thread may hold Python's lock (experiments/serve.py --gil_switch_ms)
                "gil_switch_ms": round(sys.getswitchinterval() * 1000.0, 3)}

    def hello(self, session: Session) -> dict:
        o = self.options
        return {
            "type": "hello", "protocol": protocol.PROTOCOL_VERSION, "session": session.id,
            "model": self.model_info, "settings": session.settings_dict(),
            "styles": list(self.styles), "style": session.style_name,
            "limits": {"max_message_bytes": protocol.MAX_MESSAGE_BYTES, "messages_per_s": o.messages_per_s,
                       "burst": o.burst, "max_keys": protocol.MAX_KEYS, "max_notes_per_press": MAX_NOTES,
                       "idle_timeout_s": o.idle_timeout_s},
        }

    def style_index(self, name: str, msg_id: int | None = None) -> int:
        """A reset's style name (protocol.STYLE_NAMES) -> its index, where the
        model takes it; else a ProtocolError naming the field "style"."""
        if name == protocol.ANY_STYLE:
            return NO_STYLE
        if name not in self.styles:
            why = (f"{name!r}: this model was trained without styles (it takes \"any\" only)" if not self.styles
                   else f"{name!r} is not one of this model's styles: {', '.join((protocol.ANY_STYLE, *self.styles))}")
            raise ProtocolError("style", why, msg_id)
        return STYLES.index(name)

    async def open_session(self) -> Session:
        number = self.opened
        self.opened += 1
        shard, slot = self.free_slots.popleft()
        key = jax.random.fold_in(self._base_key, number)
        session = Session(f"{self.boot}-{number}", shard, slot, key, self.options.settings, self.options.style)
        self.sessions[session.id] = session
        try:
            await self.batchers[shard].submit(session.new_context())
        except BaseException:
            self.close_session(session)
            raise
        return session

    def close_session(self, session: Session | None) -> None:
        if session is not None and self.sessions.pop(session.id, None) is not None:
            self.players[session.shard].close(session.slot)
            self.free_slots.append((session.shard, session.slot))
            self.counters["sessions_closed"] += 1

    async def handle(self, session: Session, msg: protocol.ClientMsg) -> dict | None:
        """One checked message -> the reply (None: no reply)."""
        if isinstance(msg, PressMsg):
            self.counters["presses"] += 1
            job = session.plan_press(msg)
            t0 = time.perf_counter()
            notes = await self.batchers[session.shard].submit(job)
            return session.finish_press(msg, notes, (time.perf_counter() - t0) * 1e3)
        if isinstance(msg, AddMsg):  # zero-wait keys: one more note of the open press each
            self.counters["adds"] += 1
            job = session.plan_add(msg)
            t0 = time.perf_counter()
            notes = await self.batchers[session.shard].submit(job)
            self.counters["adds_joined"] += notes.joined
            return session.finish_add(msg, notes, (time.perf_counter() - t0) * 1e3)
        if isinstance(msg, ReleaseMsg):
            self.counters["releases"] += 1
            ending = session.plan_release(msg)
            # the release's tokens wait for the session's next press (no decode now)
            if ending is not None and self.players[session.shard].release(session.slot, *ending):
                await self.batchers[session.shard].submit(FlushJob(session.slot))
            return None
        if isinstance(msg, SettingsMsg):
            return session.apply_settings(msg)
        if isinstance(msg, ResetMsg):
            style = None if msg.style is None else self.style_index(msg.style, msg.id)
            await self.batchers[session.shard].submit(session.plan_reset(style))
            return {"type": "reset", "style": session.style_name}
        if isinstance(msg, RecordMsg):
            return session.start_recording() if msg.action == "start" else session.stop_recording(msg.id)
        if isinstance(msg, PingMsg):
            return {"type": "pong", "t": msg.t_ms}
        raise TypeError(f"unhandled message {msg!r}")


async def _send(ws: WebSocket, msg: dict) -> None:
    await ws.send_text(protocol.dumps(msg))


async def refuse_socket_host(hub: Hub, ws: WebSocket, why: str) -> None:
    """Refuses a websocket handshake for its Host header: HTTP 403 with the
    reason as the body (a plain close where the server cannot send one)."""
    hub.counters["host_refused"] += 1
    log.warning("websocket refused: %s (origin %r)", why, ws.headers.get("origin"))
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(PlainTextResponse(why, status_code=403))
    else:
        await ws.close(code=CLOSE_POLICY, reason=why[:120])


def client_address(ws: WebSocket) -> str | None:
    """The address a websocket came from (None where the server cannot tell)."""
    return ws.client.host if ws.client is not None else None


async def close_flooder(hub: Hub, ws: WebSocket, session: Session, dropped: int) -> None:
    """Disconnects a client that kept flooding after its rate error: a "bye"
    saying why, then close code 1008 with the reason (at most 123 bytes)."""
    hub.counters["flood_closed"] += 1
    hub.flood_memory.closed(client_address(ws), time.monotonic())
    reason = (f"flooding: {dropped} messages dropped after the rate error "
              f"(more than {hub.options.messages_per_s:g} messages/s)")
    log.warning("session %s closed: %s", session.id, reason)
    await _send(ws, {"type": "bye", "reason": reason})
    await ws.close(code=CLOSE_POLICY, reason=reason[:120])


async def serve_socket(hub: Hub, ws: WebSocket) -> None:
    why = request_host_refusal(ws.scope, ws.headers, hub.options)
    if why is not None:
        await refuse_socket_host(hub, ws, why)
        return
    if not origin_allowed(ws.headers, hub.options.allowed_origins):
        hub.counters["origin_refused"] += 1
        log.warning("websocket from origin %r refused (host %r)", ws.headers.get("origin"), ws.headers.get("host"))
        await ws.close(code=CLOSE_POLICY)  # before accept: the handshake gets HTTP 403
        return
    await ws.accept()
    if len(hub.sessions) >= hub.options.max_sessions:
        hub.counters["sessions_refused"] += 1
        await _send(ws, {"type": "refused",
                         "reason": f"server is full: {hub.options.max_sessions} sessions (--max_sessions)"})
        await ws.close(code=CLOSE_TRY_LATER)
        return
    session = None
    try:
        session = await hub.open_session()
        await _send(ws, hub.hello(session))
        now = time.monotonic()
        cooling = hub.flood_memory.cooling(client_address(ws), now)
        hub.counters["burst_withheld"] += cooling  # its address flooded lately: the rate, no burst
        bucket = bucket_for(hub.options.messages_per_s, hub.options.burst, cooling, now)
        warned = False  # one "rate" error per flood
        dropped = 0  # messages dropped in this flood
        while True:
            try:
                event = await asyncio.wait_for(ws.receive(), timeout=hub.options.idle_timeout_s)
            except asyncio.TimeoutError:
                hub.counters["idle_closed"] += 1
                await _send(ws, {"type": "bye", "reason": f"idle for {hub.options.idle_timeout_s:g} s"})
                await ws.close(code=1000)
                return
            if event["type"] == "websocket.disconnect":
                return
            frame = event.get("text") if event.get("text") is not None else event.get("bytes", b"")
            if not bucket.take(time.monotonic()):
                hub.counters["rate_limited"] += 1
                dropped += 1
                if not warned:
                    warned = True
                    await _send(ws, protocol.error_message(
                        "rate", f"more than {hub.options.messages_per_s:g} messages/s (bursts of "
                                f"{hub.options.burst}): messages are dropped until the rate falls"))
                elif dropped > hub.options.flood_close_after:  # it keeps flooding: not worth a core
                    await close_flooder(hub, ws, session, dropped)
                    return
                continue
            if bucket.tokens >= hub.options.burst / 2:  # calm for a while: a new flood gets a new error
                warned, dropped = False, 0
            msg = None
            try:
                msg = protocol.parse_message(frame)
                reply = await hub.handle(session, msg)
            except ProtocolError as e:
                hub.counters["errors"] += 1
                hub.counters[error_counter(e.field)] += 1
                await _send(ws, protocol.error_message(e.field, e.why, e.msg_id))
                continue
            except ControlError as e:  # a value the play API refuses (its message names it)
                hub.counters["errors"] += 1
                await _send(ws, protocol.error_message(None, str(e), getattr(msg, "id", None)))
                continue
            except Exception as e:  # noqa: BLE001  a bug must not end the session: say so, log it
                hub.counters["internal_errors"] += 1
                log.exception("session %s: %r failed", session.id, msg)
                await _send(ws, protocol.error_message(None, f"internal error: {type(e).__name__}: {e}",
                                                       getattr(msg, "id", None)))
                continue
            if reply is not None:
                await _send(ws, reply)
    except (WebSocketDisconnect, RuntimeError) as e:  # the client went away mid-reply
        hub.counters["disconnected_mid_reply"] += 1
        log.info("session %s: client gone (%s)", session.id if session else "-", type(e).__name__)
    finally:
        hub.close_session(session)


def create_app(players: BatchPlayer | list[BatchPlayer], model_info: dict,
               options: ServerOptions = ServerOptions()) -> Starlette:
    """players: one BatchPlayer per decode thread (their slots hold the sessions)."""
    hub = Hub(players if isinstance(players, list) else [players], model_info, options)

    def host_checked(endpoint):
        """An HTTP endpoint that answers only an allowed Host (HTTP 403 saying why)."""
        async def checked(request):
            why = request_host_refusal(request.scope, request.headers, hub.options)
            if why is not None:
                hub.counters["host_refused"] += 1
                log.warning("HTTP %s refused: %s", request.url.path, why)
                return PlainTextResponse(why, status_code=403)
            return await endpoint(request)
        return checked

    @host_checked
    async def index(request):
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-cache"})

    @host_checked
    async def info(request):
        return JSONResponse(hub.info())

    @host_checked
    async def stats(request):
        return JSONResponse(hub.stats())

    async def socket(ws: WebSocket):
        await serve_socket(hub, ws)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        for b in hub.batchers:
            b.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/info", info),
            Route("/api/stats", stats),
            WebSocketRoute("/ws", socket),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    return app


def model_info(workdir: str | None, step: int | None, params: Any, config) -> dict:
    n = sum(int(x.size) for x in jax.tree.leaves(params))
    name = os.path.basename(os.path.normpath(workdir)) if workdir else "random-init"
    return {"name": name, "workdir": workdir, "step": step, "params": n,
            "layers": int(config.model.num_layers), "d_model": int(config.model.d_model),
            "context": int(config.model.max_len)}
