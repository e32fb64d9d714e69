// The page's local engine as a session: the instrument's play protocol v1
// (yoshimidi_jax/app/protocol.py) answered in the page by the exported model
// (./model.js), with no server. A LocalSocket looks to app.js like the
// server's WebSocket (readyState, onopen, onmessage, send, close): each
// message sent is played here and answered with the server's own replies
// (hello, notes, settings, reset, recording, pong, error).
//
// What a press feeds is what the server's Player feeds (play/press.py,
// play/player.py, app/session.py):
//
//     TIME(dt)  CONTROL  [NOTE_OFF of keys struck again]  [VELOCITY if its bin changes]   forced
//     NOTE_ON x keys, low to high, each sampled under the loose or strict mask         (make_press_row)
//
// (the last NOTE_ON is stepped after the answer is out: LocalSession.feedUnfed)
//
// a key joining the open press ("add"): [VELOCITY] NOTE_ON; a release:
// TIME NOTE_OFF... When the cache fills, its recent half is stepped into a
// fresh cache from where its first kept token stands (sample/sampler.py
// window_start; play/host.py refill_window), the Track carried over.
//
//     const engine = await localEngine("./");   // null unless ./engine.json says {"engine": "local"}
//     const sock = engine.open();               // a LocalSocket

import { loadModel } from "./model.js";
import { allowedTokens, anyAllowed, constraints, noteOnsOnly } from "./masks.js";
import { Sampler } from "./sample.js";
import { Track } from "./track.js";

export const ENGINE_FILE = "engine.json";
const PROTOCOL_VERSION = 1;
// the instrument's limits (keys a press may name, notes it plays, the most tokens one
// press may add, the piano's range) come from the manifest's "play" (export/step.py play_limits)
const SHORT_NOTE_S = 0.25; // a note still held when a recording stops lasts at least this long

/** Reads `base`engine.json; {"engine": "local"} -> a LocalEngine (its model
 * loads in the background), anything else or no file -> null (the server plays).
 * Registers the site's service worker (sw.js) where the config names one. */
export async function localEngine(base = "./") {
  let config;
  try {
    const res = await fetch(base + ENGINE_FILE, { cache: "no-cache" });
    if (!res.ok) return null;
    config = await res.json();
  } catch (err) {
    return null;
  }
  if (!config || config.engine !== "local") return null;
  if (config.service_worker && "serviceWorker" in navigator) {
    navigator.serviceWorker.register(base + config.service_worker).catch((err) => {
      console.warn("yoshimidi: no service worker (the page will not work offline)", err);
    });
  }
  return new LocalEngine(base + (config.model || ""), config);
}

/** Resolves in a task of its own (after the events already waiting, a key's
 * included): promise chains alone run ahead of every event. */
function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

export class LocalEngine {
  constructor(modelBase, config) {
    this.config = config;
    this.modelBase = modelBase;
    this.model = null;
    this.loading = null;
    this.sessions = 0;
  }

  /** The model, loaded once (every LocalSocket of the page shares it: one session at a time). */
  load() {
    if (!this.loading) {
      this.loading = loadModel(this.modelBase, { threads: 1 }).then((m) => (this.model = m));
    }
    return this.loading;
  }

  /** A socket the page talks to as to the server's websocket. */
  open() {
    return new LocalSocket(this);
  }
}

export class LocalSocket {
  constructor(engine) {
    this.engine = engine;
    this.readyState = 0; // CONNECTING, then OPEN (1) once the model is loaded, CLOSED (3)
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this.queue = Promise.resolve(); // messages are played one after another, as the server does
    engine.load().then((model) => {
      if (this.readyState !== 0) return;
      this.session = new LocalSession(model, `local-${++engine.sessions}`);
      engine.current = this.session; // the session playing now (for the browser tests)
      this.readyState = 1;
      if (this.onopen) this.onopen({});
      this.emit(this.session.hello());
    }, (err) => {
      console.error("yoshimidi: the local model did not load", err);
      this.readyState = 3;
      if (this.onerror) this.onerror({ error: err });
      this.emit({ type: "refused", reason: `the local model did not load: ${err.message || err}` });
      if (this.onclose) this.onclose({ code: 1013, reason: String(err.message || err) });
    });
  }

