// A scrolling piano roll on a canvas: now at the right edge, time flowing
// right to left, pitch upward. The model's notes are bars; the player's
// presses are dots at the keys' pitches and ticks in a lane at the bottom,
// where a band shows when the sustain pedal was down.

import { isBlack, noteName } from "./keys.js";

const LANE = 26;        // css px: press lane at the bottom
const RIGHT_PAD = 12;   // css px: room right of "now"
const MIN_SPAN = 24;    // semitones
const PAD = 3;          // semitones around the notes in view
const MAX_NOTES = 5000;
const LABEL_GAP = 4;    // css px: around marker labels

export class Roll {
  // legend: an element drawn over the roll's top (marker labels go below it)
  constructor(canvas, { seconds = 8, legend = null } = {}) {
    this.canvas = canvas;
    this.legend = legend;
    this.g = canvas.getContext("2d");
    this.windowMs = seconds * 1000;
    this.notes = [];     // {pitch, velocity, start, end|null}  (performance.now() ms)
    this.presses = [];   // {t, keys, velocity, ok}
    this.markers = [];   // {t, label}
    this.pedals = [];    // {start, end|null}: the sustain pedal down
    this.added = 0;      // model notes ever added
    this.lo = 48;
    this.hi = 84;
    this.w = 0;
    this.h = 0;
    this.dpr = 0;
    this.onFrame = null;
    this._frame = this._frame.bind(this);
  }

  start() {
    requestAnimationFrame(this._frame);
  }

  addNote({ pitch, velocity, start, end = null }) {
    const n = { pitch, velocity, start, end };
    this.notes.push(n);
    this.added += 1;
    if (this.notes.length > MAX_NOTES) this.notes.splice(0, this.notes.length - MAX_NOTES);
    return n;
  }

  addPress({ t, keys, velocity, ok = true }) {
    this.presses.push({ t, keys, velocity, ok });
    if (this.presses.length > 2000) this.presses.splice(0, 1000);
  }

  // The sustain pedal went down (true) or up (false) at t.
  setPedal(down, t = performance.now()) {
    const last = this.pedals[this.pedals.length - 1];
    const open = last !== undefined && last.end === null;
    if (down && !open) this.pedals.push({ start: t, end: null });
    else if (!down && open) last.end = t;
    if (this.pedals.length > 500) this.pedals.splice(0, 250);
  }

  addMarker(label, t = performance.now()) {
    this.markers.push({ t, label });
    if (this.markers.length > 50) this.markers.shift();
  }

  // Pitches of the model notes sounding at time `now`.
  sounding(now = performance.now()) {
    const s = new Set();
    for (const n of this.notes) {
      if (n.start <= now && (n.end === null || n.end > now)) s.add(n.pitch);
    }
    return s;
  }

  // Where marker labels start (css px from the canvas top): below the legend.
  _labelTop() {
    if (!this.legend) return LABEL_GAP;
    const bottom = this.legend.getBoundingClientRect().bottom - this.canvas.getBoundingClientRect().top;
    return Math.max(LABEL_GAP, Math.ceil(bottom) + LABEL_GAP);
  }

