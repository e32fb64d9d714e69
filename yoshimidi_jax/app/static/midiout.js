// MIDI out: the model's notes to a Web MIDI output (a DAW, a hardware synth),
// as note-on (0x90 | channel, pitch, velocity) and note-off (0x80 | channel,
// pitch, 0) on the chosen channel, and a switch for the page's own sound.
// Notes go through Voices, which plays each note locally (unless muted) and
// on the output. A note's note-off goes when its key goes up (under the
// sustain pedal: at pedal up, see pedal.js) or when its duration ends.

import { readStored, writeStored } from "./storage.js";

const STORE = "yoshimidi.midiout";

export class MidiOut {
  constructor({ outputId = "none", channel = 0, local = true } = {}) {
    this.access = null;
    this.state = "idle";        // idle | asking | ready | unavailable | denied
    this.wantedId = outputId;   // the output chosen (kept while it is not plugged in)
    this.wantedName = null;
    this.output = null;         // the MIDIOutput notes go to, or null ("none")
    this.channel = Math.max(0, Math.min(15, channel | 0));   // 0..15 (shown as 1..16)
    this.local = local;         // the page's own sound on or muted
    this.sounding = new Set();  // notes whose note-on went out and note-off not yet
    this.owners = new Map();    // "output|channel|pitch" -> the note that holds that key
    this.sent = 0;              // messages sent
    this.error = null;
    this.onChange = null;
  }

  // Asks for Web MIDI (no sysex); the outputs are listed as they come and go.
  start() {
    if (this.state !== "idle") return;
    if (typeof navigator.requestMIDIAccess !== "function") {
      this.state = "unavailable";
      this._changed();
      return;
    }
    this.state = "asking";
    this._changed();
    // a page closed or reloaded with notes on: end them there (no hanging notes in the DAW)
    window.addEventListener("pagehide", () => this.allOff());
    navigator.requestMIDIAccess({ sysex: false }).then((access) => {
      this.access = access;
      this.state = "ready";
      // (a listener, not onstatechange: the input side, midi.js, sets that one)
      access.addEventListener("statechange", () => this._pick());
      this._pick();
    }, (err) => {
      console.info("yoshimidi: no MIDI access for output", err);
      this.state = "denied";
      this._changed();
    });
  }

  // [{id, name}] of the outputs plugged in.
  outputs() {
    const out = [];
    if (!this.access) return out;
    for (const o of this.access.outputs.values()) {
      if (o.state !== "disconnected") out.push({ id: o.id, name: o.name || "MIDI output" });
    }
    return out;
  }

  setOutput(id) {
    this.wantedId = id || "none";
    this.wantedName = null;
    this._pick();
  }

  setChannel(channel) {
    const ch = Math.max(0, Math.min(15, channel | 0));
    if (ch === this.channel) return;
    this.allOff();
    this.channel = ch;
    this._changed();
  }

  setLocal(on) {
    this.local = !!on;
    this._changed();
  }

  // The wanted output, if plugged in (by id, or by the name it had last time).
  _pick() {
    let next = null;
    if (this.access && this.wantedId !== "none") {
      const all = [...this.access.outputs.values()].filter((o) => o.state !== "disconnected");
      next = all.find((o) => o.id === this.wantedId)
        || (this.wantedName ? all.find((o) => o.name === this.wantedName) : null) || null;
    }
    if (next !== this.output) {
      this.allOff();   // the old output's notes end there
      this.output = next;
      if (next) this.wantedName = next.name;
    }
    this._changed();
  }

  // Starts a note `delay` s from now; with `duration` it ends by itself,
  // without it at noteOff(note). Returns the note, or null with no output.
  noteOn(pitch, velocity, { delay = 0, duration = null } = {}) {
    const out = this.output;
    if (!out) return null;
    const p = Math.max(0, Math.min(127, Math.round(pitch)));
    const vel = Math.max(1, Math.min(127, Math.round(velocity)));
    const at = delay > 0 ? performance.now() + delay * 1000 : null;
    const note = { out, channel: this.channel, pitch: p, at, off: false, timer: null };
    // The same key again while it sounds: this note takes it over (most synths
    // retrigger), and the older note's note-off must not cut it.
    const key = `${out.id}|${note.channel}|${p}`;
    const prev = this.owners.get(key);
    if (prev) this._forget(prev);
    this.owners.set(key, note);
    this.sounding.add(note);
    this._send(out, [0x90 | note.channel, p, vel], at);
    if (duration != null) {
      note.timer = setTimeout(() => this.noteOff(note), (Math.max(0, delay) + Math.max(0.02, duration)) * 1000);
    }
    return note;
  }

  noteOff(note) {
    if (!note || note.off) return;
    this._forget(note);
    const key = `${note.out.id}|${note.channel}|${note.pitch}`;
    if (this.owners.get(key) !== note) return;
    this.owners.delete(key);
    // never before its own note-on, when that one is still to come
    const at = note.at !== null && note.at > performance.now() ? note.at + 1 : null;
    this._send(note.out, [0x80 | note.channel, note.pitch, 0], at);
  }