  emit(msg) {
    if (this.onmessage) this.onmessage({ data: JSON.stringify(msg) });
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("the local engine is not open");
    this.enqueue(async () => {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (err) {
        return this.emit({ type: "error", field: null, error: "not JSON", id: null });
      }
      try {
        for (const reply of await this.session.handle(msg)) this.emit(reply);
      } catch (err) {
        const e = err instanceof FieldError ? err : new FieldError(null, String(err.message || err), msg && msg.id);
        if (!(err instanceof FieldError)) console.error("yoshimidi: local engine", err);
        this.emit({ type: "error", field: e.field, error: e.message, id: e.id ?? null });
      }
      // answered: the press's last NOTE_ON is stepped now, and a cache that the next presses
      // might overflow begins its refill, between presses
      await this.session.feedUnfed();
      this.session.refillAhead((task) => this.enqueue(task));
    });
  }

  /** A turn of work at the end of the queue (a message, a refill's step):
   * turns run one after another, as the server plays a session's messages; a
   * message sent while a refill goes on is played before its next step. */
  enqueue(task) {
    this.queue = this.queue.then(async () => {
      if (this.readyState !== 1) return;
      try {
        await task();
      } catch (err) {
        console.error("yoshimidi: local engine", err);
      }
    });
  }

  close() {
    if (this.readyState === 3) return;
    this.readyState = 3;
    if (this.onclose) this.onclose({ code: 1000, reason: "closed" });
  }
}

class FieldError extends Error {
  constructor(field, why, id = null) {
    super(why);
    this.field = field;
    this.id = id;
  }
}

function number(msg, field, lo, hi, integer = false) {
  const v = msg[field];
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new FieldError(field, `expected ${integer ? "an integer" : "a number"} in [${lo}, ${hi}]`, msg.id);
  }
  if (v < lo || v > hi) throw new FieldError(field, `${v} is out of range [${lo}, ${hi}]`, msg.id);
  return v;
}

function keysOf(msg, maxKeys) {
  if (!Array.isArray(msg.keys) || msg.keys.length < 1 || msg.keys.length > maxKeys) {
    throw new FieldError("keys", `expected 1 to ${maxKeys} keys`, msg.id);
  }
  for (const k of msg.keys) {
    if (!Number.isInteger(k) || k < 0 || k > 127) throw new FieldError("keys", `${k} is not a MIDI note 0..127`, msg.id);
  }
  return [...new Set(msg.keys)].sort((a, b) => a - b);
}

/** One player's session on the local model: app/session.py's bookkeeping and
 * play/player.py's decoding, in one. */
export class LocalSession {
  constructor(model, id) {
    this.model = model;
    this.vocab = model.vocab;
    this.manifest = model.manifest;
    this.sampler = new Sampler(model.manifest);
    this.limits = model.manifest.play; // max_keys, max_notes, job_tokens, pitch_lo, pitch_hi
    this.id = id;
    this.settings = { temperature: 1.0, top_p: 0.95, strict: false };
    const range = { pitchLo: this.limits.pitch_lo, pitchHi: this.limits.pitch_hi };
    this.loose = constraints({ ...range, allowControls: false, allowEos: false });
    this.tight = constraints({ ...range, allowControls: false, allowEos: false,
                               strict: true });
    this.presses = 0;
    this.recording = null;
    this.openNotes = new Map(); // pitch -> its note in the recording
    this.lastSeenMs = 0;
    this.random = Math.random; // uniform draws in [0, 1) (tests may replace it)
    this.fresh = true; // no context yet: the first message starts it
    this.unfed = null;
    this.styleName = "any";
  }

