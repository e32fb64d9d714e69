"""A burst from one websocket client is parsed a slice at a time
(app/fair_reading.py), on a real uvicorn server over a real socket: every
frame of the burst arrives, in order, though the split falls inside frames;
a message of normal size is parsed at once."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from yoshimidi_jax.app import fair_reading
from yoshimidi_jax.app.fair_reading import FairWebSocketsProtocol


class RecordingProtocol(FairWebSocketsProtocol):
    """The protocol under test, each instance kept so the test can read its counter."""

    made: list = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        RecordingProtocol.made.append(self)


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


def serve_in_thread(sock: socket.socket) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(echo, ws=RecordingProtocol, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    return server


def test_a_burst_is_parsed_in_slices_in_order_and_a_small_message_at_once():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = serve_in_thread(sock)
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
