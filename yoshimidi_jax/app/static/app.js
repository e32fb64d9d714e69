// YoshiMIDI live: the player says what kind of press (which keys, how hard,
// together or not); the server's model picks the notes; we play and draw them.
// Protocol: yoshimidi play protocol v1 (JSON over one websocket at /ws).

import { Sound, bindSoundControls, savedSoundSettings } from "./sound.js";
import { Roll } from "./roll.js";
import { ComputerKeyboard, ScreenKeyboard, noteName } from "./keys.js";
import { initMidi } from "./midi.js";
import { Pedal } from "./pedal.js";
import { MidiOut, Voices, bindMidiOutControls, savedMidiOutSettings } from "./midiout.js";
import { localEngine } from "./engine/session.js";
import { WorkerSocket } from "./worker_socket.js";

const $ = (id) => document.getElementById(id);

// Test hooks (read by the browser tests): keep the names.
const Y = (window.yoshimidi = {
  connection: "connecting",
  session: null,
  reconnects: 0,
  hello: null,
  pressesSent: 0,  // press messages (a key that starts a press)
  addsSent: 0,     // add messages (a key within the join window: one more note of the open press)
  notesReceived: 0,
  lastNotes: [],
  recentNotes: [], // the latest notes received (up to 64), oldest first
  scheduledVoices: 0,
  activeVoices: 0,
  drawnNotes: 0,
  errors: [],
  recordings: 0,
  lastLatencyMs: null,
  audioState: "none",
  settingsAck: null,
  styles: [],     // the model's styles (hello); none: a model trained without them
  style: "any",   // the style the session's context plays in (hello, reset acks)
  socketIn: null,     // where the connection lives: "worker" (the default), "page" (?socket=page) or "local"
  soundRouted: false, // the socket's worker starts the model's notes on the sound itself
});

const BRIEF_S = 0.15;        // a note whose key is already up when it arrives
const PING_EVERY_MS = 10000; // only while the player is active
let maxKeys = 10;

// ---------------------------------------------------------------- audio + roll

// The sound: a soundfont's instruments, or the own synth (sound.js).
const synth = new Sound({ maxVoices: 48, ...savedSoundSettings() });
let renderSound = () => {};
let audioStarted = false;  // a key or a click has been seen (the context may run from then)
synth.onChange = (s) => {
  Y.scheduledVoices = s.scheduled;
  Y.activeVoices = s.active;
  Y.audioState = s.state;
  Y.sound = s.info();
  renderAudio();
  renderSound();
  if (s.fontState === "ready") queueMicrotask(() => offerSound(ws));  // the font is there: the socket's worker may use it
};
renderSound = bindSoundControls(synth, {
  select: $("instrument"), volume: $("volume"), volumeValue: $("volume-value"), status: $("sound"),
});
window.yoshimidiSound = synth;  // for the browser tests (not plain data: kept out of Y)
synth.start();

// MIDI out (midiout.js): the model's notes go through `voices`, to the local
// sound (unless muted) and to the chosen Web MIDI output.
const midiOut = new MidiOut(savedMidiOutSettings());
const voices = new Voices(synth, midiOut);
const renderMidiOut = bindMidiOutControls(midiOut, synth, {
  select: $("midi-out"), channel: $("midi-channel"), local: $("local-sound"), status: $("midi-out-status"),
});
midiOut.onChange = (m) => {
  Y.midiOut = m.info();
  renderMidiOut();
};
midiOut.start();

const roll = new Roll($("roll"), { seconds: 8, legend: document.querySelector(".stage .legend") });

// ---------------------------------------------------------------- UI helpers

function setText(id, text) {
  const el = $(id);
  if (el && el.textContent !== text) el.textContent = text;
}

let toastTimer = null;
function toast(text, kind = "info") {
  const el = $("toast");
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = false;
  el.classList.remove("fade");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.add("fade"), 3500);
}