  hello() {
    const names = this.manifest.styles.names || [];
    return {
      type: "hello", protocol: PROTOCOL_VERSION, session: this.id, engine: "local",
      model: { name: "local model", step: this.manifest.run_step, bytes: this.manifest.model_bytes },
      settings: { ...this.settings }, styles: names, style: this.styleName,
      limits: { max_keys: this.limits.max_keys, max_notes_per_press: this.limits.max_notes },
    };
  }

  // -- the model's context (play/host.py SessionHost + play/player.py) ---------------------------
  async newContext() {
    this.refill = null;
    this.model.reset();
    this.ids = [];
    this.times = [];
    this.velBin = -1;
    this.sounding = new Set();
    this.openPress = [];
    this.openControl = null;
    this.prevRefKey = null;
    this.lastFedMs = null;
    this.owner = new Map(); // held key -> the pitch it sounds
    this.fresh = false;
    this.unfed = null; // a press's last NOTE_ON, answered but not yet stepped (feedUnfed)
    await this.feed([this.vocab.specials.BOS], [0]);
  }

  /** A press's last NOTE_ON is sampled and answered before it is stepped:
   * nothing in the press needs what comes after it, so its step waits until
   * the answer is out (LocalSocket.send) or the next message comes. */
  async feedUnfed() {
    if (this.unfed === null) return;
    const token = this.unfed;
    this.unfed = null;
    await this.feed([token], [0]);
  }

  /** Steps `ids` (their `times`), up to the model's tokensPerCall in one call of the graph. */
  async feed(ids, times) {
    const k = this.model.tokensPerCall;
    for (let i = 0; i < ids.length; i += k) {
      const out = await this.model.run(ids.slice(i, i + k), times.slice(i, i + k));
      this.logits = out.logits;
      this.timeLogits = out.timeLogits;
    }
    for (let i = 0; i < ids.length; i++) {
      this.ids.push(ids[i]);
      this.times.push(Math.fround(times[i]));
      if (ids[i] === this.vocab.specials.TIME) { this.openPress = []; this.openControl = null; }
    }
  }

  /** app/batcher.py's refill ahead: after an answer, when a next press and one
   * more might not fit the cache (BatchPlayer.needs_room with REFILL_AHEAD_TOKENS),
   * the recent half of the tokens is stepped into a second cache from where
   * its first token stands (windowStart), one call (tokensPerCall tokens) per
   * turn of the socket's queue (`enqueue`), so a key that comes meanwhile waits one call at most;
   * the tokens fed meanwhile follow it, and once it holds them all it takes
   * the place of the cache in use (the Track carries over). */
  refillAhead(enqueue) {
    const m = this.model, keep = Math.floor(m.capacity / 2);
    if (this.fresh || this.refill || this.ids.length <= keep ||
        this.ids.length + 2 * this.limits.job_tokens <= m.capacity) return;
    const base = this.ids.length - keep; // where the kept tokens start in this.ids
    const refill = { base, fed: 0, cache: m.fork() };
    refill.cache.track = windowStart(this.ids.slice(base), this.times.slice(base), m.track, this.vocab);
    this.refill = refill;
    const turn = async () => {
      if (this.refill !== refill) return; // the session started afresh, or refilled in a press
      const have = this.ids.length - refill.base;
      if (refill.fed < have) {
        const i = refill.base + refill.fed, n = Math.min(m.tokensPerCall, have - refill.fed);
        const out = await refill.cache.run(this.ids.slice(i, i + n), this.times.slice(i, i + n));
        refill.logits = out.logits;
        refill.timeLogits = out.timeLogits;
        refill.fed += n;
        // the next step after the page's own events (a key's message then comes before it in the queue)
        nextTask().then(() => enqueue(turn));
        return;
      }
      m.cache = refill.cache.cache; // caught up: it takes the place of the cache in use
      m.index = refill.cache.index;
      this.logits = refill.logits; // what comes next, as the new cache sees it
      this.timeLogits = refill.timeLogits;
      this.ids = this.ids.slice(refill.base);
      this.times = this.times.slice(refill.base);
      this.refill = null;
      this.refills = (this.refills || 0) + 1;
      this.refillsAhead = (this.refillsAhead || 0) + 1;
    };
    enqueue(turn);
  }

