"""Ticks -> seconds through a tempo map, vectorised."""

from __future__ import annotations

import numpy as np

DEFAULT_TEMPO_US = 500_000  # 120 bpm, the MIDI default


def ticks_to_seconds(
    ticks: np.ndarray,
    tempo_ticks: np.ndarray,
    tempo_us: np.ndarray,
    ticks_per_beat: int,
) -> np.ndarray:
    """Converts absolute ticks to seconds.

    tempo_ticks/tempo_us: tempo changes (absolute tick, microseconds per beat),
    in file order; of several changes at one tick the last one wins. Before the
    first change the tempo is 120 bpm.
    """
    ticks = np.asarray(ticks, dtype=np.int64)
    tt = np.concatenate([[0], np.asarray(tempo_ticks, dtype=np.int64)])
    tu = np.concatenate([[DEFAULT_TEMPO_US], np.asarray(tempo_us, dtype=np.float64)])
    order = np.argsort(tt, kind="stable")
    tt, tu = tt[order], tu[order]
    # keep the last change at each tick
    last = np.append(tt[1:] != tt[:-1], True)
    tt, tu = tt[last], tu[last]
    sec_per_tick = tu / (1e6 * ticks_per_beat)
    seg_start_s = np.concatenate([[0.0], np.cumsum(np.diff(tt) * sec_per_tick[:-1])])
    i = np.searchsorted(tt, ticks, side="right") - 1
    return seg_start_s[i] + (ticks - tt[i]) * sec_per_tick[i]