const logEntries = [];   // {kind, text, time, times}
function logLine(kind, text) {
  const last = logEntries[logEntries.length - 1];
  if (last && last.kind === kind && last.text === text) {
    // The same line again (e.g. refused every 5 s): count it, no storm.
    last.times += 1;
    last.time = new Date();
  } else {
    logEntries.push({ kind, text, time: new Date(), times: 1 });
    while (logEntries.length > 5) logEntries.shift();
  }
  const list = $("error-list");
  list.textContent = "";
  for (const e of logEntries) {
    const li = document.createElement("li");
    li.dataset.kind = e.kind;
    const time = document.createElement("time");
    time.textContent = e.time.toLocaleTimeString([], { hour12: false });
    li.append(time, " ", e.text);
    if (e.times > 1) {
      const n = document.createElement("span");
      n.className = "times";
      n.textContent = ` ×${e.times}`;
      li.appendChild(n);
    }
    list.appendChild(li);
  }
  setText("error-count", String(Y.errors.length));
  $("errors").classList.toggle("has", logEntries.length > 0);
  $("errors").classList.toggle("server", Y.errors.length > 0);
}

function renderAudio() {
  const st = Y.audioState;
  const el = $("audio");
  el.dataset.state = st;
  el.textContent = st === "running" ? `audio on · ${Y.activeVoices} voices`
    : st === "none" || (st === "suspended" && !audioStarted) ? "audio: press a key or click to start"
    : `audio ${st}: click to resume`;
}

// ---------------------------------------------------------------- connection

let ws = null;
let everOpened = false;
let backoffMs = 500;
let retryTimer = null;
let countdownTimer = null;   // updates "reconnecting · in 1.4 s" until the retry
const COUNTDOWN_EVERY_MS = 100;
let lastPressAt = 0;
let lastT = 0;           // t sent so far (the protocol wants it non-decreasing)
let droppedNotice = 0;

const CONN_TEXT = {
  connecting: "connecting…",
  open: "connected",
  reconnecting: "reconnecting…",
  refused: "refused",
  closed: "closed",
};

function setConnection(state, detail = "") {
  Y.connection = state;
  const el = $("connection");
  el.dataset.state = state;
  el.textContent = CONN_TEXT[state] + (detail ? ` · ${detail}` : "");
  document.body.dataset.connection = state;
}

const workerSocket = WorkerSocket.supported() && new URLSearchParams(location.search).get("socket") !== "page";
let workerSocketBroken = false;  // its worker failed to start: the socket is made here from then on
const inWorker = () => workerSocket && !workerSocketBroken;

// Hands an open worker socket a port into the soundfont's synthesizer once
// both are there (again after a reconnect: each worker gets its own).
function offerSound(sock) {
  if (!sock || sock.yAudio || typeof sock.audio !== "function" || sock.readyState !== WebSocket.OPEN) return;
  const port = synth.notePort();
  if (port === null) return;
  sock.onaudioready = () => { if (ws === sock) Y.soundRouted = true; };
  sock.audio(port);
  sock.yAudio = true;
}

function wsUrl() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  return `${proto}://${location.host}/ws`;
}

