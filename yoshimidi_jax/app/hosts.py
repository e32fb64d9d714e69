"""Which Host headers the server answers (a guard against DNS rebinding), as
pure functions of the request's headers and the server's own address.

A page on evil.example whose name is re-pointed at 127.0.0.1 is, to the
browser, still evil.example: its requests carry `Host: evil.example:PORT`
and a matching Origin, so an Origin check alone lets it in. The Host header
is what gives it away. The server answers only Host headers naming

  - a loopback name or address (localhost, 127.0.0.1, [::1]) with its port,
  - the address the connection came in on (an address cannot be rebound),
  - what --host names, with its port,
  - what --allow_origin names: the origin's host with the server's port, and
    the origin's own host:port (a page served through a proxy),

as local notebook servers do. A request without a Host header (HTTP/1.0, not
a browser) passes, as a websocket without an Origin does.

    allowed = allowed_hosts(port=8000, hosts=("0.0.0.0",), origins=(), local_address="127.0.0.1")
    host_refusal("evil.example:8000", allowed, default_port=80)   # -> "Host 'evil.example:8000' ..."
    host_refusal("localhost:8000", allowed, default_port=80)      # -> None
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def split_host(value: str, default_port: int) -> tuple[str, int] | None:
    """A Host header ("name:port", "[v6]:port", "name") -> (lower-case name,
    without brackets, and port); None if it is not one."""
    value = value.strip().lower()
    if value.startswith("["):  # an IPv6 literal
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = value.partition(":")
        if ":" in port_text:  # a bare IPv6 address or garbage
            return None
    if not name:
        return None
    if not port_text:
        return name, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return name, int(port_text)


def format_host(name: str, port: int) -> str:
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


def origin_host(origin: str) -> tuple[str, int] | None:
    """An origin ("http://box.lan:8000") -> ("box.lan", 8000); None if it names no host."""
    parts = urlsplit(origin.strip())
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port or DEFAULT_PORTS.get(parts.scheme.lower(), 80)


def allowed_hosts(port: int, hosts: tuple[str, ...] = (), origins: tuple[str, ...] = (),
                  local_address: str | None = None) -> frozenset[tuple[str, int]]:
    """The (name, port) pairs a Host header may name on a server listening on
    `port` (see the module's docstring): `hosts` are --host values, `origins`
    the --allow_origin values, `local_address` the address the connection came in on."""
    names = {*LOOPBACK_NAMES, *(h.strip().strip("[]").lower() for h in hosts if h.strip())}
    if local_address:
        names.add(local_address.lower())
    allowed = {(name, port) for name in names}
    for origin in origins:
        named = origin_host(origin)
        if named is not None:
            allowed |= {named, (named[0], port)}
    return frozenset(allowed)


def host_refusal(host: str | None, allowed: frozenset[tuple[str, int]], default_port: int) -> str | None:
    """Why a request with this Host header is refused; None if it is allowed
    (or has no Host header: not a browser)."""
    if host is None:
        return None
    named = split_host(host, default_port)
    if named is not None and named in allowed:
        return None
    shown = ", ".join(sorted(format_host(n, p) for n, p in allowed))
    return (f"Host {host!r} is not one this server answers to ({shown}): a guard against DNS rebinding; "
            f"to reach it by another name, start it with --allow_origin=http://NAME:PORT")
