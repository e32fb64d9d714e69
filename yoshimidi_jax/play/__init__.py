"""Interactive play: a press (press.py), one session (player.py), many sessions
as one batch (batch.py), the host's record of a session both keep (host.py),
player-like press scripts (walk.py)."""
