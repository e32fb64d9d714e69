// The sustain pedal: Space on the computer keyboard, CC64 from a MIDI input.
//
// It lives in the page, between the inputs and the instrument: a key that
// goes up while the pedal is down is *sustained*: its key-up is held back
// until the pedal comes up, so its note keeps ringing (the local sound, MIDI
// out, the roll) and the server gets the key's release only then: the model
// hears the note as sounding until pedal up, as in the training data, where
// the pedal is baked into the notes' durations; the recording keeps it too.
// The server's protocol is unchanged.

import { isTyping } from "./keys.js";

export class Pedal {
  // onDown(pitch, velocity), onUp(pitch): the instrument's key events;
  // onChange(pedal): the pedal or the sustained keys changed.
  constructor({ onDown, onUp, onChange = null }) {
    this.onDown = onDown;
    this.onUp = onUp;
    this.onChange = onChange;
    this.sources = new Set();    // "space", "midi": the pedal is down while any is
    this.sustained = new Set();  // pitches whose keys are up, ringing under the pedal
    this.enabled = true;
  }

  get down() {
    return this.sources.size > 0;
  }

  // A key went down. A key struck again while it rings under the pedal ends
  // its old note first (released now), then sounds anew.
  keyDown(pitch, velocity) {
    if (this.sustained.delete(pitch)) {
      this.onUp(pitch);
      this._changed();
    }
    this.onDown(pitch, velocity);
  }

  // A key went up: passed on now, or, under the pedal, at pedal up.
  keyUp(pitch) {
    if (this.enabled && this.down) {
      if (!this.sustained.has(pitch)) {
        this.sustained.add(pitch);
        this._changed();
      }
      return;
    }
    this.onUp(pitch);
  }

  // source: "space" | "midi"; on: pressed or not.
  set(source, on) {
    const was = this.down;
    if (on) this.sources.add(source);
    else this.sources.delete(source);
    if (was === this.down) return;
    if (!this.down) {
      // Pedal up: every sustained key is let go now, lowest first.
      const keys = [...this.sustained].sort((a, b) => a - b);
      this.sustained.clear();
      for (const p of keys) this.onUp(p);
    }
    this._changed();
  }

  // Space is the pedal (not while typing in a field; a held Space repeats).
  attachSpace(target = window) {
    target.addEventListener("keydown", (e) => {
      if (e.code !== "Space" || e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
      e.preventDefault();   // no page scroll, no click on a focused button
      if (!e.repeat) this.set("space", true);
    });
    target.addEventListener("keyup", (e) => {
      if (e.code !== "Space") return;
      e.preventDefault();
      this.set("space", false);
    });
    // A Space let go while the window has no focus would hold the pedal forever.
    window.addEventListener("blur", () => this.set("space", false));
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.set("space", false);
    });
  }

  _changed() {
    if (this.onChange) {
      try { this.onChange(this); } catch (err) { console.warn(err); }
    }
  }
}
