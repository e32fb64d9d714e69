// The token vocabulary's layout as the page's engine reads it: every number
// comes from the export's manifest.json (yoshimidi_jax/export/step.py,
// manifest_for), whose tables are the library's own (tokens/vocab.py,
// tokens/controls.py, sample/constraints.py).

export class Vocab {
  constructor(manifest) {
    const v = manifest.vocab, b = v.blocks, rules = manifest.rules;
    if (!rules) throw new Error("manifest.json has no 'rules' section: re-export the model with this version");
    this.size = v.size;
    this.specials = { ...v.specials };
    this.noteOn = b.note_on.start;
    this.noteOff = b.note_off.start;
    this.velocity = b.velocity.start;
    this.control = b.control.start;
    this.timeShift = b.time_shift.start;
    this.timeShifts = v.time_shifts;
    this.numVelocityBins = v.num_velocity_bins;
    this.numPitches = rules.num_pitches;
    this.familyOf = Int32Array.from(rules.family_of_id);
    this.familyNames = rules.family_names;
    const c = manifest.controls;
    this.intervalValues = c.interval.values;
    this.chordValues = c.chord.values;
    this.velocityValues = c.velocity.values;
    this.anyInterval = c.interval.any;
    this.anyChord = c.chord.any;
    this.anyVelocity = c.velocity.any;
    this.intervalBounds = c.interval.bounds; // [class] -> [lo, hi] signed semitones (ANY: none, all allowed)
    this.pressWindowS = Math.fround(c.press_window_s); // compared with a float32 clock, as in JAX
    this.bucketBins = rules.velocity_bucket_bins; // [bucket (ANY last)][bin] 0/1
    this.sincePressStart = Math.fround(rules.since_press_start_s);
  }

  isNoteOn(t) { return t >= this.noteOn && t < this.noteOff; }
  isNoteOff(t) { return t >= this.noteOff && t < this.velocity; }
  isVelocity(t) { return t >= this.velocity && t < this.control; }
  isControl(t) { return t >= this.control && t < this.timeShift; }
  isTimeShift(t) { return t >= this.timeShift && t < this.size; }
  isTime(t) { return t === this.specials.TIME || this.isTimeShift(t); }

  /** A CONTROL id -> [interval, chord, velocity] classes (tokens/controls.py control_attributes). */
  controlAttributes(id) {
    const packed = id - this.control;
    const velocity = packed % this.velocityValues;
    const rest = Math.floor(packed / this.velocityValues);
    return [Math.floor(rest / this.chordValues), rest % this.chordValues, velocity];
  }

  /** [interval, chord, velocity] classes -> the CONTROL id. */
  controlId(interval, chord, velocity) {
    return this.control + (interval * this.chordValues + chord) * this.velocityValues + velocity;
  }
}
