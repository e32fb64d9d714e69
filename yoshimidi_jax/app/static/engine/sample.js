// Sampling from the model's logits: the page's copy of
// yoshimidi_jax/sample/sampler.py (filter_logits, filter_logits_per_family,
// sample_token, time_value 'refined'). The randomness is a uniform draw in
// [0, 1) passed in, turned into an id by the inverse CDF of the filtered
// distribution: the same draw gives the same id here and in the test's
// reference (tests/export/test_page_engine.py), which is checked against
// sampler.py itself with the same inverse-CDF draw. Arithmetic is float64.

/** One id of `probs` (unnormalised, >= 0) for the uniform draw u in [0, 1):
 * the first id whose cumulative mass exceeds u times the total. */
export function inverseCdf(probs, u) {
  let total = 0;
  for (let i = 0; i < probs.length; i++) total += probs[i];
  const target = u * total;
  let cum = 0, last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] > 0) last = i;
    cum += probs[i];
    if (cum > target && probs[i] > 0) return i;
  }
  return last; // u * total rounded up to the total itself
}

/** Unnormalised softmax weights of logits (exp(x - max)); -inf-like entries get 0. */
function weights(x) {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  const w = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) w[i] = Math.exp(x[i] - max);
  return w;
}

function logSumExp(x) {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - max);
  return max + Math.log(s);
}

export class Sampler {
  /** rules: manifest.rules (masked_logit, min_temperature, family_of_id, log_supports). */
  constructor(manifest) {
    const r = manifest.rules;
    this.masked = r.masked_logit;
    this.minTemperature = r.min_temperature;
    this.familyOf = Int32Array.from(r.family_of_id);
    this.numFamilies = r.family_names.length;
    this.logSupports = Float64Array.from(r.log_supports);
  }

  /** Tempered, masked logits: disallowed ids at the masked value. */
  tempered(logits, mask, temperature) {
    const t = Math.max(temperature, this.minTemperature);
    const x = new Float64Array(logits.length);
    for (let i = 0; i < x.length; i++) x[i] = mask[i] ? logits[i] / t : this.masked;
    return x;
  }

  /** sampler.py filter_logits: disallowed, beyond-top-k and beyond-top-p ids at the
   * masked value (top_k <= 0 and top_p >= 1 disable those filters). */
  filterLogits(logits, mask, temperature, topP, topK) {
    const V = logits.length, masked = this.masked;
    const x = this.tempered(logits, mask, temperature);
    if (topK > 0) {
      const kth = Float64Array.from(x).sort().reverse()[Math.min(Math.max(topK - 1, 0), V - 1)];
      for (let i = 0; i < V; i++) if (x[i] < kth) x[i] = masked;
    }
    const desc = Float64Array.from(x).sort().reverse();
    const w = weights(desc);
    let total = 0;
    for (let i = 0; i < V; i++) total += w[i];
    // keep the sorted ids whose mass strictly before them is under top_p (the first always)
    let threshold = desc[0], before = 0;
    for (let i = 0; i < V; i++) {
      if (i === 0 || (before < topP && desc[i] > masked)) threshold = Math.min(threshold, desc[i]);
      before += w[i] / total;
    }
    const out = new Float64Array(V);
    for (let i = 0; i < V; i++) out[i] = x[i] >= threshold && mask[i] ? x[i] : masked;
    return out;
  }

  /** sampler.py filter_logits_per_family: filterLogits within each token family,
   * each family keeping its whole (tempered, masked) probability. */
  filterLogitsPerFamily(logits, mask, temperature, topP, topK) {
    const V = logits.length, masked = this.masked;
    const x = this.tempered(logits, mask, temperature);
    const logTotal = logSumExp(x);
    const out = new Float64Array(V).fill(masked);
    for (let f = 0; f < this.numFamilies; f++) {
      const inFamily = new Uint8Array(V);
      let some = false;
      for (let i = 0; i < V; i++) if (mask[i] && this.familyOf[i] === f) { inFamily[i] = 1; some = true; }
      if (!some) continue;
      const kept = this.filterLogits(logits, inFamily, temperature, topP, topK);
      const logFamily = logSumExp(x.map((xi, i) => (inFamily[i] ? xi : masked)));
      const logKept = logSumExp(kept);
      for (let i = 0; i < V; i++) if (kept[i] > masked) out[i] = kept[i] - logKept + logFamily - logTotal;
    }
    return out;
  }

  /** sampler.py sample_token for one row: the id for the uniform draw u;
   * temperature <= 0 is greedy within the mask; perFamily: top-k/top-p within
   * each token family (the sampler's nucleus 'family'), else over all ids. */
  sampleToken(logits, mask, { temperature = 1, topP = 1, topK = 0, perFamily = true }, u) {
    if (!(temperature > 0)) {
      let best = -1, bestX = -Infinity;
      for (let i = 0; i < logits.length; i++) {
        const xi = mask[i] ? logits[i] : this.masked;
        if (best < 0 || xi > bestX) { best = i; bestX = xi; }
      }
      return best;
    }
    const filtered = perFamily ? this.filterLogitsPerFamily(logits, mask, temperature, topP, topK)
      : this.filterLogits(logits, mask, temperature, topP, topK);
    return inverseCdf(weights(filtered), u);
  }

  /** sampler.py time_value 'refined': a support drawn (draw u) from the
   * tempered time head, then the log-time expectation over it and its two
   * neighbours under the untempered probabilities -> seconds. */
  timeValue(timeLogits, temperature, u) {
    const S = timeLogits.length;
    const t = Math.max(temperature, this.minTemperature);
    const support = inverseCdf(weights(Array.from(timeLogits, (x) => x / t)), u);
    const probs = weights(timeLogits);
    let mass = 0, logT = 0;
    for (let s = Math.max(support - 1, 0); s <= Math.min(support + 1, S - 1); s++) {
      mass += probs[s];
      logT += probs[s] * this.logSupports[s];
    }
    return Math.exp(logT / Math.max(mass, 1e-300));
  }
}
