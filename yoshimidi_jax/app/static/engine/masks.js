// The per-step constraint mask: the page's copy of
// yoshimidi_jax/sample/constraints.py allowed_tokens (the grammar, and the
// strict mode that makes a press's CONTROL hold), for one session's Track.
// Read that file's docstring for the rules; each line here follows one there.
// tests/export/test_page_engine.py checks both give the same mask after
// every token of recorded sessions.

/** Constraints as sample/constraints.py's dataclass (the same defaults). */
export function constraints({ pitchLo = 0, pitchHi = 127, allowControls = true, allowEos = true,
                              strict = false } = {}) {
  if (!(0 <= pitchLo && pitchLo <= pitchHi && pitchHi <= 127)) {
    throw new Error(`bad pitch range [${pitchLo}, ${pitchHi}]: need 0 <= lo <= hi <= 127`);
  }
  return { pitchLo, pitchHi, allowControls, allowEos, strict };
}

/** Is the offset (pitch - reference) inside interval class `cls`? (ANY: always) */
function inClass(vocab, cls, offset) {
  if (cls === vocab.anyInterval) return true;
  const [lo, hi] = vocab.intervalBounds[cls];
  return offset >= lo && offset <= hi;
}

/** The families' rows -> [V] 0/1 (constraints.py _assemble). */
function assemble(vocab, time, eos, on, off, vel, ctrl) {
  const m = new Uint8Array(vocab.size);
  if (time && vocab.timeShifts === 0) m[vocab.specials.TIME] = 1;
  if (eos) m[vocab.specials.EOS] = 1;
  for (let p = 0; p < vocab.numPitches; p++) {
    m[vocab.noteOn + p] = on[p];
    m[vocab.noteOff + p] = off[p];
  }
  for (let b = 0; b < vocab.numVelocityBins; b++) m[vocab.velocity + b] = vel[b];
  if (ctrl) m.fill(1, vocab.control, vocab.timeShift);
  if (time) m.fill(1, vocab.timeShift, vocab.size);
  return m;
}

const any = (m) => m.some((x) => x !== 0);

/** -> allowed [V] Uint8Array (1: the id may come next) after `track`. */
export function allowedTokens(track, c, vocab) {
  const n = vocab.numPitches, bins = vocab.numVelocityBins;
  const pressOpen = track.pressLen > 0;
  const canStart = track.sincePress > vocab.pressWindowS;
  const hasVel = track.velBin >= 0;
  const inRange = (p) => p >= c.pitchLo && p <= c.pitchHi;
  // a pitch may start the press (or continue it, above its last note)
  const order = (p) => (pressOpen ? p > track.lastOn : canStart || track.pending);
  const canOn = new Uint8Array(n), canOff = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    canOn[p] = inRange(p) && !track.sounding[p] && hasVel && order(p) ? 1 : 0;
    canOff[p] = track.sounding[p] && !pressOpen && !track.afterVel ? 1 : 0; // after a CONTROL too
  }
  const free = !track.afterVel && !track.pending; // not in the middle of starting a note
  // a VELOCITY starts a press unless one is open or announced by its CONTROL
  const velAll = !track.afterVel && (pressOpen || track.pending || canStart);
  const canVel = new Uint8Array(bins).fill(velAll ? 1 : 0);
  const canTime = free;
  const canEos = free && c.allowEos;
  const canCtrl = free && !pressOpen && canStart && c.allowControls;

  let allowed;
  const grammar = () => assemble(vocab, canTime, canEos, canOn, canOff, canVel, canCtrl);
  if (c.strict) {
    const has = track.control >= 0;
    const [ci, cc, cv] = vocab.controlAttributes(Math.max(track.control, vocab.control));
    const interval = has ? ci : vocab.anyInterval;
    const chord = has ? cc : vocab.anyChord;
    const velocity = has ? cv : vocab.anyVelocity;
    const bucket = vocab.bucketBins[velocity];
    const velOk = hasVel && bucket[Math.max(track.velBin, 0)] === 1;
    // chord of n: n NOTE_ONs, nothing between them, none after
    const nKeys = chord === vocab.anyChord ? 0 : chord + 1;
    const counting = nKeys > 0 && pressOpen;
    const short = counting && track.pressLen < nKeys;
    const full = counting && track.pressLen >= nKeys;
    const toCome = Math.max(nKeys - 1 - track.pressLen, 0); // room above for the notes still to come
    // interval: the press's first NOTE_ON, from the previous reference
    const first = !pressOpen && track.ref >= 0 && interval !== vocab.anyInterval;
    const strictOn = new Uint8Array(n), strictOff = new Uint8Array(n), strictVel = new Uint8Array(bins);
    for (let p = 0; p < n; p++) {
      // a sounding pitch may be struck again (decoding ends the old note there)
      let ok = inRange(p) && hasVel && order(p) && velOk;
      if (first) ok = ok && inClass(vocab, interval, p - track.ref);
      if (full) ok = false;
      ok = ok && p <= c.pitchHi - toCome;
      strictOn[p] = ok ? 1 : 0;
      strictOff[p] = canOff[p] && !short ? 1 : 0;
    }
    for (let b = 0; b < bins; b++) strictVel[b] = canVel[b] && bucket[b] && !counting ? 1 : 0;
    const strictMask = assemble(vocab, canTime && !short, canEos && !short, strictOn, strictOff, strictVel,
                                canCtrl && !short);
    // a row whose strict mask would be empty falls back to the grammar alone
    allowed = any(strictMask) ? strictMask : grammar();
  } else {
    allowed = grammar();
  }
  // never an empty row: time is always a way on (TIME, or one step of TIME_SHIFT)
  if (!any(allowed)) allowed[vocab.timeShifts ? vocab.timeShift : vocab.specials.TIME] = 1;
  if (track.done) {
    allowed.fill(0);
    allowed[vocab.specials.PAD] = 1;
  }
  return allowed;
}

/** `mask` with only its NOTE_ON ids kept, and only pitches <= `highest`
 * (what a press's sampled notes may be: play/press.py's room above). */
export function noteOnsOnly(mask, vocab, highest = vocab.numPitches - 1) {
  const out = new Uint8Array(mask.length);
  for (let p = 0; p <= highest; p++) out[vocab.noteOn + p] = mask[vocab.noteOn + p];
  return out;
}

export { any as anyAllowed };