  /** play/host.py refill_window: when `needed` more tokens would not fit the
   * cache, its recent half is stepped into a fresh cache from where the first
   * kept token stands (sampler.py window_start); the Track carries over. */
  async room(needed) {
    const m = this.model, capacity = m.capacity;
    if (this.ids.length + needed <= capacity) return;
    this.refill = null; // a refill ahead that has not caught up: this one replaces it
    const keep = Math.floor(capacity / 2);
    const ids = this.ids.slice(-keep), times = this.times.slice(-keep);
    const track = m.track;
    const start = windowStart(ids, times, track, this.vocab);
    const open = this.openPress, control = this.openControl;
    m.reset();
    m.track = start;
    this.ids = [];
    this.times = [];
    await this.feed(ids, times);
    m.track = track;
    this.openPress = open; // no TIME fed: the open press stays open
    this.openControl = control;
    this.refills = (this.refills || 0) + 1;
  }

  velocityBin(velocity) {
    const v = Math.max(1, Math.min(127, Math.round(velocity)));
    return Math.floor((v * this.vocab.numVelocityBins) / 128);
  }

  clipSeconds(dt) {
    const c = this.manifest.time_codec;
    return Math.min(Math.max(dt, c.min_s), c.max_s);
  }

  /** play/press.py make_press_row: num_keys NOTE_ONs sampled low to high under the masks. */
  async sampleNotes(numKeys) {
    const v = this.vocab, s = this.settings, out = [];
    for (let i = 0; i < numKeys; i++) {
      const track = this.model.track;
      const highest = this.limits.pitch_hi - (numKeys - 1 - i); // room above for the keys still to come
      const grammar = noteOnsOnly(allowedTokens(track, this.loose, v), v, highest);
      let mask = s.strict ? noteOnsOnly(allowedTokens(track, this.tight, v), v, highest) : grammar;
      if (!anyAllowed(mask)) mask = grammar;
      if (!anyAllowed(mask)) { // last resort (the pitches above are sounding): strike one again
        mask = new Uint8Array(v.size);
        for (let p = Math.max(track.lastOn + 1, this.limits.pitch_lo); p <= highest; p++) mask[v.noteOn + p] = 1;
      }
      const tok = this.sampler.sampleToken(this.logits, mask, { temperature: s.temperature, topP: s.top_p,
                                                                 topK: 0, perFamily: false }, this.random());
      if (i === numKeys - 1) this.unfed = tok; // stepped once the answer is out (feedUnfed)
      else await this.feed([tok], [0]);
      out.push(tok - v.noteOn);
    }
    return out;
  }

  controlOf(interval, numKeys, velocity, grows) {
    const v = this.vocab, ranges = this.manifest.controls.velocity.ranges;
    const chord = grows ? v.anyChord : Math.min(numKeys, v.chordValues - 1) - 1;
    let bucket = ranges.findIndex(([lo, hi]) => velocity >= lo && velocity <= hi);
    if (bucket < 0) bucket = v.anyVelocity;
    return [interval, chord, bucket];
  }

  intervalOf(keys) {
    if (this.prevRefKey === null) return this.vocab.anyInterval;
    const d = keys[0] - this.prevRefKey;
    const cls = this.vocab.intervalBounds.findIndex(([lo, hi]) => d >= lo && d <= hi);
    return cls < 0 ? this.vocab.anyInterval : cls;
  }

  controlNames([interval, chord, velocity]) {
    const c = this.manifest.controls;
    const name = (x, names) => (x >= names.length ? "*" : names[x]);
    return { interval: name(interval, c.interval.names), chord: name(chord, c.chord.names),
             velocity: name(velocity, c.velocity.names) };
  }

