"""Websocket frames read fairly: a burst from one connection is parsed a slice
at a time, so one client's flood never holds the event loop.

A socket read hands the protocol up to 256 KB at once (asyncio's and uvloop's
read size): from a client sending as fast as it can, ~3,000 frames that
uvicorn's websocket protocol parses and queues in one callback, 30-60 ms
during which no other session's message is read or answered. Three such
clients made a neighbour's press wait up to ~250 ms
(`python -m benchmarks.serve_latency --flood=3`). Here a read larger than
SLICE_BYTES is parsed SLICE_BYTES now and the rest in later turns of the
event loop (call_soon: every other ready callback runs first); past
HOLD_BYTES waiting, the socket stops being read until they are parsed, so a
flooder's backlog waits in its own socket, not in the server's memory.
Frames are parsed in the order they came (the rate limit in server.py
decides what a message is worth); a connection lost with a backlog drops it
with its session.

    uvicorn.Config(app, ws=FairWebSocketsProtocol)
"""

from __future__ import annotations

import logging

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger("yoshimidi.serve")

SLICE_BYTES = 16 * 1024  # ~180 press messages: ~2 ms of parsing a turn
HOLD_BYTES = 256 * 1024  # unparsed bytes above which the socket's reading pauses


class FairWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol with its input parsed in slices."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._unparsed = bytearray()
        self._next_slice = None  # the scheduled _parse_slice, if any
        self._holding = False  # reading paused for the backlog
        self.slices_deferred = 0  # slices parsed in a later turn (a burst was spread)

    def data_received(self, data: bytes) -> None:
        if not self._unparsed and len(data) <= SLICE_BYTES:
            super().data_received(data)  # the common case: a message or a few, at once
            return
        self._unparsed += data
        if len(self._unparsed) > HOLD_BYTES:
            self._holding = True
            self.transport.pause_reading()
        if self._next_slice is None:
            self._parse_slice(deferred=False)  # the first slice now: no wait for a normal message

    async def receive(self):
        """uvicorn's receive, except that a socket held for its backlog stays
        paused until the backlog is parsed (uvicorn's own would resume reading
        as soon as the app has read its queue, letting in another 256 KB read
        each time: the backlog would grow with all the client sends)."""
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if not self._holding:
                self.transport.resume_reading()
        return message

    def _parse_slice(self, deferred: bool = True) -> None:
        self._next_slice = None
        if self.transport is None or self.transport.is_closing():
            self._unparsed.clear()
            return
        chunk = bytes(self._unparsed[:SLICE_BYTES])
        del self._unparsed[:SLICE_BYTES]
        self.slices_deferred += deferred
        try:
            super().data_received(chunk)
        except Exception:  # noqa: BLE001  as uvicorn would, at once: the connection ends, not the server
            log.exception("websocket input could not be parsed: the connection is closed")
            self._unparsed.clear()
            self.transport.close()
            return
        if self._unparsed:
            self._next_slice = self.loop.call_soon(self._parse_slice)
        elif self._holding:
            self._holding = False
            if not self.read_paused:  # else uvicorn resumes once the app has read its queue
                self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        # a client gone with a backlog was sending faster than it was read: what is left of it
        # is dropped with the connection (its session ends with it)
        if self._next_slice is not None:
            self._next_slice.cancel()
            self._next_slice = None
        self._unparsed.clear()
        super().connection_lost(exc)