function connect() {
  clearTimeout(retryTimer);
  clearInterval(countdownTimer);
  retryTimer = null;
  if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) return;
  if (Y.connection !== "refused") setConnection(everOpened ? "reconnecting" : "connecting");
  let sock;
  try {
    // local: the model in the page (engine.json); else the socket lives in a worker, which starts a press's
    // notes on the sound itself the moment they arrive (worker_socket.js; ?socket=page: here, as before)
    sock = local ? local.open() : inWorker() ? new WorkerSocket(wsUrl()) : new WebSocket(wsUrl());
  } catch (err) {
    logLine("local", `cannot open websocket: ${err.message || err}`);
    scheduleRetry(5000);
    return;
  }
  ws = sock;
  Y.socketIn = local ? "local" : sock instanceof WorkerSocket ? "worker" : "page";
  Y.soundRouted = false;  // true once this socket's worker can start notes on the sound itself
  sock.yRefused = false;
  sock.yBye = false;
  sock.onopen = () => {
    if (ws !== sock) return;
    everOpened = true;
    backoffMs = 500;
    setConnection("open");
    offerSound(sock);
    setTimeout(() => { if (ws === sock) send({ type: "ping", t: now1() }); }, 1000);
  };
  sock.onmessage = (ev) => {
    if (ws !== sock) return;
    try {
      handle(ev.data, sock, ev.route || null);
    } catch (err) {
      console.warn("yoshimidi: bad message", ev.data, err);
    }
  };
  sock.onerror = () => {
    if (ws !== sock) return;
    // Shown once per outage; onclose decides what happens next.
    if (Y.connection === "open" || Y.connection === "connecting") logLine("local", "websocket error");
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    ws = null;
    if (sock.workerFailed) workerSocketBroken = true;
    sessionEnded();
    if (sock.yRefused || ev.code === 1013) {
      setConnection("refused", "retrying every 5 s");
      scheduleRetry(5000);
    } else if (sock.yBye) {
      setConnection("closed", "press a key to reconnect");
    } else {
      scheduleRetry(backoffMs, (msLeft) => setConnection("reconnecting", retryText(msLeft)));
      backoffMs = Math.min(5000, backoffMs * 2);
    }
  };
}

// Tries to connect again in `ms`; showLeft(ms left), if given, is called now
// and every COUNTDOWN_EVERY_MS until then.
function scheduleRetry(ms, showLeft = null) {
  clearTimeout(retryTimer);
  clearInterval(countdownTimer);
  retryTimer = setTimeout(connect, ms);
  if (showLeft) {
    const at = performance.now() + ms;
    const show = () => showLeft(at - performance.now());
    show();
    countdownTimer = setInterval(show, COUNTDOWN_EVERY_MS);
  }
}

// "in 1.4 s": the time left, rounded up to a tenth (so "in 0.0 s" is never shown before the try).
function retryText(msLeft) {
  return `in ${(Math.ceil(Math.max(0, msLeft) / 100) / 10).toFixed(1)} s`;
}

window.addEventListener("online", () => {
  if (!ws && Y.connection !== "closed") connect();
});

function isOpen() {
  return ws !== null && ws.readyState === WebSocket.OPEN;
}

// route: {id, channel}: the worker starts this press's notes itself (worker_socket.js).
function send(msg, route = null) {
  if (!isOpen()) return false;
  try {
    if (route) ws.send(JSON.stringify(msg), route);
    else ws.send(JSON.stringify(msg));
    return true;
  } catch (err) {
    console.warn("yoshimidi: send failed", err);
    return false;
  }
}

function now1() {
  return Math.round(performance.now() * 10) / 10;
}

// A time stamp for an outgoing message: never before one already sent.
function stamp(t) {
  const r = Math.max(lastT, Math.round(t * 10) / 10);
  lastT = r;
  return r;
}

setInterval(() => {
  if (isOpen() && performance.now() - lastPressAt < 2 * PING_EVERY_MS) send({ type: "ping", t: now1() });
}, PING_EVERY_MS);

// A press the server dropped (over its rate: the one "rate" error names no
// press) is never answered: after ROUTE_WAIT_MS its sound route goes back,
// so routing never runs out of channels. The press itself is kept: an answer
// that is only slow (a server still compiling, a loaded machine) then plays
// here, with its key's timing, held as long as its key is.
const ROUTE_WAIT_MS = 10000;
setInterval(() => {
  const now = performance.now();
  for (const [id, info] of inflight) if (info.route && now - info.sent > ROUTE_WAIT_MS) returnRoute(id, info);
}, 1000);

// ---------------------------------------------------------------- messages in