  /** Player.press: TIME CONTROL [NOTE_OFF...] [VELOCITY], then the NOTE_ONs. */
  async playPress(keys, velocity, tMs, grows, ending) {
    const v = this.vocab;
    const numKeys = Math.min(keys.length, this.limits.max_notes);
    const control = this.controlOf(this.intervalOf(keys), numKeys, velocity, grows);
    const dt = this.lastFedMs === null ? 0 : (tMs - this.lastFedMs) / 1000;
    const bin = this.velocityBin(velocity);
    const ids = [v.specials.TIME, v.controlId(...control)];
    for (const p of [...ending].filter((p) => this.sounding.has(p)).sort((a, b) => a - b)) {
      ids.push(v.noteOff + p);
    }
    if (bin !== this.velBin) ids.push(v.velocity + bin);
    const times = ids.map((_, i) => (i === 0 ? this.clipSeconds(dt) : 0));
    await this.room(ids.length + numKeys);
    await this.feed(ids, times);
    for (const p of ending) this.sounding.delete(p);
    this.velBin = bin;
    const pitches = await this.sampleNotes(numKeys);
    for (const p of pitches) this.sounding.add(p);
    this.openPress = pitches.slice();
    this.openControl = control;
    this.lastFedMs = tMs;
    this.prevRefKey = keys[0];
    this.presses += 1;
    return { pitches, control, joined: false };
  }

  /** Player.join: [VELOCITY] NOTE_ON... in the open press; a new press where none can take them. */
  async playAdd(keys, velocity, tMs, ending) {
    const v = this.vocab;
    const numKeys = Math.min(keys.length, this.limits.max_notes);
    // a key struck again must end first (no NOTE_OFF inside a press): then it is a press of its own
    const canJoin = this.openPress.length > 0 && Math.max(...this.openPress) + numKeys <= this.limits.pitch_hi &&
      !ending.some((p) => this.sounding.has(p));
    if (!canJoin) return this.playPress(keys, velocity, tMs, true, ending);
    const bin = this.velocityBin(velocity);
    const ids = bin !== this.velBin ? [v.velocity + bin] : [];
    await this.room(1 + numKeys);
    await this.feed(ids, ids.map(() => 0));
    this.velBin = bin;
    const pitches = await this.sampleNotes(numKeys);
    for (const p of pitches) this.sounding.add(p);
    this.openPress.push(...pitches);
    this.prevRefKey = this.prevRefKey === null ? keys[0] : Math.min(this.prevRefKey, keys[0]);
    const control = this.openControl || this.controlOf(this.intervalOf(keys), numKeys, velocity, true);
    return { pitches, control, joined: true };
  }

  checkTime(msg) {
    const t = number(msg, "t", 0, 1e12);
    if (t < this.lastSeenMs) {
      throw new FieldError("t", `${t} ms is before the previous message's ${this.lastSeenMs} ms (t must never decrease)`,
                           msg.id);
    }
    this.lastSeenMs = t;
    return t;
  }

