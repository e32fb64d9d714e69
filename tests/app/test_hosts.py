"""The Host allowlist (app/hosts.py) and the bounded error counters, as pure
functions; the server's use of them is tested over real websockets in
test_server.py."""

from __future__ import annotations

import pytest

from yoshimidi_jax.app.hosts import allowed_hosts, host_refusal, origin_host, split_host
from yoshimidi_jax.app.server import ServerOptions, error_counter, request_host_refusal


@pytest.mark.parametrize("value, want", [
    ("localhost:8000", ("localhost", 8000)),
    ("LocalHost:8000", ("localhost", 8000)),
    ("127.0.0.1", ("127.0.0.1", 80)),
    ("[::1]:8000", ("::1", 8000)),
    ("[::1]", ("::1", 80)),
    ("::1", None),  # an IPv6 address without brackets is not a Host header
    ("[::1", None),
    ("[::1]x", None),
    (":8000", None),
    ("localhost:http", None),
    ("localhost:0", None),
    ("localhost:70000", None),
    ("", None),
])
def test_split_host(value, want):
    assert split_host(value, 80) == want


def test_origin_host():
    assert origin_host("http://Box.lan:9000") == ("box.lan", 9000)
    assert origin_host("https://music.example") == ("music.example", 443)
    assert origin_host("http://[::1]:8000/") == ("::1", 8000)
    assert origin_host("not an origin") is None


def test_loopback_names_with_the_port_only():
    allowed = allowed_hosts(8000)
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert host_refusal(host, allowed, 80) is None, host
    for host in ("localhost:8001", "localhost", "evil.example:8000", "127.0.0.1.evil.example:8000", "::1"):
        why = host_refusal(host, allowed, 80)
        assert why is not None and repr(host) in why and "DNS rebinding" in why and "localhost:8000" in why, why


def test_host_and_allowed_origins_and_the_local_address_are_allowed():
    allowed = allowed_hosts(8000, hosts=("Box.lan",), origins=("https://music.example", "http://dev.lan:3000"),
                            local_address="192.168.1.5")
    for host in ("box.lan:8000", "music.example:8000", "music.example", "dev.lan:8000", "dev.lan:3000",
                 "192.168.1.5:8000"):
        assert host_refusal(host, allowed, 443 if host == "music.example" else 80) is None, host
    assert host_refusal("evil.example:8000", allowed, 80) is not None
    assert host_refusal("music.example", allowed, 80) is not None  # port 80: the origin says 443


def test_no_host_header_is_not_a_browser():
    assert host_refusal(None, allowed_hosts(8000), 80) is None


def test_error_counters_are_a_fixed_set():
    assert error_counter("keys") == "error:keys" and error_counter(None) == "error:None"
    for made_up in ("extra", "\ud800", "x" * 4000, "error:keys"):
        assert error_counter(made_up) == "error:unknown_field"


def test_a_request_is_checked_against_the_servers_own_port_and_options():
    scope = {"type": "websocket", "scheme": "ws", "server": ("127.0.0.1", 8000)}
    options = ServerOptions(hosts=("box.lan",), allowed_origins=("http://dev.lan:3000",))
    for host in ("localhost:8000", "box.lan:8000", "dev.lan:8000", "dev.lan:3000"):
        assert request_host_refusal(scope, {"host": host}, options) is None, host
    for host in ("box.lan:8001", "evil.example:8000"):
        assert request_host_refusal(scope, {"host": host}, options) is not None, host
    # reached over another interface (--host=0.0.0.0): that address too, never another name
    lan = {**scope, "server": ("192.168.1.5", 8000)}
    assert request_host_refusal(lan, {"host": "192.168.1.5:8000"}, ServerOptions()) is None
    assert request_host_refusal(lan, {"host": "evil.example:8000"}, ServerOptions()) is not None
