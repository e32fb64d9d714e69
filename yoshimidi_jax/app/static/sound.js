// The page's sound: General MIDI instruments from a soundfont, played by the
// SF2/SF3 synthesizer spessasynth_lib in an AudioWorklet (vendor/, see
// vendor/README.md), or the page's own small synth (synth.js), which also
// plays while the font loads and whenever it cannot load. One AudioContext,
// one volume for both. A note is handed to the audio graph the moment it
// arrives: a noteOn without a time is applied as soon as the worklet gets the
// message and sounds from its next render quantum (128 frames, ~3 ms).
// Every note started is timed (Sound.times, a NoteTimes ring buffer, always
// on): benchmarks/page_latency.py reads it.

import { Synth } from "./synth.js";
import { readStored, writeStored } from "./storage.js";

const VENDOR = new URL("./vendor/", import.meta.url);
export const FONT_URL = new URL("soundfont/FluidR3Mono_GM_yoshimidi.sf3", VENDOR).href;
export const FONT_NAME = "FluidR3 Mono GM";
const LIB_URL = new URL("spessasynth/spessasynth_lib.min.js", VENDOR).href;
const PROCESSOR_URL = new URL("spessasynth/spessasynth_processor.min.js", VENDOR).href;
const PORT_SHIM_URL = new URL("./audio_port_shim.js", import.meta.url).href;
const LOAD_TIMEOUT_MS = 20000;
// The synthesizer plays ~12 dB below the own synth (a single note's RMS,
// measured in Chromium): lifted by this much, then softly limited.
const FONT_TRIM = 4;

// The GM programs the trimmed font holds (vendor/trim_soundfont.mjs keeps these).
export const INSTRUMENTS = [
  { id: "piano", name: "piano", program: 0 },
  { id: "epiano", name: "electric piano", program: 4 },
  { id: "harpsichord", name: "harpsichord", program: 6 },
  { id: "vibraphone", name: "vibraphone", program: 11 },
  { id: "organ", name: "drawbar organ", program: 16 },
  { id: "church-organ", name: "church organ", program: 19 },
  { id: "guitar", name: "nylon guitar", program: 24 },
  { id: "harp", name: "harp", program: 46 },
  { id: "strings", name: "strings", program: 48 },
  { id: "choir", name: "choir", program: 52 },
  { id: "clarinet", name: "clarinet", program: 71 },
  { id: "flute", name: "flute", program: 73 },
  { id: "synth", name: "own synth", program: null },
];
const BY_ID = new Map(INSTRUMENTS.map((i) => [i.id, i]));

// Each note gets a MIDI channel on which its key is free, so one note's
// note-off never cuts another note of the same pitch (channel 9, the drums,
// is left out). All of them play the chosen program.
const CHANNELS = [0, 1, 2, 3, 4, 5, 6, 7];
// Channels for notes the websocket's worker starts itself (a "route",
// worker_socket.js): each is lent to one press at a time, from the key
// going down until its notes are over, so no two notes share a key on one.
const ROUTE_CHANNELS = [8, 10, 11, 12, 13, 14];
// The font's samples are Ogg Vorbis: the synthesizer decodes each one the
// first time a note needs it, in the audio thread (up to tens of ms for one
// sample on a busy 2-core machine), which would delay that note and break the
// sound. So when a program is chosen, every key at a spread of velocities is
// struck once on this muted channel: all its samples are decoded before a
// player's note needs them.
const WARM_CHANNEL = 15;
const WARM_VELOCITIES = [1, 16, 32, 48, 64, 80, 96, 112, 127];

// Key-to-sound timing, always on: the last `size` notes started, each
// {n, pitch, engine, down, sent, arrived, modelMs, started, sounds}, all in page
// time (ms on performance.now()'s clock) but `modelMs`, the model's own time for
// the answer (its `server_ms`, null where not given): `down` is the time stamp of the key event
// that asked for the note (null if none was given), `sent` when its message
// left for the model and `arrived` when the model's answer came (null where
// not given: the split of key -> sound into the page, the model's round trip
// and the page again), `started` when the note had
// been handed to the audio graph (the own synth's oscillators started, or the
// note-on posted to the font's worklet), `sounds` when its first sample is
// due at the output (its AudioContext start time through getOutputTimestamp()).
export class NoteTimes {
  constructor(size = 1024) {
    this.size = size;
    this.count = 0;             // notes ever timed; entry n is ring[n % size]
    this.ring = new Array(size);
  }