  /** One client message -> the replies (app/server.py's answers). */
  async handle(msg) {
    if (!msg || typeof msg !== "object") throw new FieldError(null, "not a JSON object");
    if (this.fresh) await this.newContext();
    await this.feedUnfed();
    switch (msg.type) {
      case "press":
      case "add": {
        const keys = keysOf(msg, this.limits.max_keys);
        const velocity = number(msg, "velocity", 1, 127, true);
        const t = this.checkTime(msg);
        const started = performance.now();
        const ending = keys.filter((k) => this.owner.has(k)).map((k) => {
          const p = this.owner.get(k);
          this.owner.delete(k);
          this.logOff(p, t);
          return p;
        });
        const notes = msg.type === "add" ? await this.playAdd(keys, velocity, t, ending)
          : await this.playPress(keys, velocity, t, msg.grows === true, ending);
        const out = [];
        const pitches = notes.pitches.slice().sort((a, b) => a - b);
        keys.slice(0, pitches.length).forEach((key, i) => {
          const pitch = pitches[i];
          for (const [k, p] of [...this.owner]) if (p === pitch) this.owner.delete(k);
          this.owner.set(key, pitch);
          this.logOn(pitch, velocity, t);
          out.push({ key, pitch, velocity, start_s: 0.0, end_s: null });
        });
        return [{ type: "notes", id: msg.id ?? null, t, press: this.presses, notes: out,
                  control: this.controlNames(notes.control), server_ms: performance.now() - started,
                  joined: notes.joined, engine: "local" }];
      }
      case "release": {
        const keys = keysOf(msg, this.limits.max_keys);
        const t = this.checkTime(msg);
        const pitches = keys.filter((k) => this.owner.has(k)).map((k) => {
          const p = this.owner.get(k);
          this.owner.delete(k);
          return p;
        });
        if (!pitches.length) return [];
        const dt = this.lastFedMs === null ? 0 : (t - this.lastFedMs) / 1000;
        this.lastFedMs = t;
        for (const p of pitches) this.logOff(p, t);
        const ending = [...new Set(pitches)].filter((p) => this.sounding.has(p)).sort((a, b) => a - b);
        if (!ending.length) return [];
        const ids = [this.vocab.specials.TIME, ...ending.map((p) => this.vocab.noteOff + p)];
        await this.room(ids.length);
        await this.feed(ids, ids.map((_, i) => (i === 0 ? this.clipSeconds(dt) : 0)));
        for (const p of ending) this.sounding.delete(p);
        return [];
      }
      case "settings": {
        if ("temperature" in msg) this.settings.temperature = number(msg, "temperature", 0, 10);
        if ("top_p" in msg) this.settings.top_p = number(msg, "top_p", 0, 1);
        if ("strict" in msg) {
          if (typeof msg.strict !== "boolean") throw new FieldError("strict", "expected true or false", msg.id);
          this.settings.strict = msg.strict;
        }
        return [{ type: "settings", settings: { ...this.settings } }];
      }
      case "reset": {
        if (msg.style !== undefined) { // a fresh context in this style from now on (the model reads it everywhere)
          const names = this.manifest.styles.names || [];
          if (msg.style === "any") this.styleName = "any";
          else if (names.includes(msg.style)) this.styleName = msg.style;
          else throw new FieldError("style", `${JSON.stringify(msg.style)} is not one of this model's styles: ` +
                                    ["any", ...names].join(", "), msg.id);
          this.model.style = this.styleName === "any" ? this.manifest.styles.none : names.indexOf(this.styleName);
        }
        for (const p of [...this.openNotes.keys()]) this.logOff(p, this.lastSeenMs);
        await this.newContext();
        return [{ type: "reset", style: this.styleName }];
      }
      case "record": {
        if (msg.action === "start") {
          this.recording = [];
          this.openNotes = new Map();
          return [{ type: "recording", state: "started" }];
        }
        if (msg.action === "stop") {
          if (this.recording === null) throw new FieldError("action", "\"stop\" but no recording was started", msg.id);
          const notes = this.recording;
          this.recording = null;
          this.openNotes = new Map();
          const { bytes, seconds } = recordingToMidi(notes, this.lastSeenMs);
          const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
          return [{ type: "recording", state: "stopped", notes: notes.length, seconds: Math.round(seconds * 1e3) / 1e3,
                    filename: `yoshimidi-${stamp}.mid`, midi_base64: bytesToBase64(bytes) }];
        }
        throw new FieldError("action", "expected \"start\" or \"stop\"", msg.id);
      }
      case "ping":
        return [{ type: "pong", t: msg.t }];
      default:
        throw new FieldError("type", `unknown message type ${JSON.stringify(msg.type)}`, msg.id);
    }
  }