function handle(data, sock, route = null) {
  if (typeof data !== "string") return;
  let msg;
  try {
    msg = JSON.parse(data);
  } catch (err) {
    console.warn("yoshimidi: not JSON", data);
    return;
  }
  if (!msg || typeof msg !== "object" || typeof msg.type !== "string") return;
  switch (msg.type) {
    case "hello": return onHello(msg, sock);
    case "notes": return onNotes(msg, route);
    case "settings": return onSettingsAck(msg);
    case "reset": return onResetAck(msg);
    case "recording": return onRecording(msg);
    case "pong": return onPong(msg);
    case "error": return onError(msg);
    case "refused":
      sock.yRefused = true;
      logLine("local", `refused: ${String(msg.reason || "no reason given")}`);
      return;
    case "bye":
      sock.yBye = true;
      logLine("local", `server closed the session: ${String(msg.reason || "bye")}`);
      return;
    default:
      console.info("yoshimidi: ignoring message type", msg.type);
  }
}

function onHello(msg, sock) {
  // A later hello on a new socket means a new session (the server may have
  // restarted): the model's context is fresh.
  const reconnected = !sock.yHello && Y.hello !== null;
  sock.yHello = true;
  if (reconnected) Y.reconnects += 1;
  Y.hello = msg;
  Y.session = msg.session ?? null;
  for (const id of [...inflight.keys()]) forget(id);
  const m = msg.model && typeof msg.model === "object" ? msg.model : {};
  const parts = [String(m.name ?? "model")];
  if (m.step != null) parts.push(`step ${Number(m.step).toLocaleString()}`);
  if (typeof m.params === "number") parts.push(`${formatCount(m.params)} params`);
  setText("model", parts.join(" · "));
  $("model").title = m.workdir ? `workdir: ${m.workdir}` : "";
  if (msg.limits && Number.isInteger(msg.limits.max_keys)) maxKeys = Math.max(1, msg.limits.max_keys);
  // The server's settings for this session: adopt them, unless the player
  // already chose their own (then a fresh session gets the player's).
  if (msg.settings && typeof msg.settings === "object") {
    Y.settingsAck = msg.settings;
    showAck(msg.settings);
    if (settingsTouched) sendSettings();
    else applySettings(msg.settings);
  }
  onStyles(msg);
  if (reconnected) {
    toast(`reconnected: new session ${Y.session ?? ""} — the model starts afresh`);
    roll.addMarker("new session");
  }
}

