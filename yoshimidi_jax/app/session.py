"""One player's session: the player's keys -> the model's notes.

A Session turns protocol messages into decode jobs for its row of the
server's BatchPlayer (play/batch.py: KV cache, sounding notes):
- the press's kind comes from the player's keys with the same definition the
  data uses (tokens/presses.attributes_of_press): the interval from the
  previous press's lowest key to this one's, the number of keys, the velocity;
- the player's clock gives the TIME (seconds since the previous press or
  release that reached the model);
- the i-th lowest key of a press owns the i-th lowest note, so a key going up
  ends exactly its note;
- zero-wait keys: a press that `grows` asks chord ANY, and each "add" joins
  it (one more note of the same press, no TIME between: BatchPlayer's
  JoinJob), unless a release reached the model since (then the add is a new
  press, its interval from the open press's lowest key).
A session plays in a style (tokens/styles.py; NO_STYLE: none) chosen when its
context starts: a reset may carry a new one, else the style goes on.
It keeps a log of the notes while recording, and writes it as a .mid.

Methods are synchronous and run on the event loop; a session handles one
message at a time, so its bookkeeping follows message order.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import time

import jax
import numpy as np

from yoshimidi_jax.app.protocol import AddMsg, PressMsg, ProtocolError, ReleaseMsg, SettingsMsg
from yoshimidi_jax.midi.events import NoteEvents
from yoshimidi_jax.midi.write import events_to_midifile
from yoshimidi_jax.play.batch import JoinJob, OpenJob, PressJob
from yoshimidi_jax.play.press import MAX_NOTES, PlaySettings, Press, PressNotes
from yoshimidi_jax.tokens.controls import Control
from yoshimidi_jax.tokens.presses import attributes_of_press
from yoshimidi_jax.tokens.styles import NO_STYLE, style_name

MAX_RECORDED_NOTES = 100_000
SHORT_NOTE_S = 0.25  # a note still held when the recording stops lasts at least this long


@dataclasses.dataclass
class RecordedNote:
    pitch: int
    velocity: int
    start_ms: float
    end_ms: float | None = None


class Session:
    """Host-side state of one tab; its decode state is row `slot` of the
    server's BatchPlayer. plan_* turn a message into a decode job (and update
    the key bookkeeping); finish_* turn the job's result into the reply."""

    def __init__(self, session_id: str, shard: int, slot: int, key: jax.Array, settings: PlaySettings,
                 style: int = NO_STYLE):
        self.id, self.settings = session_id, settings
        self.style = style  # the style of the context (tokens/styles.py), checked by the caller
        self.shard, self.slot = shard, slot  # row `slot` of the server's BatchPlayer number `shard`
        self._key = key
        self.presses = 0
        self.recording: list[RecordedNote] | None = None
        self.open_notes: dict[int, RecordedNote] = {}  # pitch -> its note in the recording
        self.last_seen_ms: float = 0.0  # the latest client time of any message (t never decreases)
        self.new_context()

    def new_context(self, style: int | None = None) -> OpenJob:
        """Forgets the music (the job restarts the slot); keeps the settings,
        and the style unless a new one is given."""
        if style is not None:
            self.style = style
        self._key, key = jax.random.split(self._key)
        self.prev_ref_key: int | None = None  # the lowest key of the previous press
        self.last_fed_ms: float | None = None  # the client time of the last event the model saw
        self.owner: dict[int, int] = {}  # held key -> the pitch it sounds
        return OpenJob(self.slot, key, self.style)

    @property
    def style_name(self) -> str:
        return style_name(self.style)

    # -- clock -----------------------------------------------------------------
    def _check_time(self, t_ms: float, msg_id: int | None) -> None:
        if t_ms < self.last_seen_ms:
            raise ProtocolError("t", f"{t_ms:g} ms is before the previous message's {self.last_seen_ms:g} ms "
                                     "(t must never decrease)", msg_id)
        self.last_seen_ms = t_ms

    def _dt_s(self, t_ms: float) -> float:
        return 0.0 if self.last_fed_ms is None else (t_ms - self.last_fed_ms) / 1000.0

    # -- messages ----------------------------------------------------------------
    def plan_press(self, msg: PressMsg) -> PressJob:
        self._check_time(msg.t_ms, msg.id)
        # keys struck again while held: their old notes end at this press's moment
        ending = tuple(self.owner.pop(k) for k in msg.keys if k in self.owner)
        for p in ending:
            self._log_off(p, msg.t_ms)
        interval, _, _ = attributes_of_press(self.prev_ref_key, msg.keys, msg.velocity)
        num_keys = min(len(msg.keys), MAX_NOTES)  # the lowest keys get notes; more keys: chord class 5+
        press = Press(dt_s=self._dt_s(msg.t_ms), velocity=msg.velocity, num_keys=num_keys, interval=interval,
                      grows=msg.grows)
        self.last_fed_ms, self.prev_ref_key = msg.t_ms, msg.keys[0]
        return PressJob(self.slot, press, self.settings, ending)

    def plan_add(self, msg: AddMsg) -> JoinJob:
        """The keys join the open press; the job's Press (a press that grows,
        its interval from the open press's lowest key) is played instead
        where they cannot (finish_add reads which from the notes)."""
        self._check_time(msg.t_ms, msg.id)
        ending = tuple(self.owner.pop(k) for k in msg.keys if k in self.owner)
        for p in ending:
            self._log_off(p, msg.t_ms)
        interval, _, _ = attributes_of_press(self.prev_ref_key, msg.keys, msg.velocity)
        num_keys = min(len(msg.keys), MAX_NOTES)
        press = Press(dt_s=self._dt_s(msg.t_ms), velocity=msg.velocity, num_keys=num_keys, interval=interval,
                      grows=True)
        return JoinJob(self.slot, press, self.settings, ending)

    def finish_add(self, msg: AddMsg, notes: PressNotes, server_ms: float) -> dict:
        if notes.joined:  # the same press: no TIME fed; its lowest key may have moved down
            self.prev_ref_key = msg.keys[0] if self.prev_ref_key is None else min(self.prev_ref_key, msg.keys[0])
        else:  # a press of its own
            self.last_fed_ms, self.prev_ref_key = msg.t_ms, msg.keys[0]
        return self.finish_press(msg, notes, server_ms)

    def finish_press(self, msg: PressMsg | AddMsg, notes: PressNotes, server_ms: float) -> dict:
        self.presses += not notes.joined
        pitches = sorted(int(p) for p in notes.pitches)
        out = []
        for key, pitch in zip(msg.keys, pitches):
            # a pitch another key still owns (the last-resort re-strike) now belongs to this key
            for k in [k for k, p in self.owner.items() if p == pitch]:
                del self.owner[k]
            self.owner[key] = pitch
            self._log_on(pitch, msg.velocity, msg.t_ms)
            out.append({"key": key, "pitch": pitch, "velocity": msg.velocity, "start_s": 0.0, "end_s": None})
        return {
            "type": "notes", "id": msg.id, "t": msg.t_ms, "press": self.presses, "notes": out,
            "control": control_names(notes.control), "server_ms": round(server_ms, 3), "joined": notes.joined,
        }

    def plan_release(self, msg: ReleaseMsg) -> tuple[float, tuple[int, ...]] | None:
        """-> (seconds since the previous event, the pitches that end), or None
        where none of the keys sounds a note (the model's clock keeps running)."""
        self._check_time(msg.t_ms, msg.id)
        pitches = tuple(self.owner.pop(k) for k in msg.keys if k in self.owner)
        if not pitches:
            return None
        dt_s = self._dt_s(msg.t_ms)
        self.last_fed_ms = msg.t_ms
        for p in pitches:
            self._log_off(p, msg.t_ms)
        return dt_s, pitches

    def apply_settings(self, msg: SettingsMsg) -> dict:
        changes = {k: v for k, v in dataclasses.asdict(msg).items() if v is not None}
        self.settings = dataclasses.replace(self.settings, **changes)
        return {"type": "settings", "settings": self.settings_dict()}

    def settings_dict(self) -> dict:
        s = self.settings
        return {"temperature": s.temperature, "top_p": s.top_p, "strict": s.strict}

    def plan_reset(self, style: int | None = None) -> OpenJob:
        """Ends the recording's sounding notes and starts a fresh context (in
        `style`, checked by the caller; None: the session's style so far)."""
        for p in list(self.open_notes):
            self._log_off(p, self.last_seen_ms)
        return self.new_context(style)

    # -- recording -------------------------------------------------------------
    def _log_on(self, pitch: int, velocity: int, t_ms: float) -> None:
        if self.recording is None:
            return
        self._log_off(pitch, t_ms)
        if len(self.recording) >= MAX_RECORDED_NOTES:
            return
        note = RecordedNote(pitch, velocity, t_ms)
        self.recording.append(note)
        self.open_notes[pitch] = note

    def _log_off(self, pitch: int, t_ms: float) -> None:
        note = self.open_notes.pop(pitch, None)
        if note is not None:
            note.end_ms = t_ms

    def start_recording(self) -> dict:
        self.recording, self.open_notes = [], {}
        return {"type": "recording", "state": "started"}

    def stop_recording(self, msg_id: int | None = None) -> dict:
        if self.recording is None:
            raise ProtocolError("action", "\"stop\" but no recording was started", msg_id)
        notes, self.recording, self.open_notes = self.recording, None, {}
        midi, seconds = recording_to_midi(notes, self.last_seen_ms)
        return {
            "type": "recording", "state": "stopped", "notes": len(notes), "seconds": round(seconds, 3),
            "filename": time.strftime("yoshimidi-%Y%m%d-%H%M%S.mid"),
            "midi_base64": base64.b64encode(midi).decode("ascii"),
        }


