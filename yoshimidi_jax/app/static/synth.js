// A small polyphonic Web Audio synth: two detuned oscillators per voice, a
// low-pass filter that opens with velocity and closes as the note decays, a
// gain envelope (5 ms attack, exponential decay toward a sustain level over
// ~1.5 s, ~0.3 s release), a touch of echo, and a master compressor.

const ATTACK = 0.005;       // s
const DECAY_TC = 0.5;       // time constant of the decay (95 % after 1.5 s)
const SUSTAIN = 0.28;       // sustain level, as a fraction of the peak
const RELEASE_TC = 0.075;   // time constant of the release (98 % after 0.3 s)
const STEAL_TC = 0.012;     // fast release of a stolen voice

export function midiToHz(pitch) {
  return 440 * Math.pow(2, (pitch - 69) / 12);
}

export class Synth {
  // `context`/`output`: play in a shared AudioContext into this node (default:
  // its own context, straight to the speakers).
  constructor({ maxVoices = 48, context = null, output = null } = {}) {
    this.ctx = null;
    this.sharedCtx = context;
    this.output = output;
    this.maxVoices = maxVoices;
    this.voices = [];        // sounding voices, oldest first
    this.scheduled = 0;      // voices ever started
    this.onChange = null;    // called when the voice count or context state changes
  }

  get state() {
    return this.ctx ? this.ctx.state : "none";
  }

  get active() {
    return this.voices.length;
  }

  // Create the AudioContext (or resume it). Call from a user gesture first.
  ensure() {
    if (!this.ctx && this.sharedCtx) {
      this.ctx = this.sharedCtx;
      this._build();
      this.ctx.addEventListener("statechange", () => this._changed());
    }
    if (!this.ctx) {
      const AC = window.AudioContext || window.webkitAudioContext;
      if (!AC) return null;
      try {
        this.ctx = new AC({ latencyHint: "interactive" });
      } catch (err) {
        console.warn("yoshimidi: no AudioContext", err);
        return null;
      }
      this._build();
      this.ctx.addEventListener("statechange", () => this._changed());
    }
    if (this.ctx.state === "suspended") {
      this.ctx.resume().catch(() => {}).then(() => this._changed());
    }
    this._changed();
    return this.ctx;
  }

  _build() {
    const ctx = this.ctx;
    this.comp = ctx.createDynamicsCompressor();
    this.comp.threshold.value = -16;
    this.comp.knee.value = 10;
    this.comp.ratio.value = 4;
    this.comp.attack.value = 0.003;
    this.comp.release.value = 0.2;
    this.comp.connect(this.output || ctx.destination);

    this.master = ctx.createGain();
    this.master.gain.value = 0.9;
    this.master.connect(this.comp);

    // A quiet, darkened feedback echo for a little space.
    this.send = ctx.createGain();
    this.send.gain.value = 0.16;
    const delay = ctx.createDelay(1.0);
    delay.delayTime.value = 0.27;
    const fb = ctx.createGain();
    fb.gain.value = 0.3;
    const damp = ctx.createBiquadFilter();
    damp.type = "lowpass";
    damp.frequency.value = 2400;
    this.send.connect(delay);
    delay.connect(damp);
    damp.connect(fb);
    fb.connect(delay);
    damp.connect(this.comp);
  }

  _changed() {
    if (this.onChange) {
      try { this.onChange(this); } catch (err) { console.warn(err); }
    }
  }