function formatCount(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${Math.round(n / 1e3)}k`;
  return String(n);
}

const latencies = [];
// route: where the socket's worker started this answer's notes itself ({channel, pitches, started}).
function onNotes(msg, route = null) {
  const arrived = performance.now();
  const notes = Array.isArray(msg.notes) ? msg.notes.filter((n) => n && typeof n === "object") : [];
  Y.notesReceived += notes.length;
  Y.lastNotes = notes;
  Y.recentNotes.push(...notes.map((n) => ({ ...n, joined: msg.joined === true })));  // joined: an add that joined the open press
  if (Y.recentNotes.length > 64) Y.recentNotes.splice(0, Y.recentNotes.length - 64);
  const info = inflight.get(msg.id);
  inflight.delete(msg.id);
  if (info) {
    synth.returnRoute(info.route);  // the notes started on it get their voices below
    const ms = arrived - info.t;
    Y.lastLatencyMs = Math.round(ms * 10) / 10;
    latencies.push(ms);
    if (latencies.length > 101) latencies.shift();
    const sorted = [...latencies].sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)];
    setText("latency", `${Math.round(ms)} ms`);
    setText("latency-median", `median ${Math.round(med)} ms`);
    $("latency").title = `key down → notes arrived` +
      (typeof msg.server_ms === "number" ? `; the model took ${msg.server_ms.toFixed(1)} ms` : "");
  }
  if (msg.control && typeof msg.control === "object") {
    const c = msg.control;
    setText("control", [c.interval, c.chord, c.velocity].filter((x) => x != null).join(" · "));
  }
  if (typeof msg.server_ms === "number") setText("server-ms", `${msg.server_ms.toFixed(1)} ms`);

  for (const n of notes) {
    const pitch = Math.round(Number(n.pitch));
    if (!Number.isFinite(pitch) || pitch < 0 || pitch > 127) continue;
    let vel = Math.round(Number(n.velocity));
    if (!Number.isFinite(vel)) vel = 80;
    vel = Math.max(1, Math.min(127, vel));
    const startS = Math.max(0, Number(n.start_s) || 0);
    const endS = typeof n.end_s === "number" && Number.isFinite(n.end_s) ? n.end_s : null;
    const h = held.get(n.key);
    const owned = h !== undefined && info !== undefined && h.pressId === msg.id;
    let dur = null;
    if (endS !== null) dur = Math.max(0.03, endS - startS);
    else if (!owned) dur = BRIEF_S;
    const routed = route !== null && startS === 0 && route.pitches.includes(pitch);
    const voice = voices.noteOn(pitch, vel, { delay: startS, duration: dur, down: info?.t,
                                              sent: info?.sent, arrived, modelMs: msg.server_ms,
                                              ...(routed ? { started: route.started, channel: route.channel } : {}) });
    const t0 = arrived + startS * 1000;
    const rn = roll.addNote({ pitch, velocity: vel, start: t0, end: dur === null ? null : t0 + dur * 1000 });
    if (dur === null) {
      h.voices.push(voice);
      h.rollNotes.push(rn);
    }
  }
  Y.drawnNotes = roll.added;
  setText("notes-count", String(Y.notesReceived));
}

function showAck(s) {
  const parts = [];
  if (typeof s.temperature === "number") parts.push(`T ${s.temperature.toFixed(2)}`);
  if (typeof s.top_p === "number") parts.push(`top-p ${s.top_p.toFixed(2)}`);
  if (typeof s.strict === "boolean") parts.push(`strict ${s.strict ? "on" : "off"}`);
  setText("settings-ack", parts.length ? `server: ${parts.join(" · ")}` : "");
}

function onSettingsAck(msg) {
  if (!msg.settings || typeof msg.settings !== "object") return;
  Y.settingsAck = msg.settings;
  showAck(msg.settings);
}

function onResetAck(msg) {
  const style = typeof msg.style === "string" ? msg.style : null;
  if (style !== null) showStyle(style);
  if (quietReset) {  // our own reset of a new session into the chosen style: the hello's toast stays
    quietReset = false;
    return;
  }
  const styled = style !== null && style !== "any";
  toast(styled ? `reset: a fresh context in the ${style} style` : "reset: the model's context is fresh");
  roll.addMarker(styled ? `reset · ${style}` : "reset");
}

function onPong(msg) {
  if (typeof msg.t !== "number") return;
  setText("rtt", `${Math.max(0, Math.round(performance.now() - msg.t))} ms`);
}

function onError(msg) {
  Y.errors.push(msg);
  if (Y.errors.length > 200) Y.errors.splice(0, 100);
  const field = msg.field == null ? "" : `${String(msg.field)}: `;
  const id = msg.id == null ? "" : ` (id ${msg.id})`;
  logLine("server", `${field}${String(msg.error ?? "error")}${id}`);
  if (msg.id != null) forget(msg.id);
  if (msg.field === "style") showStyle(Y.style);  // the server kept the style: show it again
  if (recordState === "starting" || recordState === "stopping") {
    if (msg.field === "action" || msg.field === "record") setRecordState(recordState === "starting" ? "idle" : "recording");
  }
}

// ---------------------------------------------------------------- presses out

// Keys down now: pitch -> {pressId, voices, rollNotes}
const held = new Map();
// Zero-wait keys: every key is sent at once. The press whose join window is
// open: {id, keys, t}; a key down within the window of its first key is sent
// as an "add" (one more note of that press, no TIME between, as chords are in
// the data), so the window delays no sound. A release closes it.
let joinable = null;
// Presses and adds sent and not answered: id -> {t, keys, down}
const inflight = new Map();
let nextId = 1;

function chordWindowMs() {
  return Number($("chord-window").value) || 0;
}

function dynamics() {
  return Number($("dynamics").value) || 80;
}

// When the player did it: the time stamp of the key event being handled
// (window.event: the keyboard, pointer or MIDI event; under the pedal, the
// pedal's own), else now. A page busy drawing may handle an event late; the
// press, the chord window, the release and the recording keep the player's time.
function eventTime() {
  const now = performance.now();
  const ev = window.event;
  return ev && ev.timeStamp > 0 && ev.timeStamp <= now ? ev.timeStamp : now;
}

function keyDown(pitch, velocity) {
  synth.ensure();
  if (!Number.isInteger(pitch) || pitch < 0 || pitch > 127 || held.has(pitch)) return;
  if (!isOpen()) {
    if (Y.connection === "closed") connect();
    const t = performance.now();
    if (t - droppedNotice > 3000) {
      droppedNotice = t;
      toast("not connected: the model cannot answer yet", "warn");
    }
  }
  const t = eventTime();
  lastPressAt = t;
  const vel = Math.max(1, Math.min(127, Math.round(velocity)));
  const id = nextId++;
  const join = joinable !== null && t - joinable.t <= chordWindowMs() && joinable.keys.length < maxKeys;
  if (!join) joinable = { id, keys: [], t };
  joinable.keys.push(pitch);
  const msg = join ? { type: "add", id, keys: [pitch], velocity: vel, t: stamp(t) }
    : { type: "press", id, keys: [pitch], velocity: vel, t: stamp(t), grows: true };
  held.set(pitch, { pressId: id, voices: [], rollNotes: [] });
  screen.setHeld(pitch, true);
  // a channel of the sound lent to this press: its notes start in the socket's worker as they arrive
  const route = ws && ws.audioReady && midiOut.local ? synth.lendRoute() : null;
  const ok = send(msg, route && { id, channel: route.channel });
  if (ok) {
    const sent = performance.now();
    if (join) Y.addsSent += 1;
    else Y.pressesSent += 1;
    inflight.set(id, { t, sent, route });  // t: its key's event time (sound.js's NoteTimes `down`)
    if (inflight.size > 500) forget(inflight.keys().next().value);
    setText("presses", String(Y.pressesSent));
  } else {
    synth.returnRoute(route);
  }
  roll.addPress({ t, keys: [pitch], velocity: vel, ok });
}

function keyUp(pitch) {
  const h = held.get(pitch);
  if (!h) return;
  held.delete(pitch);
  screen.setHeld(pitch, false);
  const t = eventTime();
  for (const v of h.voices) voices.noteOff(v);
  for (const n of h.rollNotes) if (n.end === null) n.end = Math.max(t, n.start);  // (a key let go just before its answer was handled)
  if (joinable && joinable.keys.includes(pitch)) joinable = null;  // its release closes the press
  send({ type: "release", keys: [pitch], t: stamp(t) });
}

// Press `id` will not be answered: its sound route (if any) goes back.
function forget(id) {
  const info = inflight.get(id);
  inflight.delete(id);
  if (info) returnRoute(id, info);
}

// The channel lent to press `id` goes back; the socket's worker no longer starts its notes.
function returnRoute(id, info) {
  if (!info.route) return;
  synth.returnRoute(info.route);
  info.route = null;
  if (ws && typeof ws.unroute === "function") ws.unroute(id);
}

// The session is gone: what is in flight will never be answered.
function sessionEnded() {
  joinable = null;
  for (const id of [...inflight.keys()]) forget(id);
  if (recordState !== "idle") {
    if (recordState !== "starting") logLine("local", "the recording was lost with the connection");
    setRecordState("idle");
  }
}

// ---------------------------------------------------------------- inputs

// The sustain pedal (pedal.js) sits between every input and keyDown/keyUp:
// under it a key's key-up (and so the server's release) waits for pedal up.
const pedal = new Pedal({
  onDown: keyDown,
  onUp: keyUp,
  onChange: (pd) => {
    Y.pedal = pd.down;
    Y.sustained = [...pd.sustained].sort((a, b) => a - b);
    screen.setPedal(pd.down, pd.sustained);
    roll.setPedal(pd.down);
    const el = $("pedal");
    el.dataset.down = pd.down ? "1" : "0";
    el.title = pd.down ? `pedal down${pd.sustained.size ? `: ${pd.sustained.size} key(s) ringing` : ""}`
      : "sustain pedal: Space, or CC64 from a MIDI input";
  },
});
Y.pedal = false;
Y.sustained = [];
pedal.attachSpace(window);
const pedalDown = (p, v) => pedal.keyDown(p, v);
const pedalUp = (p) => pedal.keyUp(p);

const computer = new ComputerKeyboard({
  onDown: pedalDown,
  onUp: pedalUp,
  getVelocity: dynamics,
  onOctave: (base) => showOctave(base),
});
computer.attach(window);

const screen = new ScreenKeyboard($("keyboard"), {
  onDown: pedalDown,
  onUp: pedalUp,
  getVelocity: dynamics,
});

function showOctave(base) {
  setText("octave", `${noteName(base)}–${noteName(base + 17)}`);
  screen.setBase(base);
}
showOctave(computer.base);
$("oct-down").addEventListener("click", (e) => { computer.shiftOctave(-1); e.currentTarget.blur(); });
$("oct-up").addEventListener("click", (e) => { computer.shiftOctave(1); e.currentTarget.blur(); });

initMidi({
  onDown: pedalDown,
  onUp: pedalUp,
  onPedal: (on) => pedal.set("midi", on),
  onStatus: ({ text, names }) => {
    setText("midi", text);
    $("midi").dataset.on = names.length ? "1" : "0";
  },
});

// Audio may only start after a gesture.
for (const type of ["pointerdown", "keydown"]) {
  window.addEventListener(type, () => { audioStarted = true; synth.ensure(); }, { capture: true });
}

roll.onFrame = (now) => {
  screen.setLit(roll.sounding(now));
  Y.drawnNotes = roll.added;
};
roll.start();

// ---------------------------------------------------------------- settings

let settingsTouched = false;
let settingsTimer = null;

function currentSettings() {
  return {
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    strict: $("strict").checked,
  };
}

function sendSettings() {
  clearTimeout(settingsTimer);
  settingsTimer = null;
  send({ type: "settings", ...currentSettings() });
}

function applySettings(s) {
  if (typeof s.temperature === "number") $("temperature").value = String(s.temperature);
  if (typeof s.top_p === "number") $("top-p").value = String(s.top_p);
  if (typeof s.strict === "boolean") $("strict").checked = s.strict;
  showValues();
}

function showValues() {
  setText("temperature-value", Number($("temperature").value).toFixed(2));
  setText("top-p-value", Number($("top-p").value).toFixed(2));
  setText("dynamics-value", String($("dynamics").value));
  const w = chordWindowMs();
  setText("chord-window-value", w === 0 ? "off" : `${w} ms`);
}

function settingsChanged() {
  settingsTouched = true;
  showValues();
  clearTimeout(settingsTimer);
  settingsTimer = setTimeout(sendSettings, 150);
}

for (const id of ["temperature", "top-p"]) {
  $(id).addEventListener("input", settingsChanged);
}
$("strict").addEventListener("change", settingsChanged);
for (const id of ["dynamics", "chord-window"]) {
  $(id).addEventListener("input", showValues);
}
// Let go of the focus after a change, so the letters play again.
for (const id of ["temperature", "top-p", "strict", "dynamics", "chord-window"]) {
  $(id).addEventListener("change", (e) => e.currentTarget.blur());
  $(id).addEventListener("pointerup", (e) => {
    const el = e.currentTarget;
    setTimeout(() => el.blur(), 0);
  });
}
showValues();

// ---------------------------------------------------------------- style

// The style the player chose here (null: the server's); a new session (a
// reconnect) is reset into it.
let styleChosen = null;
let quietReset = false;

function showStyle(style) {
  Y.style = style;
  const now = $("style-now");
  now.dataset.style = style;
  setText("style-now", style);
  const sel = $("style");
  if ([...sel.options].some((o) => o.value === style)) sel.value = style;
}

function onStyles(msg) {
  const styles = Array.isArray(msg.styles) ? msg.styles.filter((x) => typeof x === "string") : [];
  Y.styles = styles;
  const sel = $("style");
  sel.textContent = "";
  for (const name of ["any", ...styles]) {
    const o = document.createElement("option");
    o.value = name;
    o.textContent = name;
    sel.appendChild(o);
  }
  sel.disabled = styles.length === 0;
  sel.title = styles.length ? "the texture the model plays in; changing it starts a fresh context"
    : "this model was trained without styles";
  showStyle(typeof msg.style === "string" ? msg.style : "any");
  if (styleChosen !== null && styleChosen !== Y.style && (styleChosen === "any" || styles.includes(styleChosen))) {
    quietReset = send({ type: "reset", style: styleChosen });
  }
}

$("style").addEventListener("change", (e) => {
  const sel = e.currentTarget;
  sel.blur();
  styleChosen = sel.value;
  if (!send({ type: "reset", style: styleChosen })) {
    toast("not connected", "warn");
    showStyle(Y.style);
  }
});

$("reset").addEventListener("click", (e) => {
  e.currentTarget.blur();
  if (!send({ type: "reset" })) toast("not connected", "warn");
});

// ---------------------------------------------------------------- record

let recordState = "idle";   // idle | starting | recording | stopping
let recordStart = 0;
let recordTick = null;

function setRecordState(state) {
  recordState = state;
  const b = $("record");
  b.dataset.state = state;
  clearInterval(recordTick);
  recordTick = null;
  if (state === "recording") {
    const show = () => {
      const s = Math.floor((performance.now() - recordStart) / 1000);
      b.textContent = `■ stop  ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    };
    show();
    recordTick = setInterval(show, 250);
  } else {
    b.textContent = { idle: "● record", starting: "● starting…", stopping: "saving…" }[state];
  }
}