def control_names(control: Control) -> dict[str, str]:
    """{"interval", "chord", "velocity"}: each attribute's name as str(Control)
    writes it ("up-step", "two", "hard"; "*" for any)."""
    return dict(zip(("interval", "chord", "velocity"), str(control).split("/")))


def recording_to_midi(notes: list[RecordedNote], now_ms: float) -> tuple[bytes, float]:
    """Recorded notes (client ms) -> (.mid bytes, length in seconds); time 0 is
    the first note; a note still held ends at now_ms (at least SHORT_NOTE_S long)."""
    if notes:
        t0 = min(n.start_ms for n in notes)
        onset = np.array([(n.start_ms - t0) / 1e3 for n in notes])
        end = np.array([((n.end_ms if n.end_ms is not None else now_ms) - t0) / 1e3 for n in notes])
        end = np.where([n.end_ms is None for n in notes], np.maximum(end, onset + SHORT_NOTE_S), end)
        duration = np.maximum(end - onset, 1e-3)
    else:
        onset = duration = np.zeros(0)
    events = NoteEvents.from_arrays(onset, duration, [n.pitch for n in notes], [n.velocity for n in notes])
    buf = io.BytesIO()
    events_to_midifile(events).save(file=buf)
    return buf.getvalue(), float(events.end_s.max()) if len(events) else 0.0
