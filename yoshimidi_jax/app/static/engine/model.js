// The exported decode step in the page: model.onnx and manifest.json (as
// `python -m experiments.export` writes them) run by onnxruntime-web (WASM,
// vendored under ../vendor/onnxruntime-web/). A Model is one session: its
// KV cache, the index of the next token, and the Track the step's position
// inputs come from (./track.js; the exported graph reads where the tokens
// before the fed one stand, as yoshimidi_jax/export/step.py OnnxStep does).
//
//     const model = await loadModel("site/");            // the folder of the export
//     const { logits, timeLogits } = await model.step(token, seconds);
//     const { logits, timeLogits } = await model.run(tokens, seconds);  // up to tokensPerCall
//
// step() feeds one token (with its seconds at TIME) and returns the logits for
// the next token ([V] Float32Array) and the time head's ([S]); run() feeds up
// to tokensPerCall tokens in one call of the graph (export/step.py: the rest
// of the call is PAD) and returns those after the last. The graph reads the
// cache and returns the call's new keys/values; the Model writes the real
// tokens' rows into its cache at the index (the cache holds `capacity` ==
// its length in tokens), so a call copies no whole cache out of WASM.

import * as ort from "../vendor/onnxruntime-web/ort.wasm.min.mjs";
import { Track } from "./track.js";
import { Vocab } from "./vocab.js";

export const FORMAT = "yoshimidi-decode-step";
export const FORMAT_VERSION = 3;

/** Fetches manifest.json and model.onnx from `base` (a folder URL) and starts
 * an onnxruntime-web session on them (threads: WASM threads, 1 unless the page
 * is cross-origin isolated); style: the style asked (-1: none). */
export async function loadModel(base, { threads = 1, style = null } = {}) {
  const root = base.endsWith("/") ? base : base + "/";
  const res = await fetch(root + "manifest.json");
  if (!res.ok) throw new Error(`no manifest.json at ${root} (${res.status})`);
  const manifest = await res.json();
  if (manifest.format !== FORMAT || manifest.format_version !== FORMAT_VERSION) {
    throw new Error(`${root}manifest.json is format ${manifest.format} v${manifest.format_version}; ` +
                    `this page reads ${FORMAT} v${FORMAT_VERSION}`);
  }
  const bytes = await fetch(root + manifest.model_file);
  if (!bytes.ok) throw new Error(`no ${manifest.model_file} at ${root} (${bytes.status})`);
  const data = new Uint8Array(await bytes.arrayBuffer());
  if (data.length !== manifest.model_bytes) {
    throw new Error(`${manifest.model_file} has ${data.length} bytes, the manifest says ${manifest.model_bytes}`);
  }
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  const session = await ort.InferenceSession.create(data, {
    executionProviders: ["wasm"], graphOptimizationLevel: "all", executionMode: "sequential",
  });
  return new Model(session, manifest, style);
}

export class Model {
  constructor(session, manifest, style = null) {
    this.session = session;
    this.manifest = manifest;
    this.vocab = new Vocab(manifest);
    this.cacheLength = manifest.cache.length;
    this.tokensPerCall = manifest.tokens_per_call;
    this.capacity = manifest.cache.capacity; // tokens the cache holds (its length)
    this.pad = manifest.vocab.specials.PAD;
    this.style = style === null ? manifest.styles.none : style;
    this.inputNames = manifest.inputs.map((i) => i.name);
    this.outputNames = manifest.outputs.map((o) => o.name);
    this.reset();
  }

  /** A new session: an empty cache, index 0, a fresh Track. */
  reset() {
    const shape = this.manifest.cache.shape;
    const n = shape.reduce((a, b) => a * b, 1);
    this.cache = this.manifest.cache.inputs.map(() => new ort.Tensor("float32", new Float32Array(n), shape));
    this.index = 0;
    this.track = new Track(this.vocab);
  }

  /** Another cache, index and Track on the same onnxruntime session (a refill
   * built beside the one in use), starting empty. */
  fork() {
    const m = Object.assign(Object.create(Model.prototype), this);
    m.reset();
    return m;
  }

  /** The graph's inputs for `tokens` (1..tokensPerCall, PAD after them) from where the Track stands. */
  feeds(tokens, seconds) {
    const s = this.track.positionStart(), k = this.tokensPerCall;
    const i32 = (x, dims) => new ort.Tensor("int32", Int32Array.of(x), dims);
    const ids = new Int32Array(k).fill(this.pad), times = new Float32Array(k);
    ids.set(tokens);
    times.set(seconds);
    const f = {
      token: new ort.Tensor("int32", ids, [1, k]),
      time: new ort.Tensor("float32", times, [1, k]),
      index: i32(this.index, []),
      control: i32(s.control, [1]), press_len: i32(s.press_len, [1]), ref: i32(s.ref, [1]),
      vel_bin: i32(s.vel_bin, [1]),
      sounding: new ort.Tensor("bool", s.sounding, [1, s.sounding.length]),
      age: new ort.Tensor("float32", s.age, [1, s.age.length]),
      style: i32(this.style, [1]),
    };
    this.manifest.cache.inputs.forEach((name, i) => { f[name] = this.cache[i]; });
    return f;
  }

  /** Writes the first n of a call's new rows (cache.outputs: [1, H, tokensPerCall, Dh])
   * into a cache tensor's data ([1, H, length, Dh]) at the index. */
  write(cache, rows, n) {
    const [, heads, length, dh] = this.manifest.cache.shape, k = this.tokensPerCall;
    for (let h = 0; h < heads; h++) {
      cache.set(rows.subarray(h * k * dh, (h * k + n) * dh), (h * length + this.index) * dh);
    }
  }

  /** Feeds one token (seconds: its time value at TIME) -> { logits [V], timeLogits [S] }
   * for the next token; the cache, the index and the Track move on. */
  async step(token, seconds = 0) {
    return this.run([token], [seconds]);
  }

  /** Feeds 1..tokensPerCall tokens in one call (seconds: each one's time value)
   * -> { logits [V], timeLogits [S] } after the last; the cache, the index and
   * the Track move on. */
  async run(tokens, seconds) {
    const n = tokens.length;
    if (n < 1 || n > this.tokensPerCall || seconds.length !== n) {
      throw new Error(`${n} tokens, ${seconds.length} times: a call takes 1 to ${this.tokensPerCall}, a time each`);
    }
    if (this.index + n > this.capacity) {
      throw new Error(`the cache is full (${this.capacity} tokens): reset() or start a new window`);
    }
    const out = await this.session.run(this.feeds(tokens, seconds));
    this.manifest.cache.outputs.forEach((name, i) => this.write(this.cache[i].data, out[name].data, n));
    this.index += n;
    for (let i = 0; i < n; i++) this.track.advance(tokens[i], seconds[i]);
    const logits = out[this.outputNames[0]].data, timeLogits = out[this.outputNames[1]].data;
    const v = logits.length / this.tokensPerCall, t = timeLogits.length / this.tokensPerCall;
    return { logits: logits.subarray((n - 1) * v, n * v), timeLogits: timeLogits.subarray((n - 1) * t, n * t) };
  }
}
