// What decoding knows about the tokens so far, one session's worth: the
// page's copy of yoshimidi_jax/sample/tracker.py (Track, advance,
// position_start), field for field, its seconds kept in float32 as JAX
// keeps them (Math.fround after each sum), so that the masks' comparisons
// (since_press > the press window) fall the same way.
// tests/export/test_page_engine.py replays recorded sessions through both.

export class Track {
  constructor(vocab) {
    this.vocab = vocab;
    const n = vocab.numPitches;
    this.sounding = new Uint8Array(n); // pitches struck and not yet ended
    this.done = false; // EOS seen
    this.velBin = -1; // the VELOCITY bin in force, -1 before the first
    this.afterVel = false; // the last token was a VELOCITY (its NOTE_ON must follow)
    this.pressLen = 0; // NOTE_ONs of the open press (0: none open; TIME closes it)
    this.lastOn = -1; // pitch of the open press's last NOTE_ON
    this.ref = -1; // reference (lowest, first) pitch of the latest press
    this.prevRef = -1; // reference pitch of the press before it
    this.control = -1; // the CONTROL id of the pending/open press
    this.pending = false; // a CONTROL came; its press's first NOTE_ON has not
    this.sincePress = vocab.sincePressStart; // seconds since the latest press began (float32)
    this.age = new Float32Array(n); // seconds since each pitch's latest NOTE_ON
  }

  /** One token and its time value (seconds at TIME) -> this Track, moved on. */
  advance(token, seconds = 0) {
    const v = this.vocab;
    const isOn = v.isNoteOn(token), isOff = v.isNoteOff(token);
    const isVel = v.isVelocity(token), isCtrl = v.isControl(token), isTime = v.isTime(token);
    const dt = isTime ? Math.fround(seconds) : 0;
    const pitchOn = isOn ? token - v.noteOn : -1;
    const newPress = isOn && this.pressLen === 0;
    if (isOn) this.sounding[pitchOn] = 1;
    if (isOff) this.sounding[token - v.noteOff] = 0;
    this.done = this.done || token === v.specials.EOS;
    if (isVel) this.velBin = token - v.velocity;
    this.afterVel = isVel;
    this.pressLen = isTime ? 0 : this.pressLen + (isOn ? 1 : 0);
    this.lastOn = isTime ? -1 : isOn ? pitchOn : this.lastOn;
    if (newPress) {
      this.prevRef = this.ref;
      this.ref = pitchOn;
    }
    this.control = isCtrl ? token : isTime ? -1 : this.control;
    this.pending = isCtrl ? true : this.pending && !isOn;
    this.sincePress = newPress ? 0 : Math.fround(this.sincePress + dt);
    if (dt !== 0) for (let p = 0; p < this.age.length; p++) this.age[p] += dt; // float32 sums
    if (isOn) this.age[pitchOn] = 0;
    return this;
  }

  /** Where the next token's position stands, as the model reads it (the
   * exported step's inputs control, press_len, ref, vel_bin, sounding, age). */
  positionStart() {
    const age = new Float32Array(this.age.length);
    for (let p = 0; p < age.length; p++) age[p] = this.sounding[p] ? this.age[p] : 0;
    return { control: this.control, press_len: this.pressLen, ref: this.ref, vel_bin: this.velBin,
             sounding: Uint8Array.from(this.sounding), age };
  }

  /** Plain data, the Python Track's field names (tests, debugging). */
  toJSON() {
    return { sounding: Array.from(this.sounding, (x) => x === 1), done: this.done, vel_bin: this.velBin,
             after_vel: this.afterVel, press_len: this.pressLen, last_on: this.lastOn, ref: this.ref,
             prev_ref: this.prevRef, control: this.control, pending: this.pending,
             since_press: this.sincePress, age: Array.from(this.age) };
  }

  clone() {
    const t = Object.assign(Object.create(Track.prototype), this);
    t.sounding = Uint8Array.from(this.sounding);
    t.age = Float32Array.from(this.age);
    return t;
  }
}