  _resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, this.canvas.clientWidth);
    const h = Math.max(1, this.canvas.clientHeight);
    if (w === this.w && h === this.h && dpr === this.dpr) return;
    this.w = w;
    this.h = h;
    this.dpr = dpr;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
  }

  _prune(now) {
    const old = now - this.windowMs - 2000;
    let i = 0;
    // Notes are kept in arrival order; a held note (end null) stops the sweep.
    while (i < this.notes.length && this.notes[i].end !== null && this.notes[i].end < old) i++;
    if (i > 0) this.notes.splice(0, i);
    let j = 0;
    while (j < this.presses.length && this.presses[j].t < old) j++;
    if (j > 0) this.presses.splice(0, j);
    while (this.markers.length && this.markers[0].t < old) this.markers.shift();
    while (this.pedals.length && this.pedals[0].end !== null && this.pedals[0].end < old) this.pedals.shift();
  }

  _range(now) {
    const from = now - this.windowMs;
    let lo = Infinity;
    let hi = -Infinity;
    for (const n of this.notes) {
      if (n.end !== null && n.end < from) continue;
      if (n.pitch < lo) lo = n.pitch;
      if (n.pitch > hi) hi = n.pitch;
    }
    for (const p of this.presses) {
      if (p.t < from) continue;
      for (const k of p.keys) {
        if (k < lo) lo = k;
        if (k > hi) hi = k;
      }
    }
    if (lo === Infinity) { lo = this.lo + PAD; hi = this.hi - PAD; }
    lo -= PAD;
    hi += PAD;
    if (hi - lo < MIN_SPAN) {
      const mid = (lo + hi) / 2;
      lo = mid - MIN_SPAN / 2;
      hi = mid + MIN_SPAN / 2;
    }
    lo = Math.max(20.5, lo);
    hi = Math.min(108.5, hi);
    // Widen quickly, narrow slowly.
    const ease = (cur, target, widening) => cur + (target - cur) * (widening ? 0.18 : 0.02);
    this.lo = ease(this.lo, lo, lo < this.lo);
    this.hi = ease(this.hi, hi, hi > this.hi);
  }

  _frame() {
    requestAnimationFrame(this._frame);
    try {
      const now = performance.now();
      this._resize();
      this._prune(now);
      this._range(now);
      this._draw(now);
      if (this.onFrame) this.onFrame(now);
    } catch (err) {
      console.warn("yoshimidi roll:", err);
    }
  }

  _draw(now) {
    const g = this.g;
    const { w, h, dpr } = this;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const rollH = h - LANE;
    const xNow = w - RIGHT_PAD;
    const pxPerMs = xNow / this.windowMs;
    const xOf = (t) => xNow - (now - t) * pxPerMs;
    const span = this.hi - this.lo;
    const rowH = rollH / span;
    const yOf = (pitch) => rollH - (pitch + 0.5 - this.lo) * rowH;   // top of the row

    // Background and pitch rows.
    g.fillStyle = "#0e1118";
    g.fillRect(0, 0, w, h);
    const pLo = Math.max(0, Math.floor(this.lo));
    const pHi = Math.min(127, Math.ceil(this.hi));
    for (let p = pLo; p <= pHi; p++) {
      const y = yOf(p);
      if (isBlack(p)) {
        g.fillStyle = "#0a0d13";
        g.fillRect(0, y, w, rowH);
      }
      if (p % 12 === 0) {
        g.fillStyle = "#222a38";
        g.fillRect(0, y + rowH - 1, w, 1);
      }
    }

    // Seconds grid, scrolling with the music.
    g.fillStyle = "#171c27";
    const first = Math.ceil((now - this.windowMs) / 1000) * 1000;
    for (let t = first; t <= now; t += 1000) {
      g.fillRect(Math.round(xOf(t)), 0, 1, rollH);
    }

    // Markers (reset, new session).
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "top";
    const labelTop = this.markers.length ? this._labelTop() : 0;
    let lastX = -Infinity;
    let row = 0;
    for (const m of this.markers) {
      const x = xOf(m.t);
      if (x < -80) continue;
      row = x - lastX < 90 ? row + 1 : 0;   // stack labels that would overlap
      lastX = x;
      g.fillStyle = "rgba(140, 160, 200, 0.35)";
      for (let y = 0; y < rollH; y += 6) g.fillRect(Math.round(x), y, 1, 3);
      g.fillStyle = "rgba(170, 185, 215, 0.75)";
      g.fillText(m.label, x + 4, labelTop + 14 * (row % 4));
    }

    // The model's notes.
    const barH = Math.max(2, rowH - 1.5);
    const r = Math.min(3, barH / 2);
    for (const n of this.notes) {
      const end = n.end === null ? now : Math.min(n.end, now);
      if (end < now - this.windowMs || n.start > now) continue;
      const x0 = xOf(n.start);
      const x1 = Math.max(x0 + 3, xOf(end));
      const y = yOf(n.pitch) + (rowH - barH) / 2;
      const v = Math.min(1, n.velocity / 127);
      const hue = (265 + 125 * v) % 360;   // violet (soft) .. rose .. orange (hard)
      const light = 52 + 14 * v;
      const alpha = 0.45 + 0.55 * v;
      const held = n.end === null || n.end > now;
      g.fillStyle = `hsla(${hue}, 85%, ${light}%, ${alpha})`;
      if (held) {
        g.shadowColor = `hsla(${hue}, 95%, 60%, 0.8)`;
        g.shadowBlur = 10;
      }
      roundRect(g, x0, y, x1 - x0, barH, r);
      g.fill();
      g.shadowBlur = 0;
      if (held) {
        g.fillStyle = `hsla(${hue}, 100%, 85%, 0.95)`;
        g.fillRect(x1 - 2, y, 2, barH);
      }
    }

    // The player's presses: dots at the keys' pitches, ticks in the lane.
    g.fillStyle = "#0b0e14";
    g.fillRect(0, rollH, w, LANE);
    g.fillStyle = "#1f2633";
    g.fillRect(0, rollH, w, 1);
    // The sustain pedal: an amber band along the lane's top while it is down.
    for (const pd of this.pedals) {
      const end = pd.end === null ? now : pd.end;
      if (end < now - this.windowMs) continue;
      const x0 = Math.max(0, xOf(pd.start));
      const x1 = Math.max(x0 + 2, xOf(end));
      g.fillStyle = "rgba(251, 191, 36, 0.16)";
      g.fillRect(x0, rollH + 1, x1 - x0, LANE - 1);
      g.fillStyle = "rgba(251, 191, 36, 0.85)";
      g.fillRect(x0, rollH + 2, x1 - x0, 3);
    }
    for (const p of this.presses) {
      const x = xOf(p.t);
      if (x < -4) continue;
      const col = p.ok ? "rgba(94, 234, 212," : "rgba(150, 150, 160,";
      g.fillStyle = `${col} 0.55)`;
      for (const k of p.keys) {
        if (k < this.lo - 1 || k > this.hi + 1) continue;
        g.beginPath();
        g.arc(x, yOf(k) + rowH / 2, Math.max(1.5, Math.min(3.5, rowH * 0.3)), 0, Math.PI * 2);
        g.fill();
      }
      const tick = Math.min(LANE - 6, 4 + (LANE - 10) * Math.min(p.keys.length, 5) / 5);
      g.fillStyle = `${col} ${0.35 + 0.65 * Math.min(1, p.velocity / 127)})`;
      g.fillRect(Math.round(x) - 1, h - 3 - tick, 3, tick);
    }

    // Octave labels at the left edge.
    g.textBaseline = "middle";
    g.fillStyle = "rgba(150, 162, 185, 0.75)";
    g.strokeStyle = "#0e1118";
    g.lineWidth = 3;
    for (let p = pLo; p <= pHi; p++) {
      if (p % 12 !== 0) continue;
      const y = yOf(p) + rowH / 2;
      if (y < 8 || y > rollH - 6) continue;
      g.strokeText(noteName(p), 6, y);
      g.fillText(noteName(p), 6, y);
    }

    // "Now".
    const grad = g.createLinearGradient(xNow - 24, 0, xNow, 0);
    grad.addColorStop(0, "rgba(94, 234, 212, 0)");
    grad.addColorStop(1, "rgba(94, 234, 212, 0.10)");
    g.fillStyle = grad;
    g.fillRect(xNow - 24, 0, 24, h);
    g.fillStyle = "rgba(94, 234, 212, 0.55)";
    g.fillRect(xNow, 0, 1, h);
  }
}

function roundRect(g, x, y, w, h, r) {
  g.beginPath();
  g.moveTo(x + r, y);
  g.lineTo(x + w - r, y);
  g.quadraticCurveTo(x + w, y, x + w, y + r);
  g.lineTo(x + w, y + h - r);
  g.quadraticCurveTo(x + w, y + h, x + w - r, y + h);
  g.lineTo(x + r, y + h);
  g.quadraticCurveTo(x, y + h, x, y + h - r);
  g.lineTo(x, y + r);
  g.quadraticCurveTo(x, y, x + r, y);
  g.closePath();
}
