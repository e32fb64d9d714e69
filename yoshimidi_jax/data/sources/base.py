"""What every source returns."""

from __future__ import annotations

import collections
import dataclasses


@dataclasses.dataclass(frozen=True)
class SourceFiles:
    """MIDI files a source provides, sorted, plus the pieces it failed to
    provide (e.g. music21 scores that did not convert), by reason."""

    paths: tuple[str, ...]
    failed: tuple[dict, ...] = ()  # ({"path": ..., "reason": ..., "detail": ...}, ...)
    root: str = ""  # the folder the paths are under: a file's top folder there names its style (tokens/styles.py)

    @property
    def failures_by_reason(self) -> dict[str, int]:
        return dict(collections.Counter(f["reason"] for f in self.failed))
