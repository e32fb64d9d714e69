// A WebSocket whose socket lives in a worker (net_worker.js): the same
// readyState, send, close and on* as a WebSocket for app.js, plus the way
// to the sound: audio(port) hands the worker a port into the soundfont
// synthesizer's processor, and send(text, route) asks it to start that
// press's notes on route.channel itself when the answer comes (each such
// message event carries `route`: the channel, the pitches started and
// `started`, the page time they were handed to the audio graph).
const WORKER_URL = new URL("./net_worker.js", import.meta.url);

export class WorkerSocket {
  static supported() {
    return typeof Worker === "function";
  }

  constructor(url) {
    this.readyState = WebSocket.CONNECTING;
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this.onaudioready = null;  // the worker's port into the synthesizer answered: routes may be lent
    this.audioReady = false;
    this.worker = new Worker(WORKER_URL);
    this.worker.onmessage = (e) => this._event(e.data);
    this.workerFailed = false;  // the worker itself failed (the page then makes its sockets itself)
    this.worker.onerror = (e) => {
      console.warn("yoshimidi: the socket's worker failed", e.message);
      this.workerFailed = true;
      this._event({ type: "close", code: 1006, reason: "the socket's worker failed", wasClean: false });
    };
    this.worker.postMessage({ type: "open", url });
  }

  _event(m) {
    if (m.type === "open") {
      this.readyState = WebSocket.OPEN;
      if (this.onopen) this.onopen({});
    } else if (m.type === "message") {
      const route = m.route ? { ...m.route, started: m.route.startedWall - performance.timeOrigin } : null;
      if (this.onmessage) this.onmessage({ data: m.data, route });
    } else if (m.type === "audioReady") {
      this.audioReady = true;
      if (this.onaudioready) this.onaudioready();
    } else if (m.type === "error") {
      if (this.onerror) this.onerror({ message: m.message });
    } else if (m.type === "close") {
      if (this.readyState === WebSocket.CLOSED) return;
      this.readyState = WebSocket.CLOSED;
      this.worker.terminate();
      if (this.onclose) this.onclose({ code: m.code, reason: m.reason, wasClean: m.wasClean });
    }
  }

  send(text, route = null) {
    if (this.readyState !== WebSocket.OPEN) throw new Error("the websocket is not open");
    this.worker.postMessage({ type: "send", text, route });
  }

  // The press `id` will not be answered (its route is forgotten).
  unroute(id) {
    this.worker.postMessage({ type: "unroute", id });
  }

  close(code = 1000, reason = "") {
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = WebSocket.CLOSING;
    this.worker.postMessage({ type: "close", code, reason });
  }

  audio(port) {
    this.worker.postMessage({ type: "audio", port }, [port]);
  }
}
