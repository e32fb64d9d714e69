// "Musical typing": the computer keyboard as a piano, by physical key
// (event.code), plus a small clickable on-screen keyboard.

// Semitones above the current octave's C.
export const KEY_OFFSETS = {
  KeyA: 0, KeyW: 1, KeyS: 2, KeyE: 3, KeyD: 4, KeyF: 5, KeyT: 6, KeyG: 7,
  KeyY: 8, KeyH: 9, KeyU: 10, KeyJ: 11, KeyK: 12, KeyO: 13, KeyL: 14,
  KeyP: 15, Semicolon: 16, Quote: 17,
};
const LABELS = {
  KeyA: "A", KeyW: "W", KeyS: "S", KeyE: "E", KeyD: "D", KeyF: "F", KeyT: "T",
  KeyG: "G", KeyY: "Y", KeyH: "H", KeyU: "U", KeyJ: "J", KeyK: "K", KeyO: "O",
  KeyL: "L", KeyP: "P", Semicolon: ";", Quote: "'",
};
const LABEL_BY_OFFSET = Object.fromEntries(
  Object.entries(KEY_OFFSETS).map(([code, off]) => [off, LABELS[code]]));

export const MIN_BASE = 24;   // C1
export const MAX_BASE = 96;   // C7
export const HARD_VELOCITY = 112;

const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
export function noteName(pitch) {
  return NAMES[((pitch % 12) + 12) % 12] + (Math.floor(pitch / 12) - 1);
}
export function isBlack(pitch) {
  return [1, 3, 6, 8, 10].includes(((pitch % 12) + 12) % 12);
}

export function isTyping(target) {
  if (!target || !(target instanceof Element)) return false;
  if (target.isContentEditable) return true;
  const tag = target.tagName;
  if (tag === "TEXTAREA" || tag === "SELECT") return true;
  if (tag !== "INPUT") return false;
  const type = (target.getAttribute("type") || "text").toLowerCase();
  return !["range", "checkbox", "radio", "button", "submit", "reset", "color"].includes(type);
}

export class ComputerKeyboard {
  // onDown(pitch, velocity), onUp(pitch), onOctave(base), getVelocity()
  constructor({ onDown, onUp, onOctave, getVelocity, base = 60 }) {
    this.onDown = onDown;
    this.onUp = onUp;
    this.onOctave = onOctave || (() => {});
    this.getVelocity = getVelocity || (() => 80);
    this.base = base;
    this.held = new Map();   // event.code -> pitch it sounded (octave may change while held)
  }

  attach(target = window) {
    target.addEventListener("keydown", (e) => this._down(e));
    target.addEventListener("keyup", (e) => this._up(e));
    // Keys let go while the window is not focused would stay down forever.
    window.addEventListener("blur", () => this.releaseAll());
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.releaseAll();
    });
  }

  setBase(base) {
    const b = Math.max(MIN_BASE, Math.min(MAX_BASE, base));
    if (b !== this.base) {
      this.base = b;
      this.onOctave(b);
    }
  }

  shiftOctave(delta) {
    this.setBase(this.base + 12 * delta);
  }

  _down(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
    const code = e.code;
    if (code === "KeyZ" || code === "KeyX") {
      e.preventDefault();
      if (!e.repeat) this.shiftOctave(code === "KeyZ" ? -1 : 1);
      return;
    }
    const off = KEY_OFFSETS[code];
    if (off === undefined) return;
    e.preventDefault();   // e.g. Firefox's quick find on ' and /
    if (e.repeat || this.held.has(code)) return;
    const pitch = this.base + off;
    if (pitch > 127) return;
    this.held.set(code, pitch);
    this.onDown(pitch, e.shiftKey ? HARD_VELOCITY : this.getVelocity());
  }

  _up(e) {
    const pitch = this.held.get(e.code);
    if (pitch === undefined) return;
    this.held.delete(e.code);
    e.preventDefault();
    this.onUp(pitch);
  }

  releaseAll() {
    for (const [code, pitch] of [...this.held]) {
      this.held.delete(code);
      this.onUp(pitch);
    }
  }
}