  add(entry) {
    entry.n = this.count;
    this.ring[this.count % this.size] = entry;
    this.count += 1;
  }

  // The entries from the n-th on (those still kept), oldest first.
  since(n = 0) {
    const out = [];
    for (let i = Math.max(n, this.count - this.size); i < this.count; i++) out.push(this.ring[i % this.size]);
    return out;
  }
}

export class Sound {
  constructor({ maxVoices = 48, fontUrl = FONT_URL, instrument = "piano", volume = 80 } = {}) {
    this.ctx = null;
    this.master = null;          // volume, after both engines
    this.own = null;             // the own Synth (fallback)
    this.font = null;            // the WorkletSynthesizer once the font is ready
    this.opening = null;         // ... while it loads
    this.fontUrl = fontUrl;
    this.fontState = "idle";     // idle | loading | ready | failed
    this.fontError = null;
    this.fontBytes = 0;
    this.maxVoices = maxVoices;
    this.instrument = BY_ID.has(instrument) ? instrument : "piano";
    this.volume = volume;        // 0..100 (the slider)
    this.fontVoices = new Set(); // font notes not yet released
    this.owners = Array.from({ length: 16 }, () => new Map());  // channel -> pitch -> the voice that owns the key
    this.routesLent = new Set();  // route channels lent to a press not answered yet (lendRoute)
    this.fontScheduled = 0;
    this.fontNotesSeen = 0;      // note-ons the synthesizer reported back (the player's channels)
    this.channelPrograms = new Array(16).fill(null);  // each channel's program, as the synthesizer reports it
    this.warmNotesSeen = 0;      // ... and on the warm-up channel
    this.warmed = new Set();     // programs whose samples are decoded
    this.lastFontNote = null;
    this.onChange = null;
    this.analyser = null;
    this.started = false;
    this.times = new NoteTimes();
  }

  // -------------------------------------------------------------- state

  get state() {
    return this.ctx ? this.ctx.state : "none";
  }

  get active() {
    return (this.own ? this.own.active : 0) + this.fontVoices.size;
  }

  get scheduled() {
    return (this.own ? this.own.scheduled : 0) + this.fontScheduled;
  }

  // "font" when the chosen instrument plays from the soundfont, else "synth".
  get engine() {
    return this.fontState === "ready" && this.instrument !== "synth" ? "font" : "synth";
  }

  get gain() {
    return Math.pow(Math.max(0, Math.min(100, this.volume)) / 100, 2);
  }

  // What is playing, in words (the page shows it).
  describe() {
    const inst = BY_ID.get(this.instrument);
    if (this.engine === "font") return `${inst.name} · ${FONT_NAME} soundfont`;
    if (this.instrument === "synth") return "own synth";
    if (this.fontState === "loading" || this.fontState === "idle") return `own synth · loading the ${inst.name}…`;
    return `own synth · soundfont not loaded (${this.fontError})`;
  }

  // Plain data for the page's test hooks.
  info() {
    const inst = BY_ID.get(this.instrument);
    return {
      engine: this.engine, instrument: this.instrument, program: inst.program, fontState: this.fontState,
      fontError: this.fontError, fontBytes: this.fontBytes, volume: this.volume,
      gain: this.master ? this.master.gain.value : this.gain, text: this.describe(),
      fontScheduled: this.fontScheduled, fontNotesSeen: this.fontNotesSeen,
      lastFontNote: this.lastFontNote, channelPrograms: [...this.channelPrograms],
      warmNotesSeen: this.warmNotesSeen, warmed: [...this.warmed],
    };
  }

  _changed() {
    if (this.onChange) {
      try { this.onChange(this); } catch (err) { console.warn(err); }
    }
  }

  // -------------------------------------------------------------- setup

