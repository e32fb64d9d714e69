// The websocket to the server, in a worker (worker_socket.js is the page's
// side). Chromium runs a websocket message on the page's main thread only
// after the first frame it renders after a key event (0-17 ms later); a
// worker gets it at once. Where the page routed a press to the sound
// (a channel of the soundfont synthesizer, whose processor took a port from
// here: audio_port_shim.js), its notes are started from here the moment the
// answer arrives, and the page is told when; the page then does the rest
// (the roll, the keys, note-offs, MIDI out) as for any answer.
let ws = null;
let audio = null;           // MessagePort into the synthesizer's processor, once it answered
const routes = new Map();   // press or add id -> MIDI channel its notes start on

const wall = () => performance.timeOrigin + performance.now();

function startNotes(text) {
  if (audio === null || routes.size === 0 || !text.includes('"notes"')) return null;
  let msg;
  try {
    msg = JSON.parse(text);
  } catch (err) {
    return null;
  }
  if (!msg || msg.type !== "notes" || !routes.has(msg.id)) return null;
  const channel = routes.get(msg.id);
  routes.delete(msg.id);
  const notes = Array.isArray(msg.notes) ? msg.notes : [];
  const started = [];
  for (const n of notes) {
    const pitch = Math.round(Number(n && n.pitch));
    let vel = Math.round(Number(n && n.velocity));
    if (!Number.isFinite(pitch) || pitch < 0 || pitch > 127 || Number(n.start_s) > 0) continue;
    vel = Number.isFinite(vel) ? Math.max(1, Math.min(127, vel)) : 80;
    audio.postMessage({ type: "midiMessage", channelNumber: -1,
                        data: { messageData: new Uint8Array([0x90 | channel, pitch, vel]), channelOffset: 0,
                                options: { time: 0 } } });
    started.push(pitch);
  }
  return { channel, pitches: started, startedWall: wall() };
}

onmessage = (e) => {
  const m = e.data;
  if (m.type === "send") {
    if (m.route) routes.set(m.route.id, m.route.channel);
    if (routes.size > 256) routes.delete(routes.keys().next().value);
    try {
      ws.send(m.text);
    } catch (err) {
      postMessage({ type: "error", message: String(err.message || err) });
    }
  } else if (m.type === "unroute") {
    routes.delete(m.id);
  } else if (m.type === "open") {
    ws = new WebSocket(m.url);
    ws.onopen = () => postMessage({ type: "open" });
    ws.onerror = () => postMessage({ type: "error", message: "websocket error" });
    ws.onclose = (ev) => postMessage({ type: "close", code: ev.code, reason: ev.reason, wasClean: ev.wasClean });
    ws.onmessage = (ev) => {
      const route = typeof ev.data === "string" ? startNotes(ev.data) : null;
      postMessage({ type: "message", data: ev.data, route });
    };
  } else if (m.type === "close") {
    if (ws) ws.close(m.code, m.reason);
  } else if (m.type === "audio") {
    const port = m.port;
    port.onmessage = (ev) => {
      if (ev.data && ev.data.type === "yoshimidiNotePortReady") {
        audio = port;
        postMessage({ type: "audioReady" });
      }
    };
  }
};
