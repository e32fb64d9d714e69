"""What the host keeps of one play session, beside its decode state on the
device: the recent tokens (to refill a full cache), the VELOCITY bin in force,
the pitches sounding, the presses so far, the open press (the notes since the
last TIME: keys may still join it) and, where asked, every token of the
session. One record for Player (play/player.py) and BatchPlayer
(play/batch.py); a value: each method returns a new one."""

from __future__ import annotations

import dataclasses

import numpy as np

from yoshimidi_jax.tokens import BOS, TIME, Vocab
from yoshimidi_jax.tokens.controls import Control


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
    ids: np.ndarray  # the session's recent tokens: those in its cache (a BatchPlayer's unfed note after them)
    times: np.ndarray
    vel_bin: int = -1  # the VELOCITY bin in force (-1: none yet)
    sounding: frozenset = frozenset()  # pitches the model's presses left sounding
    presses: int = 0
    open_press: tuple = ()  # pitches of the open press (no TIME fed since it): more keys may join it
    open_control: Control | None = None  # the CONTROL of the open press (None: it has none)
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
        closed = bool((np.asarray(ids) == TIME).any())  # a TIME closes the open press
        return dataclasses.replace(self, ids=np.concatenate([self.ids, ids]),
                                   times=np.concatenate([self.times, times]), history=history,
                                   open_press=() if closed else self.open_press,
                                   open_control=None if closed else self.open_control)

    def can_join(self, num_keys: int, pitch_hi: int) -> bool:
        """Whether num_keys more notes fit the open press: one is open (no TIME
        since) and its notes leave room above (a press goes low to high)."""
        return bool(self.open_press) and max(self.open_press) + num_keys <= pitch_hi

    def pressed(self, forced_ids: np.ndarray, forced_times: np.ndarray, pitches: np.ndarray, vel_bin: int,
                vocab: Vocab) -> SessionHost:
        """After a press: its forced tokens, then a NOTE_ON of each pitch it
        played; vel_bin is the bin in force after them."""
        ids = np.concatenate([forced_ids, (pitches + vocab.note_on).astype(np.int32)])
        times = np.concatenate([forced_times, np.zeros(len(pitches), np.float32)])
        fed = self.fed(ids, times)
        controls = forced_ids[vocab.is_control(forced_ids)]
        control = Control.from_id(int(controls[-1]), vocab) if len(controls) else None
        return dataclasses.replace(fed, vel_bin=vel_bin, sounding=self.sounding | set(pitches.tolist()),
                                   presses=self.presses + 1, open_press=tuple(int(p) for p in pitches),
                                   open_control=control)

    def joined(self, forced_ids: np.ndarray, forced_times: np.ndarray, pitches: np.ndarray, vel_bin: int,
               vocab: Vocab) -> SessionHost:
        """After keys joined the open press: its forced tokens ([VELOCITY]),
        then a NOTE_ON of each pitch; still one press."""
        ids = np.concatenate([forced_ids, (pitches + vocab.note_on).astype(np.int32)])
        times = np.concatenate([forced_times, np.zeros(len(pitches), np.float32)])
        fed = self.fed(ids, times)
        return dataclasses.replace(fed, vel_bin=vel_bin, sounding=self.sounding | set(pitches.tolist()),
                                   open_press=self.open_press + tuple(int(p) for p in pitches))

    def tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """Every token of the session so far (ids, times): decode it to record it."""
        if self.history is None:
            raise ValueError("this session keeps no history (SessionHost.start(keep_history=False))")
        return (np.concatenate([c[0] for c in self.history]).astype(np.int32),
                np.concatenate([c[1] for c in self.history]).astype(np.float32))