  // -- recording (app/session.py) -----------------------------------------------------------------
  logOn(pitch, velocity, tMs) {
    if (this.recording === null) return;
    this.logOff(pitch, tMs);
    const note = { pitch, velocity, startMs: tMs, endMs: null };
    this.recording.push(note);
    this.openNotes.set(pitch, note);
  }

  logOff(pitch, tMs) {
    const note = this.openNotes.get(pitch);
    if (note) {
      note.endMs = tMs;
      this.openNotes.delete(pitch);
    }
  }
}

/** sampler.py window_start (tokens/sounding.py sounding_at_cut, ages_at_cut):
 * a fresh Track whose sounding pitches and ages are those before the kept
 * tokens, given `track`, the Track after them. */
export function windowStart(ids, times, track, vocab) {
  const n = vocab.numPitches;
  const start = new Track(vocab);
  const firstOn = new Int32Array(n).fill(-1), firstOff = new Int32Array(n).fill(-1);
  let keptS = 0;
  ids.forEach((id, i) => {
    if (vocab.isNoteOn(id) && firstOn[id - vocab.noteOn] < 0) firstOn[id - vocab.noteOn] = i;
    if (vocab.isNoteOff(id) && firstOff[id - vocab.noteOff] < 0) firstOff[id - vocab.noteOff] = i;
    if (vocab.isTime(id)) keptS = Math.fround(keptS + Math.fround(times[i]));
  });
  for (let p = 0; p < n; p++) {
    const on = firstOn[p] < 0 ? ids.length : firstOn[p], off = firstOff[p] < 0 ? ids.length : firstOff[p];
    const sounding = Math.min(on, off) < ids.length ? off < on : track.sounding[p] === 1;
    start.sounding[p] = sounding ? 1 : 0;
    start.age[p] = sounding && firstOn[p] < 0 ? Math.max(Math.fround(track.age[p] - keptS), 0) : 0;
  }
  return start;
}

// -- a Standard MIDI File of the recording (app/session.py recording_to_midi) ---------------------

function varLen(n) {
  const out = [n & 0x7f];
  while ((n >>= 7) > 0) out.unshift((n & 0x7f) | 0x80);
  return out;
}

/** Recorded notes (client ms) -> { bytes: a format-0 .mid, seconds }; time 0
 * is the first note; a note still held ends at nowMs (at least SHORT_NOTE_S long). */
export function recordingToMidi(notes, nowMs) {
  const PPQ = 480, TEMPO = 500000; // 120 bpm: 960 ticks a second
  const t0 = notes.length ? Math.min(...notes.map((n) => n.startMs)) : 0;
  const events = [];
  let seconds = 0;
  for (const n of notes) {
    const on = (n.startMs - t0) / 1e3;
    let end = ((n.endMs ?? nowMs) - t0) / 1e3;
    if (n.endMs === null) end = Math.max(end, on + SHORT_NOTE_S);
    end = Math.max(end, on + 1e-3);
    seconds = Math.max(seconds, end);
    events.push([Math.round(on * 960), 1, [0x90, n.pitch, n.velocity]]);
    events.push([Math.round(end * 960), 0, [0x80, n.pitch, 0]]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // at one tick: offs before ons
  const track = [0x00, 0xff, 0x51, 0x03, (TEMPO >> 16) & 0xff, (TEMPO >> 8) & 0xff, TEMPO & 0xff];
  let last = 0;
  for (const [tick, , bytes] of events) {
    track.push(...varLen(tick - last), ...bytes);
    last = tick;
  }
  track.push(0x00, 0xff, 0x2f, 0x00);
  const u32 = (x) => [(x >>> 24) & 0xff, (x >>> 16) & 0xff, (x >>> 8) & 0xff, x & 0xff];
  const bytes = Uint8Array.from([
    0x4d, 0x54, 0x68, 0x64, ...u32(6), 0, 0, 0, 1, (PPQ >> 8) & 0xff, PPQ & 0xff,
    0x4d, 0x54, 0x72, 0x6b, ...u32(track.length), ...track,
  ]);
  return { bytes, seconds };
}

function bytesToBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
