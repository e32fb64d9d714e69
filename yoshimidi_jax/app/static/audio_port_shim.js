// AudioWorklet module, added before the soundfont synthesizer's processor
// (sound.js): each processor registered after it also takes note messages
// from a MessagePort handed to it, so the websocket's worker
// (net_worker.js) can start a note the moment the server's answer arrives,
// without waiting for the page's main thread (Chromium runs a websocket's
// message there only after the first frame it renders after a key event).
// The processor's own port keeps working as before. A port is handed over as
// {type: "yoshimidiNotePort", port} on the processor's port; the processor
// answers {type: "yoshimidiNotePortReady"} on the new port, and then treats
// every message on it as one of its own port's (spessasynth_lib's
// {type: "midiMessage", ...}).
const registerOriginal = globalThis.registerProcessor;

globalThis.registerProcessor = (name, Processor) => registerOriginal(name, class extends Processor {
  constructor(options) {
    super(options);
    const core = this.core;  // spessasynth_lib 4.3: the synthesizer behind the processor
    if (!core || typeof core.handleMessage !== "function") return;
    const handle = core.handleMessage.bind(core);
    core.handleMessage = (data) => {
      if (data && data.type === "yoshimidiNotePort" && data.port) {
        data.port.onmessage = (e) => handle(e.data);
        data.port.postMessage({ type: "yoshimidiNotePortReady" });
        return;
      }
      handle(data);
    };
  }
});
