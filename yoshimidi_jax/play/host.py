"""What the host keeps of one play session, beside its decode state on the
device: the recent tokens (to refill a full cache), the VELOCITY bin in force,
the pitches sounding, the presses so far and, where asked, every token of the
session. One record for Player (play/player.py) and BatchPlayer
(play/batch.py); a value: each method returns a new one."""

from __future__ import annotations

import dataclasses

import numpy as np

from yoshimidi_jax.tokens import BOS, Vocab


def refill_window(ids: np.ndarray, times: np.ndarray, needed: int,
                  cache_len: int) -> tuple[np.ndarray, np.ndarray] | None:
    """When `needed` more tokens would not fit a cache of cache_len after a
    session's tokens in it: the recent half of them, to prefill a fresh cache
    with (the Track and the PRNG key carry over); None while they fit."""
    if len(ids) + needed <= cache_len:
        return None
    keep = cache_len // 2
    return ids[-keep:], times[-keep:]


@dataclasses.dataclass(frozen=True)
class SessionHost:
    ids: np.ndarray  # the session's recent tokens: those in its cache
    times: np.ndarray
    vel_bin: int = -1  # the VELOCITY bin in force (-1: none yet)
    sounding: frozenset = frozenset()  # pitches the model's presses left sounding
    presses: int = 0
    history: tuple | None = None  # ((ids, times), ...) every token of the session; None: not kept

    @classmethod
    def start(cls, keep_history: bool) -> SessionHost:
        """A fresh session: BOS alone."""
        ids, times = np.array([BOS], np.int32), np.zeros(1, np.float32)
        return cls(ids, times, history=((ids, times),) if keep_history else None)

    def refilled(self, needed: int, cache_len: int) -> SessionHost | None:
        """When `needed` more tokens would not fit the cache: the record keeping
        the recent half (prefill a fresh cache with its ids and times); None
        while they fit."""
        window = refill_window(self.ids, self.times, needed, cache_len)
        return None if window is None else dataclasses.replace(self, ids=window[0], times=window[1])

    def ending(self, pitches) -> list[int]:
        """The pitches, of those given, that sound (a release ends only those), low to high."""
        return sorted({int(p) for p in pitches} & self.sounding)

    def ended(self, pitches) -> SessionHost:
        return dataclasses.replace(self, sounding=self.sounding - set(pitches))

    def fed(self, ids: np.ndarray, times: np.ndarray) -> SessionHost:
        """After the tokens (ids, times) went into the cache."""
        history = None if self.history is None else self.history + ((ids, times),)
        return dataclasses.replace(self, ids=np.concatenate([self.ids, ids]),
                                   times=np.concatenate([self.times, times]), history=history)

    def pressed(self, forced_ids: np.ndarray, forced_times: np.ndarray, pitches: np.ndarray, vel_bin: int,
                vocab: Vocab) -> SessionHost:
        """After a press: its forced tokens, then a NOTE_ON of each pitch it
        played; vel_bin is the bin in force after them."""
        ids = np.concatenate([forced_ids, (pitches + vocab.note_on).astype(np.int32)])
        times = np.concatenate([forced_times, np.zeros(len(pitches), np.float32)])
        fed = self.fed(ids, times)
        return dataclasses.replace(fed, vel_bin=vel_bin, sounding=self.sounding | set(pitches.tolist()),
                                   presses=self.presses + 1)

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Every token of the session so far (ids, times): decode it to record it."""
        if self.history is None:
            raise ValueError("this session keeps no history (SessionHost.start(keep_history=False))")
        return (np.concatenate([c[0] for c in self.history]).astype(np.int32),
                np.concatenate([c[1] for c in self.history]).astype(np.float32))
