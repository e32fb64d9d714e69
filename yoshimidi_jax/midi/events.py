"""Note events: a struct of numpy arrays, one row per note, times in seconds."""

from __future__ import annotations

import dataclasses

import numpy as np

DRUM_CHANNEL = 9  # MIDI channel 10, zero-based


@dataclasses.dataclass(frozen=True)
class KeySignature:
    time_s: float
    sharps: int  # -7..7, negative for flats
    minor: bool


def unique_key_signatures(time_s, sharps, minor) -> tuple[KeySignature, ...]:
    """Key signatures in time order, each (time, key) once: type 1 files often
    repeat the key in every track."""
    rows = sorted({(float(t), int(s), bool(m)) for t, s, m in zip(time_s, sharps, minor)})
    return tuple(KeySignature(time_s=t, sharps=s, minor=m) for t, s, m in rows)


@dataclasses.dataclass(frozen=True)
class NoteEvents:
    """Notes of one piece, sorted by (onset, pitch, duration).

    channel is -1 where the reader cannot tell it (the symusic reader merges by
    track and program); program is the General MIDI program (0..127).
    """

    onset_s: np.ndarray  # float64 [n]
    duration_s: np.ndarray  # float64 [n]
    pitch: np.ndarray  # int16 [n], 0..127
    velocity: np.ndarray  # int16 [n], 1..127
    channel: np.ndarray  # int16 [n]
    program: np.ndarray  # int16 [n]
    key_signatures: tuple[KeySignature, ...] = ()

    def __len__(self) -> int:
        return int(self.pitch.shape[0])

    @property
    def end_s(self) -> np.ndarray:
        return self.onset_s + self.duration_s

    @staticmethod
    def from_arrays(
        onset_s,
        duration_s,
        pitch,
        velocity,
        channel=None,
        program=None,
        key_signatures: tuple[KeySignature, ...] = (),
    ) -> "NoteEvents":
        """Builds sorted events from any array-likes (channel/program default
        to -1/0)."""
        onset = np.asarray(onset_s, dtype=np.float64).reshape(-1)
        n = onset.shape[0]
        channel = np.full(n, -1) if channel is None else channel
        program = np.zeros(n) if program is None else program
        events = NoteEvents(
            onset_s=onset,
            duration_s=np.asarray(duration_s, dtype=np.float64).reshape(-1),
            pitch=np.asarray(pitch, dtype=np.int16).reshape(-1),
            velocity=np.asarray(velocity, dtype=np.int16).reshape(-1),
            channel=np.asarray(channel, dtype=np.int16).reshape(-1),
            program=np.asarray(program, dtype=np.int16).reshape(-1),
            key_signatures=tuple(key_signatures),
        )
        return events.sorted()

    def sorted(self) -> "NoteEvents":
        order = np.lexsort((self.duration_s, self.pitch, self.onset_s))
        return self.take(order)

    def take(self, index: np.ndarray) -> "NoteEvents":
        return dataclasses.replace(
            self,
            onset_s=self.onset_s[index],
            duration_s=self.duration_s[index],
            pitch=self.pitch[index],
            velocity=self.velocity[index],
            channel=self.channel[index],
            program=self.program[index],
        )


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """What a reader returns: the pitched notes, and what it left out."""

    events: NoteEvents
    drum_notes: int  # notes on the drum channel, excluded from `events`
    reader: str  # "symusic" or "mido"
