"""Writing files so that a killed process never leaves a partial file."""

from __future__ import annotations

import os


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it over
    `path` (atomic on one filesystem): readers see the old file or the new."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)
