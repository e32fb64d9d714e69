"""The live instrument: a web server (server.py) and its page (static/),
one session (session.py) per browser tab, speaking a small JSON protocol
(protocol.py)."""
