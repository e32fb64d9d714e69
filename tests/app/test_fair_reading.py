"""A burst from one websocket client is parsed a slice at a time
(app/fair_reading.py), on a real uvicorn server over a real socket: every
frame of the burst arrives, in order, though the split falls inside frames;
a message of normal size is parsed at once."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from yoshimidi_jax.app import fair_reading
from yoshimidi_jax.app.fair_reading import FairWebSocketsProtocol


class RecordingProtocol(FairWebSocketsProtocol):
    """The protocol under test, each instance kept (with the largest backlog
    it held) so the test can read its counters."""

    made: list = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.most_unparsed = 0
        RecordingProtocol.made.append(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.most_unparsed = max(self.most_unparsed, len(self._unparsed))


async def echo(scope, receive, send) -> None:
    """An ASGI app: each text message comes back as it came."""
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": event["text"]})


def serve_in_thread() -> tuple[uvicorn.Server, int]:
    """A real uvicorn server of `echo` with the protocol under test, on a
    loopback port, in a thread -> (the server, its port) once it serves."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(echo, ws=RecordingProtocol, ws_max_size=1 << 20, log_level="warning",
                                           lifespan="off"))
    threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the echo server did not start"
    return server, sock.getsockname()[1]


def test_a_burst_is_parsed_in_slices_in_order_and_a_small_message_at_once():
    server, port = serve_in_thread()
    try:
        # messages of 101 bytes: frames of 107, so slice edges fall inside frames
        texts = [f'{{"n": {i:06d}, "pad": "{"x" * 82}"}}' for i in range(3000)]
        burst = b"".join(Frame(Opcode.TEXT, t.encode()).serialize(mask=True) for t in texts)
        assert len(burst) > 10 * fair_reading.SLICE_BYTES
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=20) as ws:
            ws.send("one")
            assert ws.recv(timeout=20) == "one"
            first = RecordingProtocol.made[-1]
            assert first.slices_deferred == 0  # a normal message: parsed as it came
            ws.socket.sendall(burst)  # one write: the server reads it in a few large reads
            got = [ws.recv(timeout=20) for _ in texts]
            assert got == texts  # all of them, in order
            assert first.slices_deferred >= 5  # spread over later turns of the event loop
            ws.send("after")
            assert ws.recv(timeout=20) == "after"
    finally:
        server.should_exit = True


def test_a_client_sending_more_than_it_is_read_waits_in_its_own_socket():
    """Frames of 100 KB, 20 MB of them in a row: the server parses them as it
    can and keeps at most its hold (plus one read) unparsed, however much the
    client sends, and echoes every one in order."""
    server, port = serve_in_thread()
    try:
        texts = [f"{i:06d}" + "y" * 100_000 for i in range(200)]
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=20, max_size=1 << 20) as ws:
            ws.send("hello")
            assert ws.recv(timeout=20) == "hello"
            proto = RecordingProtocol.made[-1]
            got = []
            reader = threading.Thread(target=lambda: got.extend(ws.recv(timeout=60) for _ in texts), daemon=True)
            reader.start()
            for t in texts:
                ws.socket.sendall(Frame(Opcode.TEXT, t.encode()).serialize(mask=True))
            reader.join(120)
            assert [g[:6] for g in got] == [t[:6] for t in texts] and got == texts
            assert proto.slices_deferred > 0
            # the hold, plus one read that came before reading paused
            assert proto.most_unparsed <= fair_reading.HOLD_BYTES + 300 * 1024, proto.most_unparsed
    finally:
        server.should_exit = True
