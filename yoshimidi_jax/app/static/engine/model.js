// The exported decode step in the page: model.onnx and manifest.json (as
// `python -m experiments.export` writes them) run by onnxruntime-web (WASM,
// vendored under ../vendor/onnxruntime-web/). A Model is one session: its
// KV cache, the index of the next token, and the Track the step's position
// inputs come from (./track.js; the exported graph reads where the tokens
// before the fed one stand, as yoshimidi_jax/export/step.py OnnxStep does).
//
//     const model = await loadModel("site/");            // the folder of the export
//     const { logits, timeLogits } = await model.step(token, seconds);
//
// step() feeds one token (with its seconds at TIME) and returns the logits for
// the next token ([V] Float32Array) and the time head's ([S]).

import * as ort from "../vendor/onnxruntime-web/ort.wasm.min.mjs";
import { Track } from "./track.js";
import { Vocab } from "./vocab.js";

export const FORMAT = "yoshimidi-decode-step";
export const FORMAT_VERSION = 1;

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

  /** The graph's inputs for `token` from where the Track stands. */
  feeds(token, seconds) {
    const s = this.track.positionStart();
    const i32 = (x, dims) => new ort.Tensor("int32", Int32Array.of(x), dims);
    const f = {
      token: i32(token, [1, 1]),
      time: new ort.Tensor("float32", Float32Array.of(seconds), [1, 1]),
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

  /** Feeds one token (seconds: its time value at TIME) -> { logits [V], timeLogits [S] }
   * for the next token; the cache, the index and the Track move on. */
  async step(token, seconds = 0) {
    if (this.index >= this.cacheLength) {
      throw new Error(`the cache is full (${this.cacheLength} tokens): reset() or start a new window`);
    }
    const out = await this.session.run(this.feeds(token, seconds));
    this.cache = this.manifest.cache.outputs.map((name) => out[name]);
    this.index += 1;
    this.track.advance(token, seconds);
    return { logits: out[this.outputNames[0]].data, timeLogits: out[this.outputNames[1]].data };
  }
}