  _forget(note) {
    note.off = true;
    clearTimeout(note.timer);
    this.sounding.delete(note);
  }

  allOff() {
    for (const note of [...this.sounding]) this.noteOff(note);
  }

  _send(out, bytes, at) {
    try {
      if (at === null) out.send(bytes);
      else out.send(bytes, at);
      this.sent += 1;
      this.error = null;
    } catch (err) {
      this.error = String(err.message || err);
      console.warn("yoshimidi: MIDI out", err);
    }
  }

  // Plain data for the page's test hooks.
  info() {
    return {
      state: this.state, output: this.output ? this.output.name : null, outputId: this.output ? this.output.id : "none",
      channel: this.channel + 1, local: this.local, sent: this.sent, sounding: this.sounding.size,
      outputs: this.outputs().map((o) => o.name), error: this.error,
    };
  }

  _changed() {
    if (this.onChange) {
      try { this.onChange(this); } catch (err) { console.warn(err); }
    }
  }
}

// What the page plays the model's notes through: the local sound (unless
// muted) and MIDI out. Same contract as Sound.noteOn/noteOff.
export class Voices {
  constructor(sound, midiOut) {
    this.sound = sound;
    this.midiOut = midiOut;
  }

  noteOn(pitch, velocity, opts = {}) {
    let local = null;
    if (this.midiOut.local) local = this.sound.noteOn(pitch, velocity, opts);
    else if (opts.started != null) this.sound.noteOff(this.sound.noteOn(pitch, velocity, opts));  // the worker
    // started it before the local sound was muted: it ends now
    const midi = this.midiOut.noteOn(pitch, velocity, opts);
    return local || midi ? { local, midi } : null;
  }

  noteOff(voice) {
    if (!voice) return;
    if (voice.local) this.sound.noteOff(voice.local);
    if (voice.midi) this.midiOut.noteOff(voice.midi);
  }
}

// ---------------------------------------------------------------- controls

function remembered() {
  return readStored(STORE);
}

function remember(out) {
  writeStored(STORE, { output: out.wantedId, outputName: out.wantedName, channel: out.channel, local: out.local });
}

// The choices the player made last time, for new MidiOut(...).
export function savedMidiOutSettings() {
  const s = remembered();
  const o = {};
  if (typeof s.output === "string") o.outputId = s.output;
  if (Number.isInteger(s.channel)) o.channel = s.channel;
  if (typeof s.local === "boolean") o.local = s.local;
  return o;
}

// Wires the output <select> ("none" and the outputs plugged in), the channel
// <select> (1..16), the "local sound" checkbox and the status line; `sound`
// is stopped when the local sound is muted. Returns render().
export function bindMidiOutControls(out, sound, { select, channel, local, status }) {
  const s = remembered();
  if (typeof s.outputName === "string") out.wantedName = s.outputName;
  channel.textContent = "";
  for (let c = 1; c <= 16; c++) {
    const o = document.createElement("option");
    o.value = String(c);   // 1..16, as shown
    o.textContent = String(c);
    channel.appendChild(o);
  }
  channel.value = String(out.channel + 1);
  local.checked = out.local;

  select.addEventListener("change", () => {
    out.setOutput(select.value);
    remember(out);
    select.blur();   // the letters play again
  });
  channel.addEventListener("change", () => {
    out.setChannel(Number(channel.value) - 1);
    remember(out);
    channel.blur();
  });
  local.addEventListener("change", () => {
    out.setLocal(local.checked);
    if (!local.checked) sound.allOff();
    remember(out);
    local.blur();
  });

  return function render() {
    const outs = out.outputs();
    const want = out.output ? out.output.id : "none";
    const ids = ["none", ...outs.map((o) => o.id)];
    if ([...select.options].map((o) => o.value).join("\n") !== ids.join("\n")) {
      select.textContent = "";
      for (const [id, name] of [["none", "none"], ...outs.map((o) => [o.id, o.name])]) {
        const opt = document.createElement("option");
        opt.value = id;
        opt.textContent = name;
        select.appendChild(opt);
      }
    }
    if (select.value !== want) select.value = want;
    if (channel.value !== String(out.channel + 1)) channel.value = String(out.channel + 1);
    if (local.checked !== out.local) local.checked = out.local;
    const text = out.state === "unavailable" ? "no Web MIDI in this browser"
      : out.state === "denied" ? "MIDI not allowed"
      : out.state !== "ready" ? "MIDI: asking…"
      : out.output ? `→ ${out.output.name} · ch ${out.channel + 1}${out.error ? ` · ${out.error}` : ""}`
      : outs.length ? `${outs.length} output${outs.length > 1 ? "s" : ""}: none chosen` : "no MIDI outputs";
    if (status.textContent !== text) status.textContent = text;
    status.dataset.on = out.output ? "1" : "0";
    status.title = out.output ? "the model's notes go to this MIDI output as note on/off" : "";
  };
}
