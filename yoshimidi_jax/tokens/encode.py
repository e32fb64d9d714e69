"""Note events <-> token ids and time values. Pure, vectorised numpy.

Encoding writes, in time order, NOTE_OFFs before NOTE_ONs at the same time
(a re-struck pitch ends before it starts again), a VELOCITY token before a
NOTE_ON whose velocity bin differs from the last one written, and one TIME
position (more for gaps over TimeCodec.max_s) wherever time advances.

Documented quantisation (what `decode(encode(x))` changes):
- onsets and note ends are rounded to the TimeCodec.min_s grid (5 ms), so
  they come back within half of it; a note shorter than one grid step keeps
  one step;
- notes struck within PRESS_WINDOW_S (35 ms) of a press's first onset start at
  that onset (tokens/presses.py: a chord is one press, written low to high
  with no TIME inside); their ends stay;
- velocity comes back as the middle of its bin (32 bins: within 2);
- channel and program are not encoded (decoding gives channel -1, program 0);
- a note overlapping an earlier note of the same pitch ends that earlier note
  at its onset; of notes of one pitch starting together, the longest is kept.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from yoshimidi_jax.midi.events import NoteEvents
from yoshimidi_jax.tokens.presses import press_index
from yoshimidi_jax.tokens.stream import clock_s, velocity_in_force
from yoshimidi_jax.tokens.time_codec import TimeCodec
from yoshimidi_jax.tokens.vocab import BOS, EOS, TIME, Vocab


@dataclasses.dataclass(frozen=True)
class TokenSequence:
    """ids [n] int32, and time values [n] float32 (seconds; 0 except at TIME)."""

    ids: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def normalize_events(events: NoteEvents, codec: TimeCodec) -> NoteEvents:
    """Applies the documented quantisation to events (what the token stream can
    hold), so tests and tools can compare like with like."""
    return _quantise(events, codec).sorted()


def _quantise(events: NoteEvents, codec: TimeCodec) -> NoteEvents:
    """normalize_events without the final sort (encode sorts its own way)."""
    grid = codec.min_s
    onset = np.round(events.onset_s / grid) * grid
    end = np.round(events.end_s / grid) * grid
    by_onset = np.argsort(onset, kind="stable")
    press = press_index(onset[by_onset])
    first_of_press = onset[by_onset][np.searchsorted(press, press)]  # press is sorted: its first row
    onset[by_onset] = first_of_press
    end = np.maximum(end, onset + grid)
    # by pitch, then onset, longest first: of notes starting together keep the
    # longest, then cut each note at the next onset of its pitch
    order = np.lexsort((-end, onset, events.pitch))
    p, o = events.pitch[order], onset[order]
    duplicate = np.append(False, (p[1:] == p[:-1]) & (o[1:] == o[:-1]))[: p.shape[0]]
    keep = order[~duplicate]
    p, o, e = p[~duplicate], o[~duplicate], end[keep]
    next_same = np.append(p[1:] == p[:-1], False)
    next_onset = np.append(o[1:], np.inf)
    end_kept = np.where(next_same & (e > next_onset), next_onset, e)
    out = dataclasses.replace(
        events.take(keep),
        onset_s=onset[keep],
        duration_s=np.round((end_kept - onset[keep]) / grid) * grid,
    )
    return out


def encode(
    events: NoteEvents,
    vocab: Vocab = Vocab(),
    codec: TimeCodec = TimeCodec(),
    add_bos_eos: bool = True,
) -> TokenSequence:
    """Note events -> token ids and time values (no control tokens: those are
    added at training time by controls.insert_controls)."""
    ev = _quantise(events, codec)
    n = len(ev)
    grid = codec.min_s
    # one row per NOTE_ON and per NOTE_OFF, sorted by (time, off-before-on, pitch)
    t_ticks = np.round(np.concatenate([ev.end_s, ev.onset_s]) / grid).astype(np.int64)
    is_on = np.concatenate([np.zeros(n, bool), np.ones(n, bool)])
    pitch = np.concatenate([ev.pitch, ev.pitch]).astype(np.int64)
    velocity = np.concatenate([np.zeros(n, np.int64), ev.velocity])
    order = np.lexsort((pitch, is_on, t_ticks))
    t_ticks, is_on, pitch, velocity = t_ticks[order], is_on[order], pitch[order], velocity[order]

    # TIME positions before each event: gap in grid steps, split at max_s
    max_ticks = int(round(codec.max_s / grid))
    gap = np.diff(t_ticks, prepend=0)
    num_time = -(-gap // max_ticks)  # ceil
    # VELOCITY before a NOTE_ON whose bin changed
    vel_bin = vocab.velocity_bin(np.maximum(velocity, 1))
    on_bins = vel_bin[is_on]
    changed_on = np.append(True, on_bins[1:] != on_bins[:-1]) if on_bins.size else on_bins.astype(bool)
    needs_vel = np.zeros(is_on.shape[0], bool)
    needs_vel[np.flatnonzero(is_on)] = changed_on

    per_event = num_time + needs_vel + 1
    start = np.cumsum(per_event) - per_event + (1 if add_bos_eos else 0)
    total = int(per_event.sum()) + (2 if add_bos_eos else 0)
    ids = np.zeros(total, np.int32)
    times = np.zeros(total, np.float32)
    if add_bos_eos:
        ids[0], ids[-1] = BOS, EOS

    # TIME: k-th of num_time positions holds max_s, the last the remainder
    time_event = np.repeat(np.arange(t_ticks.shape[0]), num_time)
    k = np.arange(time_event.shape[0]) - np.repeat(np.cumsum(num_time) - num_time, num_time)
    rest = gap[time_event] - k * max_ticks
    ids[start[time_event] + k] = TIME
    times[start[time_event] + k] = np.minimum(rest, max_ticks) * grid

    vel_pos = start[needs_vel] + num_time[needs_vel]
    ids[vel_pos] = vocab.velocity + vel_bin[needs_vel]
    note_pos = start + num_time + needs_vel
    ids[note_pos] = np.where(is_on, vocab.note_on, vocab.note_off) + pitch
    return TokenSequence(ids=ids, times=times)


def decode(
    ids: np.ndarray,
    times: np.ndarray,
    vocab: Vocab = Vocab(),
    default_velocity: int = 64,
) -> NoteEvents:
    """Token ids and time values -> note events. Tolerant of any id sequence
    (model output): a NOTE_ON ends at the next NOTE_ON or NOTE_OFF of its
    pitch, or at the end of the sequence; a NOTE_OFF of a pitch not sounding
    is ignored; other ids carry no notes."""
    ids = np.asarray(ids, dtype=np.int64)
    clock = clock_s(ids, times, vocab)
    end_of_sequence = clock[-1] if clock.size else 0.0

    is_on = vocab.is_note_on(ids)
    is_off = vocab.is_note_off(ids)
    pos = np.flatnonzero(is_on | is_off)
    pitch = np.where(is_on[pos], ids[pos] - vocab.note_on, ids[pos] - vocab.note_off)
    order = np.lexsort((pos, pitch))
    pos, pitch = pos[order], pitch[order]
    next_same = np.append(pitch[1:] == pitch[:-1], False)
    next_pos = np.append(pos[1:], 0)
    on_rows = np.flatnonzero(is_on[pos])
    onset = clock[pos[on_rows]]
    end = np.where(next_same[on_rows], clock[next_pos[on_rows]], end_of_sequence)
    velocity = velocity_in_force(ids, pos[on_rows], vocab)
    velocity = np.where(velocity >= 0, velocity, default_velocity)
    return NoteEvents.from_arrays(
        onset_s=onset,
        duration_s=end - onset,
        pitch=pitch[on_rows],
        velocity=velocity,
    )