  // Start a note `delay` seconds from now. With `duration` (seconds) it stops
  // by itself; without, it sounds until noteOff(voice). Returns the voice, or
  // null when there is no audio.
  noteOn(pitch, velocity, { delay = 0, duration = null } = {}) {
    const ctx = this.ensure();
    if (!ctx) return null;
    while (this.voices.length >= this.maxVoices) this._steal(this.voices[0]);

    const v = Math.min(1, Math.max(1, velocity) / 127);
    const f = midiToHz(pitch);
    const t0 = ctx.currentTime + Math.max(0, delay);
    const peak = 0.03 + 0.22 * Math.pow(v, 1.5);

    const o1 = ctx.createOscillator();
    o1.type = "sawtooth";
    o1.frequency.value = f;
    o1.detune.value = -6;
    const o2 = ctx.createOscillator();
    o2.type = "triangle";
    o2.frequency.value = f;
    o2.detune.value = 7;
    const g1 = ctx.createGain();
    g1.gain.value = 0.45;
    const g2 = ctx.createGain();
    g2.gain.value = 0.8;

    const filter = ctx.createBiquadFilter();
    filter.type = "lowpass";
    filter.Q.value = 0.9;
    const open = Math.min(16000, f * (2 + 16 * Math.pow(v, 1.3)) + 400);
    const closed = Math.min(8000, f * (1.3 + 3 * v) + 200);
    filter.frequency.setValueAtTime(open, t0);
    filter.frequency.setTargetAtTime(closed, t0 + ATTACK, 0.35);

    const amp = ctx.createGain();
    amp.gain.setValueAtTime(0, t0);
    amp.gain.linearRampToValueAtTime(peak, t0 + ATTACK);
    amp.gain.setTargetAtTime(peak * SUSTAIN, t0 + ATTACK, DECAY_TC);

    o1.connect(g1).connect(filter);
    o2.connect(g2).connect(filter);
    filter.connect(amp);
    amp.connect(this.master);
    amp.connect(this.send);

    const voice = {
      pitch, velocity, t0, peak, o1, o2, amp,
      released: false, ended: false, stopAt: null, timer: null,
    };
    o1.onended = () => this._ended(voice);
    o1.start(t0);
    o2.start(t0);
    this.voices.push(voice);
    this.scheduled += 1;
    if (duration != null) this.noteOff(voice, t0 + Math.max(0.02, duration));
    this._changed();
    return voice;
  }

  // The envelope's value at time t (seconds, context clock), before release.
  _envelope(voice, t) {
    const dt = t - voice.t0;
    if (dt <= 0) return 0;
    if (dt < ATTACK) return voice.peak * (dt / ATTACK);
    const sus = voice.peak * SUSTAIN;
    return sus + (voice.peak - sus) * Math.exp(-(dt - ATTACK) / DECAY_TC);
  }

  // Release a voice at context time `at` (default now).
  noteOff(voice, at = null, tc = RELEASE_TC) {
    if (!voice || voice.released || !this.ctx) return;
    voice.released = true;
    const now = this.ctx.currentTime;
    const t = Math.max(now, at == null ? now : at);
    const g = voice.amp.gain;
    try {
      g.cancelScheduledValues(t);
      g.setValueAtTime(this._envelope(voice, t), t);
      g.setTargetAtTime(0, t, tc);
      voice.stopAt = t + tc * 6;
      voice.o1.stop(voice.stopAt);
      voice.o2.stop(voice.stopAt);
    } catch (err) {
      console.warn("yoshimidi: noteOff", err);
    }
    // onended does not fire when the context is suspended: count it gone anyway.
    const ms = (voice.stopAt - now) * 1000 + 250;
    voice.timer = setTimeout(() => this._ended(voice), ms);
  }

  _steal(voice) {
    // Fade the oldest voice out fast; it stops counting at once (it is gone
    // from the list), its nodes are let go when it has ended.
    this.noteOff(voice, null, STEAL_TC);
    const i = this.voices.indexOf(voice);
    if (i >= 0) this.voices.splice(i, 1);
  }

  _ended(voice) {
    if (voice.ended) return;
    voice.ended = true;
    if (voice.timer) clearTimeout(voice.timer);
    const i = this.voices.indexOf(voice);
    if (i >= 0) this.voices.splice(i, 1);
    try { voice.amp.disconnect(); } catch (err) { /* already gone */ }
    this._changed();
  }

  // Release everything (e.g. panic).
  allOff() {
    for (const voice of [...this.voices]) this.noteOff(voice);
  }
}