// A clickable keyboard from the C an octave below the playing range to the B
// two octaves above it; the keys the computer keyboard plays carry its letters.
export class ScreenKeyboard {
  constructor(container, { onDown, onUp, getVelocity }) {
    this.el = container;
    this.onDown = onDown;
    this.onUp = onUp;
    this.getVelocity = getVelocity || (() => 80);
    this.base = 60;
    this.keys = new Map();      // pitch -> element
    this.pointers = new Map();  // pointerId -> pitch
    this.held = new Set();
    this.lit = new Set();
    this.sustained = new Set();  // keys up, ringing under the sustain pedal
    this._build();
    this.el.addEventListener("pointerdown", (e) => this._pointerDown(e));
    const up = (e) => this._pointerUp(e);
    window.addEventListener("pointerup", up);
    window.addEventListener("pointercancel", up);
    this.el.addEventListener("contextmenu", (e) => e.preventDefault());
  }

  get lo() { return this.base - 12; }
  get hi() { return this.base + 23; }

  setBase(base) {
    this.base = base;
    this._build();
  }

  _build() {
    this.el.textContent = "";
    this.keys.clear();
    const whites = [];
    for (let p = this.lo; p <= this.hi; p++) if (!isBlack(p)) whites.push(p);
    const w = 100 / whites.length;
    let wi = 0;
    for (let p = this.lo; p <= this.hi; p++) {
      const k = document.createElement("div");
      const black = isBlack(p);
      k.className = black ? "key black" : "key white";
      k.dataset.pitch = String(p);
      const off = p - this.base;
      if (off in LABEL_BY_OFFSET && off >= 0) {
        k.classList.add("mapped");
        const lab = document.createElement("span");
        lab.className = "letter";
        lab.textContent = LABEL_BY_OFFSET[off];
        k.appendChild(lab);
      }
      if (p % 12 === 0) {
        const n = document.createElement("span");
        n.className = "name";
        n.textContent = noteName(p);
        k.appendChild(n);
      }
      if (black) {
        k.style.left = `calc(${wi * w}% - ${w * 0.31}%)`;
        k.style.width = `${w * 0.62}%`;
      } else {
        k.style.left = `${wi * w}%`;
        k.style.width = `${w}%`;
        wi += 1;
      }
      if (this.held.has(p)) k.classList.add("held");
      if (this.lit.has(p)) k.classList.add("lit");
      if (this.sustained.has(p)) k.classList.add("sustained");
      this.keys.set(p, k);
      this.el.appendChild(k);
    }
  }

  setHeld(pitch, on) {
    if (on) this.held.add(pitch); else this.held.delete(pitch);
    const k = this.keys.get(pitch);
    if (k) k.classList.toggle("held", on);
  }

  // The keys that are up but ring under the pedal; pedal: whether it is down.
  setPedal(down, sustained) {
    this.el.classList.toggle("pedal", down);
    for (const p of new Set([...this.sustained, ...sustained])) {
      const k = this.keys.get(p);
      if (k) k.classList.toggle("sustained", sustained.has(p));
    }
    this.sustained = new Set(sustained);
    for (const p of this.sustained) this.setHeld(p, false);  // their keys are up
  }

  // The pitches the model is sounding now.
  setLit(pitches) {
    for (const p of this.lit) {
      if (!pitches.has(p)) {
        const k = this.keys.get(p);
        if (k) k.classList.remove("lit");
      }
    }
    for (const p of pitches) {
      if (!this.lit.has(p)) {
        const k = this.keys.get(p);
        if (k) k.classList.add("lit");
      }
    }
    this.lit = new Set(pitches);
  }

  _pointerDown(e) {
    const k = e.target.closest(".key");
    if (!k || e.button > 0) return;
    e.preventDefault();
    const pitch = Number(k.dataset.pitch);
    if (this.pointers.has(e.pointerId)) return;
    this.pointers.set(e.pointerId, pitch);
    this.onDown(pitch, this.getVelocity());
  }

  _pointerUp(e) {
    const pitch = this.pointers.get(e.pointerId);
    if (pitch === undefined) return;
    this.pointers.delete(e.pointerId);
    this.onUp(pitch);
  }
}