  // Builds the audio graph and starts loading the font; no user gesture is
  // needed (the context stays suspended until ensure() is called from one).
  start() {
    if (this.started) return;
    this.started = true;
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) {
      this.fontState = "failed";
      this.fontError = "no Web Audio in this browser";
      this._changed();
      return;
    }
    try {
      this.ctx = new AC({ latencyHint: "interactive" });
    } catch (err) {
      console.warn("yoshimidi: no AudioContext", err);
      this.ctx = null;
      this.fontState = "failed";
      this.fontError = "no AudioContext";
      this._changed();
      return;
    }
    this.master = this.ctx.createGain();
    this.master.gain.value = this.gain;
    this.master.connect(this.ctx.destination);
    this.own = new Synth({ maxVoices: this.maxVoices, context: this.ctx, output: this.master });
    this.own.onChange = () => this._changed();
    this.ctx.addEventListener("statechange", () => this._changed());
    this._loadFont();
  }

  async _loadFont() {
    this.fontState = "loading";
    this._changed();
    let timer = null;
    try {
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${LOAD_TIMEOUT_MS / 1000} s`)), LOAD_TIMEOUT_MS);
      });
      await Promise.race([this._openFont(), timeout]);
      this.fontState = "ready";
      this.fontError = null;
    } catch (err) {
      this.fontState = "failed";
      this.fontError = String((err && err.message) || err);
      console.warn("yoshimidi: the soundfont did not load; playing the own synth:", err);
      if (this.opening) {
        try { this.opening.disconnect(); } catch (e) { /* not connected */ }
      }
      this.font = null;
    } finally {
      clearTimeout(timer);
    }
    this._changed();
  }

  async _openFont() {
    const ctx = this.ctx;
    if (!ctx.audioWorklet) throw new Error("no AudioWorklet in this browser");
    const bytes = fetch(this.fontUrl).then((r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return r.arrayBuffer();
    });
    // the shim first: the processor registers through it (audio_port_shim.js)
    const modules = ctx.audioWorklet.addModule(PORT_SHIM_URL)
      .catch((err) => console.warn("yoshimidi: no second port into the synthesizer (the page plays every note)", err))
      .then(() => ctx.audioWorklet.addModule(PROCESSOR_URL));
    const [lib, buffer] = await Promise.all([import(LIB_URL), bytes, modules]);
    const synth = new lib.WorkletSynthesizer(ctx);
    this.opening = synth;
    const trim = ctx.createGain();
    trim.gain.value = FONT_TRIM;
    const limiter = ctx.createWaveShaper();  // no look-ahead, so no delay (a compressor would add ~6 ms)
    limiter.curve = softClipCurve();
    synth.connect(trim);
    trim.connect(limiter);
    limiter.connect(this.master);
    this.fontBytes = buffer.byteLength;
    await synth.soundBankManager.addSoundBank(buffer, "main");
    await synth.isReady;
    synth.eventHandler.addEvent("noteOn", "yoshimidi", (e) => {
      if (e.channel === WARM_CHANNEL) {
        this.warmNotesSeen += 1;
        return;
      }
      this.fontNotesSeen += 1;
      this.lastFontNote = { pitch: e.midiNote, velocity: e.velocity, channel: e.channel };
      this._changed();
    });
    synth.eventHandler.addEvent("programChange", "yoshimidi", (e) => {
      this.channelPrograms[e.channel] = e.program;
    });
    if (this.fontState !== "loading") return;  // timed out meanwhile: stays on the own synth
    this.font = synth;
    this._program();
  }

  _program() {
    const inst = BY_ID.get(this.instrument);
    if (!this.font || inst.program === null) return;
    for (const ch of [...CHANNELS, ...ROUTE_CHANNELS]) this.font.programChange(ch, inst.program);
    this._warm(inst.program);
  }

  _warm(program) {
    if (this.warmed.has(program)) return;
    this.warmed.add(program);
    const f = this.font;
    f.controllerChange(WARM_CHANNEL, 7, 0);     // channel volume 0
    f.programChange(WARM_CHANNEL, program);
    for (let key = 21; key <= 108; key++) {
      for (const vel of WARM_VELOCITIES) f.noteOn(WARM_CHANNEL, key, vel);
      f.controllerChange(WARM_CHANNEL, 120, 0); // all sound off: no voice is left to render
    }
  }

  // The context, resumed if it was suspended. Call from a user gesture.
  ensure() {
    if (!this.started) this.start();
    if (!this.ctx) return null;
    return this.own.ensure();
  }

  setInstrument(id) {
    if (!BY_ID.has(id) || id === this.instrument) return;
    this.instrument = id;
    this._program();
    this._changed();
  }

  setVolume(v) {
    this.volume = Math.max(0, Math.min(100, Number(v)));
    if (this.master) this.master.gain.setTargetAtTime(this.gain, this.ctx.currentTime, 0.01);
    this._changed();
  }

  // The output's RMS level over the last ~40 ms (for the tests and a meter).
  level() {
    if (!this.ctx) return 0;
    if (!this.analyser) {
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 2048;
      this.master.connect(this.analyser);
    }
    const buf = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    return Math.sqrt(sum / buf.length);
  }

  // -------------------------------------------------------------- routes

  // A port into the synthesizer's processor (audio_port_shim.js), for the
  // websocket's worker; null while the soundfont does not play.
  notePort() {
    if (!this.font || typeof MessageChannel !== "function") return null;
    const { port1, port2 } = new MessageChannel();
    this.font.post({ type: "yoshimidiNotePort", port: port2 }, [port2]);
    return port1;
  }

  // A channel for the notes of one press that the worker will start itself
  // ({channel}), or null (the font does not play, or every route channel is
  // lent): then its answer plays here, as any other.
  lendRoute() {
    if (this.engine !== "font" || !this.ctx || this.ctx.state !== "running") return null;
    const now = this.ctx.currentTime;
    for (const channel of ROUTE_CHANNELS) {
      if (this.routesLent.has(channel)) continue;
      const busy = [...this.owners[channel].values()].some((v) => !v.released || v.until + 0.05 > now);
      if (busy) continue;
      this.routesLent.add(channel);
      return { channel };
    }
    return null;
  }

  // The press lent `route` is answered (its notes, if any, now have voices) or never will be.
  returnRoute(route) {
    if (route) this.routesLent.delete(route.channel);
  }

  // -------------------------------------------------------------- notes

  // Same contract as Synth.noteOn: starts `delay` s from now; with `duration`
  // it stops by itself, without it sounds until noteOff(voice). `down`: the
  // page time of the key event that asked for it, `sent` and `arrived` those of
  // its message to the model and the answer, `modelMs` the model's own time for
  // the answer, for this.times.
  // `started`: the page time the worker started this note itself on channel
  // `channel` (a route: only its voice is kept here, for the note-off).
  noteOn(pitch, velocity, { delay = 0, duration = null, down = null, sent = null, arrived = null,
                            modelMs = null, started = null, channel = null } = {}) {
    const ctx = this.ensure();
    if (!ctx) return null;
    let voice = null;
    if (started !== null && this.font) {
      voice = this._fontNoteOn(pitch, velocity, 0, duration, channel);
    } else if (this.engine !== "font") {
      const v = this.own.noteOn(pitch, velocity, { delay, duration });
      if (v) voice = { engine: "synth", v, t0: v.t0 };
    } else {
      voice = this._fontNoteOn(pitch, velocity, delay, duration);
    }
    if (voice) {
      // (the font's worklet applies an untimed note-on in the first render quantum after it gets it)
      if (started === null) started = performance.now();
      const time = (x) => (Number.isFinite(x) ? x : null);
      this.times.add({ pitch, engine: voice.engine, routed: channel !== null, channel: voice.channel ?? null,
                       down: time(down), sent: time(sent), arrived: time(arrived),
                       modelMs: time(modelMs), started, sounds: this.pageTime(Math.max(voice.t0, ctx.currentTime)) });
    }
    return voice;
  }

  // The page time (ms, performance.now()'s clock) at which the sample at
  // context time `t` (s) leaves the output: through the context's latest
  // output time stamp; before it has one, now plus the time until t plus the
  // output latency the context reports.
  pageTime(t) {
    const ctx = this.ctx;
    if (!ctx) return null;
    const ts = typeof ctx.getOutputTimestamp === "function" ? ctx.getOutputTimestamp() : null;
    if (ts && ts.performanceTime > 0) return ts.performanceTime + (t - ts.contextTime) * 1000;
    const latency = (ctx.baseLatency || 0) + (ctx.outputLatency || 0);
    return performance.now() + (t - ctx.currentTime + latency) * 1000;
  }

  // routed: the channel the worker started the note on (no note-on sent from here).
  _fontNoteOn(pitch, velocity, delay, duration, routed = null) {
    const now = this.ctx.currentTime;
    const t0 = now + Math.max(0, delay);
    const vel = Math.max(1, Math.min(127, Math.round(velocity)));
    const ch = routed ?? this._freeChannel(pitch, t0);
    const voice = { engine: "font", pitch, channel: ch, t0, until: Infinity, released: false, timer: null };
    const prev = this.owners[ch].get(pitch);
    if (prev && !prev.released) this._forget(prev);   // stolen: its own note-off must not cut this one
    this.owners[ch].set(pitch, voice);
    if (routed === null) this.font.noteOn(ch, pitch, vel, delay > 0 ? { time: t0 } : undefined);
    this.fontScheduled += 1;
    this.fontVoices.add(voice);
    while (this.fontVoices.size > this.maxVoices) {  // too many held: the oldest is let go
      const oldest = this.fontVoices.values().next().value;
      this._fontOff(oldest, now);
      this._forget(oldest);
    }
    if (duration != null) this._fontOff(voice, t0 + Math.max(0.02, duration));
    this._changed();
    return voice;
  }

  // A channel whose key `pitch` is free (or frees before t0); else the one that frees first.
  _freeChannel(pitch, t0) {
    let ch = CHANNELS[0];
    let best = Infinity;
    for (const c of CHANNELS) {
      const owner = this.owners[c].get(pitch);
      // (with a margin: a timed note-off still queued in the worklet must not hit the new note)
      const until = owner ? owner.until + 0.05 : -Infinity;
      if (until <= t0) return c;
      if (until < best) { ch = c; best = until; }
    }
    return ch;
  }

  _fontOff(voice, at) {
    if (voice.released) return;
    voice.released = true;
    const now = this.ctx.currentTime;
    voice.until = Math.max(now, at);
    if (this.owners[voice.channel].get(voice.pitch) === voice) {
      this.font.noteOff(voice.channel, voice.pitch, voice.until > now ? { time: voice.until } : undefined);
    }
    voice.timer = setTimeout(() => this._forget(voice), Math.max(0, (voice.until - now) * 1000));
  }

  _forget(voice) {
    voice.released = true;
    clearTimeout(voice.timer);
    if (this.fontVoices.delete(voice)) this._changed();
  }

  noteOff(voice) {
    if (!voice) return;
    if (voice.engine === "synth") this.own.noteOff(voice.v);
    else if (this.font) this._fontOff(voice, this.ctx.currentTime);
  }

  allOff() {
    if (this.own) this.own.allOff();
    for (const v of [...this.fontVoices]) this.noteOff(v);
  }
}

// Linear up to 0.7, then bending smoothly toward 1: loud chords are rounded
// off instead of clipped hard.
function softClipCurve(n = 4097) {
  const curve = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = (2 * i) / (n - 1) - 1;
    const a = Math.abs(x);
    curve[i] = a <= 0.7 ? x : Math.sign(x) * (0.7 + 0.3 * Math.tanh((a - 0.7) / 0.3));
  }
  return curve;
}

// ---------------------------------------------------------------- controls

const STORE = "yoshimidi.sound";

function remembered() {
  return readStored(STORE);
}

function remember(sound) {
  writeStored(STORE, { instrument: sound.instrument, volume: sound.volume });
}

// The settings the player chose last time (instrument, volume), for new Sound(...).
export function savedSoundSettings() {
  const s = remembered();
  const out = {};
  if (typeof s.instrument === "string" && BY_ID.has(s.instrument)) out.instrument = s.instrument;
  if (Number.isFinite(s.volume)) out.volume = Math.max(0, Math.min(100, s.volume));
  return out;
}

// Wires the instrument <select>, the volume slider and its <output>, and the
// line that says what is playing. Returns render(), to call when the sound changes.
export function bindSoundControls(sound, { select, volume, volumeValue, status }) {
  select.textContent = "";
  for (const inst of INSTRUMENTS) {
    const o = document.createElement("option");
    o.value = inst.id;
    o.textContent = inst.name;
    select.appendChild(o);
  }
  select.value = sound.instrument;
  volume.value = String(sound.volume);

  select.addEventListener("change", () => {
    sound.setInstrument(select.value);
    remember(sound);
    select.blur();  // the letters play again
  });
  volume.addEventListener("input", () => {
    sound.setVolume(Number(volume.value));
    remember(sound);
  });
  volume.addEventListener("change", () => volume.blur());
  volume.addEventListener("pointerup", () => setTimeout(() => volume.blur(), 0));

  return function render() {
    const failed = sound.fontState === "failed";
    for (const o of select.options) o.disabled = failed && o.value !== "synth";
    const shown = failed ? "synth" : sound.instrument;  // without the font, the own synth is what plays
    if (select.value !== shown) select.value = shown;
    const v = `${Math.round(sound.volume)}%`;
    if (volumeValue.textContent !== v) volumeValue.textContent = v;
    const text = sound.describe();
    if (status.textContent !== text) status.textContent = text;
    status.dataset.engine = sound.engine;
    status.dataset.font = sound.fontState;
    status.title = sound.engine === "font"
      ? `General MIDI program ${BY_ID.get(sound.instrument).program} from the ${FONT_NAME} soundfont (MIT), played by spessasynth_lib`
      : sound.fontState === "failed" ? `the page's own synth: ${sound.fontUrl} did not load (${sound.fontError})`
      : "the page's own two-oscillator synth";
  };
}