$("record").addEventListener("click", (e) => {
  e.currentTarget.blur();
  if (recordState === "idle") {
    if (send({ type: "record", action: "start" })) setRecordState("starting");
    else toast("not connected", "warn");
  } else if (recordState === "recording" || recordState === "starting") {
    if (send({ type: "record", action: "stop" })) setRecordState("stopping");
  }
});

function onRecording(msg) {
  if (msg.state === "started") {
    recordStart = performance.now();
    setRecordState("recording");
    setText("record-status", "recording…");
  } else if (msg.state === "stopped") {
    setRecordState("idle");
    const n = Number(msg.notes) || 0;
    const secs = typeof msg.seconds === "number" ? ` (${msg.seconds.toFixed(1)} s)` : "";
    const name = safeFilename(msg.filename);
    if (typeof msg.midi_base64 === "string" && msg.midi_base64.length) {
      try {
        download(base64ToBytes(msg.midi_base64), name);
        Y.recordings += 1;
        setText("record-status", `saved ${n} notes${secs} → ${name}`);
      } catch (err) {
        logLine("local", `could not save the recording: ${err.message || err}`);
      }
    } else {
      setText("record-status", `saved ${n} notes${secs} (no file)`);
    }
  }
}

function safeFilename(name) {
  const s = typeof name === "string" ? name.replace(/[\\/:*?"<>|\u0000-\u001f]/g, "_").trim() : "";
  return s || "yoshimidi.mid";
}

function base64ToBytes(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

function download(bytes, filename) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "audio/midi" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

// ---------------------------------------------------------------- go

window.addEventListener("unhandledrejection", (e) => {
  console.warn("yoshimidi:", e.reason);
  e.preventDefault();
});
setConnection("connecting");
renderAudio();
// Which engine plays: the exported site's engine.json says "local" (the model
// runs in the page: engine/session.js); no such file: the server's websocket.
let local = null;
localEngine("./").then((engine) => {
  local = engine;
  window.yoshimidiLocal = engine;  // for the browser tests (not plain data: kept out of Y)
  Y.engine = engine ? "local" : "server";
  setText("engine", engine ? "local model" : "server");
  connect();
});
