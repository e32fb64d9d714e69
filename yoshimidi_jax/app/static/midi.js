// Web MIDI input: every input, including ones plugged in later. Note-on with
// velocity > 0 is a key down; note-off, or note-on with velocity 0, a key up;
// control change 64 (the sustain pedal) is down at values >= 64.

export function initMidi({ onDown, onUp, onStatus, onPedal = () => {} }) {
  const status = (text, names = []) => {
    try { onStatus({ text, names }); } catch (err) { console.warn(err); }
  };
  if (typeof navigator.requestMIDIAccess !== "function") {
    status("no Web MIDI in this browser");
    return;
  }
  const handler = (e) => {
    const d = e.data;
    if (!d || d.length < 3) return;
    const kind = d[0] & 0xf0;
    const key = d[1] & 0x7f;
    const vel = d[2] & 0x7f;
    if (kind === 0x90 && vel > 0) onDown(key, vel);
    else if (kind === 0x80 || kind === 0x90) onUp(key);
    else if (kind === 0xb0 && key === 64) onPedal(vel >= 64);
  };
  status("asking…");
  let access;
  navigator.requestMIDIAccess({ sysex: false }).then((a) => {
    access = a;
    const refresh = () => {
      const names = [];
      for (const input of access.inputs.values()) {
        input.onmidimessage = handler;
        if (input.state !== "disconnected") names.push(input.name || "MIDI input");
      }
      status(names.length ? names.join(", ") : "no MIDI input", names);
    };
    access.onstatechange = refresh;
    refresh();
  }, (err) => {
    console.info("yoshimidi: no MIDI access", err);
    status("not allowed");
  });
}
