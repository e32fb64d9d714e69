"""The model's single decode step, with its KV cache, as an ONNX graph.

One call of the graph is one call of Transformer.decode on up to K tokens of
one session (B = 1, L = K = tokens_per_call, TOKENS_PER_CALL by default),
from where the tokens before them stand (the Track's PositionContext,
sample/tracker.py) and the style asked; a call of n < K tokens pads the rest
with PAD, whose keys/values land past the n real ones and are overwritten
by the next call's (a press's forced tokens, TIME CONTROL [NOTE_OFF...]
[VELOCITY], go in one call, as the server's press row feeds them at once):

    inputs   token [1, K] int32, time [1, K] float32 (seconds, at TIME),
             index [] int32 (the first token's sequence index == cache entries filled),
             control, press_len, ref, vel_bin [1] int32, sounding [1, 128] bool,
             age [1, 128] float32 (Track.position_start), style [1] int32 (-1: none),
             cache_k_0, cache_v_0, ... [1, H, T, Dh] float32 (one pair per layer; read, entries
             before `index`)
    outputs  logits [1, K, V], time_logits [1, K, S] (row n - 1: after the last real token),
             new_k_0, new_v_0, ... [1, H, K, Dh] (the tokens' keys/values: the caller writes
             the first n at `index`, OnnxStep.take and the page's model.js)

The graph only reads the cache (Transformer.decode rows_only: attention over
the entries before `index` and the call's own keys beside them), so a call
neither copies the whole cache out nor allocates it anew: in onnxruntime-web a
call of the tiny model at cache 256 costs ~0.6 x one that returns the cache,
and its p99 drops with the garbage it no longer makes. A cache of T entries
holds T tokens (`capacity`).

The graph computes in float32 whatever the run's compute dtype (a browser's
WASM backend has no bfloat16 matmul); the params are baked in as constants.
What the page keeps itself (the Track, the masks, sampling from the logits,
decoding TIME) is described by the manifest written beside the graph
(`manifest_for`), from the library's own tables.

`export_run` refuses a run the browser cannot play (a TIME_SHIFT model, one
over MAX_WEIGHT_BYTES of weights, a run with no checkpoint) with an
ExportError that says why, before anything is written; what it writes goes
into a temporary folder beside --out that replaces --out by renames, so
--out never holds a half-written export.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from yoshimidi_jax.export.matmul import einsums_to_matmuls
from yoshimidi_jax.model import Transformer, init_cache, init_params
from yoshimidi_jax.model.position_context import PositionContext, age_edges
from yoshimidi_jax.sample.constraints import bucket_bins
from yoshimidi_jax.sample.sampler import MASKED
from yoshimidi_jax.sample.tracker import Track, advance, init_track
from yoshimidi_jax.tokens import BOS, EOS, PAD, SEP, TIME, Vocab
from yoshimidi_jax.tokens import controls as ctl
from yoshimidi_jax.tokens import presses
from yoshimidi_jax.tokens.styles import NO_STYLE, model_styles
from yoshimidi_jax.tokens.vocab import NUM_CONTROLS, NUM_PITCHES, Family

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
FORMAT = "yoshimidi-decode-step"
FORMAT_VERSION = 3  # 3: the graph returns the new cache rows; 2: the whole cache, K tokens a call; 1: one
# what a page can fetch and hold as one model: the float32 weights, in bytes
MAX_WEIGHT_BYTES = 50_000_000
# ONNX opset of the graph: 21 runs on onnxruntime >= 1.16 (and onnxruntime-web of the same releases)
OPSET = 21
# tokens one call of the graph takes: in WASM (onnxruntime-web, 1 thread) a call of 4 costs ~1.2 x a call of 1
TOKENS_PER_CALL = 4
CONTEXT_INPUTS = ("control", "press_len", "ref", "vel_bin", "sounding", "age")
CONTEXT_DTYPES = (np.int32, np.int32, np.int32, np.int32, np.bool_, np.float32)


class ExportError(ValueError):
    """A run the page cannot play, or an --out it must not touch; the message says why."""


def weight_bytes(model: Transformer) -> int:
    """Bytes of the model's float32 weights (from shapes alone: nothing is initialised)."""
    shapes = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
    return int(sum(np.prod(x.shape) * 4 for x in jax.tree.leaves(shapes)))


def check_exportable(model: Transformer, cache_len: int, max_weight_bytes: int = MAX_WEIGHT_BYTES,
                     tokens_per_call: int = TOKENS_PER_CALL) -> None:
    """Raises ExportError naming why the browser cannot run `model` with a
    cache of cache_len, tokens_per_call tokens a call."""
    if model.time_shifts > 0:
        raise ExportError(
            f"a TIME_SHIFT model (model.time_shifts={model.time_shifts}): the page's engine writes time as "
            "one continuous TIME per gap (model.time_shifts=0); play this run with experiments.serve")
    n = weight_bytes(model)
    if n > max_weight_bytes:
        raise ExportError(
            f"the model is too big for the browser: {n / 1e6:.1f} MB of float32 weights, over the "
            f"{max_weight_bytes / 1e6:g} MB limit (--max_weight_mb); play this run with experiments.serve")
    if tokens_per_call < 1:
        raise ExportError(f"tokens_per_call={tokens_per_call}: at least 1")
    if cache_len < 2 * tokens_per_call:
        raise ExportError(f"cache_len={cache_len}: at least twice tokens_per_call ({tokens_per_call}), "
                          "a press's forced tokens fill a call)")
    if model.positional == "learned" and cache_len > model.max_len:
        raise ExportError(f"cache_len={cache_len} is over the learned position table's {model.max_len} "
                          "(model.max_len)")


def step_inputs(model: Transformer, cache_len: int,
                tokens_per_call: int = TOKENS_PER_CALL) -> list[tuple[str, jax.ShapeDtypeStruct]]:
    """The graph's inputs, in order: (name, shape and dtype)."""
    head_dim = model.d_model // model.num_heads
    s = jax.ShapeDtypeStruct
    k = tokens_per_call
    out = [("token", s((1, k), jnp.int32)), ("time", s((1, k), jnp.float32)), ("index", s((), jnp.int32)),
           ("control", s((1,), jnp.int32)), ("press_len", s((1,), jnp.int32)), ("ref", s((1,), jnp.int32)),
           ("vel_bin", s((1,), jnp.int32)), ("sounding", s((1, NUM_PITCHES), jnp.bool_)),
           ("age", s((1, NUM_PITCHES), jnp.float32)), ("style", s((1,), jnp.int32))]
    for i in range(model.num_layers):
        for kv in ("k", "v"):
            out.append((f"cache_{kv}_{i}", s((1, model.num_heads, cache_len, head_dim), jnp.float32)))
    return out


def step_outputs(model: Transformer) -> list[str]:
    return ["logits", "time_logits"] + [f"new_{kv}_{i}" for i in range(model.num_layers) for kv in ("k", "v")]


def float32_model(model: Transformer) -> Transformer:
    return model.clone(dtype=jnp.float32) if model.dtype != jnp.float32 else model


def step_function(model: Transformer, params: Any) -> Callable[..., tuple[jax.Array, ...]]:
    """The decode step over flat arrays, in step_inputs' order -> step_outputs' order."""
    model = float32_model(model)
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)

    def step(token, t, index, control, press_len, ref, vel_bin, sounding, age, style, *kv):
        cache = [{"k": kv[2 * i], "v": kv[2 * i + 1]} for i in range(model.num_layers)]
        start = PositionContext(control, press_len, ref, vel_bin, sounding, age)
        logits, time_logits, cache = model.apply({"params": params}, token, t, cache, index, start,
                                                 style if model.num_styles else None, rows_only=True,
                                                 method=model.decode)
        return (logits, time_logits, *[layer[kv] for layer in cache for kv in ("k", "v")])

    return step


def export_step(model: Transformer, params: Any, cache_len: int, tokens_per_call: int = TOKENS_PER_CALL) -> bytes:
    """The decode step as a serialised ONNX model (jax2onnx)."""
    import logging

    # jax2onnx imports a plugin for every library it knows at its first conversion, and logs a
    # traceback for each one not installed (equinox, dm-pix: requirements-export.txt leaves them out)
    logging.getLogger("jax2onnx.plugins.plugin_system").setLevel(logging.ERROR)
    from jax2onnx import to_onnx

    specs = step_inputs(model, cache_len, tokens_per_call)
    proto = to_onnx(step_function(model, params), [s for _, s in specs], model_name="yoshimidi_decode_step",
                    opset=OPSET, input_names=[n for n, _ in specs], output_names=step_outputs(model))
    proto, _ = einsums_to_matmuls(proto)  # onnxruntime-web runs MatMul faster than Einsum
    return proto.SerializeToString()


class OnnxStep:
    """The exported step in onnxruntime, one session's state beside it (CPU,
    `threads` intra-op threads): `feed(tokens, times)` feeds up to
    tokens_per_call tokens in one call from where the Track stands and
    returns (logits [V], time_logits [S]) after the last; `step(token, time)`
    feeds one."""

    def __init__(self, model_bytes: bytes | str, model: Transformer, cache_len: int, threads: int = 1,
                 style: int = NO_STYLE):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
        self.vocab = model.vocab
        self.tokens_per_call = int(self.session.get_inputs()[0].shape[1])
        self.capacity = cache_len  # the graph writes nothing: take() writes each call's rows
        specs = step_inputs(model, cache_len, self.tokens_per_call)
        self.names = [n for n, _ in specs]
        self.cache = [np.zeros(s.shape, np.float32) for n, s in specs if n.startswith("cache")]
        self.style = np.asarray([style], np.int32)
        self.reset()
        vocab = self.vocab
        self.advance = jax.jit(lambda track, tok, tv: advance(track, tok, tv, vocab))

    def reset(self) -> None:
        """A new session: an empty cache, a fresh Track."""
        self.cache = [np.zeros_like(c) for c in self.cache]
        self.index = 0
        self.track: Track = init_track(1)

    def feeds(self, tokens: list[int], times: list[float]) -> dict[str, np.ndarray]:
        """The graph's inputs for 1..tokens_per_call tokens from where the Track stands (PAD after them)."""
        n, k = len(tokens), self.tokens_per_call
        if not 1 <= n <= k or len(times) != n:
            raise ValueError(f"{n} tokens ({len(times)} times): a call takes 1 to {k}, a time each")
        if self.index + n > self.capacity:
            raise ValueError(f"the cache is full: {self.index} + {n} tokens over its capacity {self.capacity}")
        ids, ts = np.full((1, k), PAD, np.int32), np.zeros((1, k), np.float32)
        ids[0, :n], ts[0, :n] = tokens, times
        start = [np.asarray(x, d) for x, d in zip(self.track.position_start, CONTEXT_DTYPES)]
        values = [ids, ts, np.asarray(self.index, np.int32), *start, self.style, *self.cache]
        return dict(zip(self.names, values))

    def take(self, out: list[np.ndarray], tokens: list[int], times: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """The graph's outputs for `tokens` -> (logits [n, V], time logits [n, S]) after each;
        the cache (its n new rows written at the index), the index and the Track move on."""
        n = len(tokens)
        for cache, rows in zip(self.cache, out[2:]):
            cache[:, :, self.index:self.index + n] = rows[:, :, :n]
        self.index += n
        for token, t in zip(tokens, times):
            self.track = self.advance(self.track, jnp.asarray([token], jnp.int32), jnp.asarray([t], jnp.float32))
        return out[0][0, : len(tokens)], out[1][0, : len(tokens)]

    def run(self, tokens: list[int], times: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """One call on 1..tokens_per_call tokens -> (logits [n, V], time logits [n, S]) after each."""
        return self.take(self.session.run(None, self.feeds(tokens, times)), tokens, times)

    def feed(self, tokens: list[int], times: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """-> (logits [V], time logits [S]) after the last of `tokens`."""
        logits, time_logits = self.run(tokens, times)
        return logits[-1], time_logits[-1]

    def step(self, token: int, t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        return self.feed([token], [t])


def step_latency(model_bytes: bytes, model: Transformer, cache_len: int, steps: int, threads: int = 1,
                 warmup: int = 20) -> dict[str, float]:
    """onnxruntime's time per call of one token (session.run alone, CPU,
    `threads` threads) over `steps` steps of check_tokens, p50/p99 in ms; a
    session whose cache is full starts afresh."""
    onnx_step = OnnxStep(model_bytes, model, cache_len, threads)
    ids, times = check_tokens(model.vocab, steps + warmup)
    durations = []
    for i, (tok, t) in enumerate(zip(ids.tolist(), times.tolist())):
        if onnx_step.index == onnx_step.capacity:
            onnx_step.reset()
        feeds = onnx_step.feeds([tok], [t])
        t0 = time.perf_counter()
        out = onnx_step.session.run(None, feeds)
        if i >= warmup:
            durations.append(time.perf_counter() - t0)
        onnx_step.take(out, [tok], [t])
    ms = np.asarray(durations) * 1e3
    return {"steps": steps, "threads": threads, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def check_tokens(vocab: Vocab, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A short seeded stream of presses (TIME, CONTROL, VELOCITY, NOTE_ONs, NOTE_OFFs): the export's self-check."""
    rng = np.random.default_rng(0)
    ids, times, sounding = [], [], []
    while len(ids) < n:
        ids.append(TIME)
        times.append(float(rng.choice([0.125, 0.25, 0.5])))
        ids.append(int(ctl.control_id(rng.integers(0, 10), rng.integers(0, 6), rng.integers(0, 4), vocab)))
        for p in sounding:
            ids.append(vocab.note_off + p)
        ids.append(vocab.velocity + int(rng.integers(8, 28)))
        sounding = sorted(int(p) for p in rng.choice(np.arange(48, 80), size=rng.integers(1, 4), replace=False))
        ids.extend(vocab.note_on + p for p in sounding)
        times.extend([0.0] * (len(ids) - len(times)))
    return np.asarray(ids[:n], np.int32), np.asarray(times[:n], np.float32)


def jax_step(model: Transformer, params: Any) -> Callable:
    """Transformer.decode of one token from a Track's values, jitted: (params
    closed over) (token, time, cache, index, start, style) -> (logits, time_logits, cache)."""
    model = float32_model(model)
    return jax.jit(lambda tok, t, cache, index, start, style: model.apply(
        {"params": params}, tok, t, cache, index, start, style if model.num_styles else None, method=model.decode))


def compare_with_jax(model: Transformer, params: Any, model_bytes: bytes, cache_len: int, ids: np.ndarray,
                     times: np.ndarray, style: int = NO_STYLE) -> dict[str, Any]:
    """Feeds the same tokens to Transformer.decode one at a time from the
    Track's values, and to the ONNX graph in calls of 1, 2, ... tokens_per_call
    tokens in turn: the largest logit difference over every token, and at how
    many tokens the argmax differs."""
    onnx_step = OnnxStep(model_bytes, model, cache_len, style=style)
    if len(ids) > onnx_step.capacity:
        raise ValueError(f"{len(ids)} steps do not fit a cache of {cache_len} ({onnx_step.capacity} tokens)")
    decode = jax_step(model, params)
    cache = init_cache(model.num_layers, 1, cache_len, model.num_heads, model.d_model // model.num_heads)
    style_B = jnp.asarray([style], jnp.int32)
    wants, want_times, track = [], [], init_track(1)
    for i, (tok, t) in enumerate(zip(ids.tolist(), times.tolist())):
        start = jax.tree.map(jnp.asarray, track.position_start)
        want, want_time, cache = decode(jnp.asarray([[tok]], jnp.int32), jnp.asarray([[t]], jnp.float32),
                                        cache, jnp.int32(i), start, style_B)
        wants.append(np.asarray(want)[0, 0])
        want_times.append(np.asarray(want_time)[0, 0])
        track = onnx_step.advance(track, jnp.asarray([tok], jnp.int32), jnp.asarray([t], jnp.float32))
    gots, got_times, i, n = [], [], 0, 0
    while i < len(ids):
        n = n % onnx_step.tokens_per_call + 1
        tokens, ts = ids[i: i + n].tolist(), times[i: i + n].tolist()
        got, got_time = onnx_step.run(tokens, ts)
        gots.extend(got)
        got_times.extend(got_time)
        i += len(tokens)
    got, want = np.stack(gots), np.stack(wants)
    return {"steps": len(ids), "tokens_per_call": onnx_step.tokens_per_call,
            "max_abs_logit_diff": float(np.abs(got - want).max()),
            "max_abs_time_logit_diff": float(np.abs(np.stack(got_times) - np.stack(want_times)).max()),
            "argmax_differs": int((got.argmax(-1) != want.argmax(-1)).sum())}


def manifest_for(model: Transformer, model_cfg: dict, model_bytes: bytes, cache_len: int, step: int | None,
                 check: dict | None = None) -> dict[str, Any]:
    """What the page needs beside the graph: the graph's inputs and outputs
    and cache shape, the vocabulary's layout, the time codec's supports, the
    control tables, the tables of the page's own rules (rules_for), the run's model
    config and step."""
    import jax2onnx
    import onnx

    vocab, codec = model.vocab, model.codec
    proto = onnx.load_model_from_string(model_bytes)

    def io(values):
        return [{"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                 "shape": [d.dim_value for d in v.type.tensor_type.shape.dim]} for v in values]

    head_dim = model.d_model // model.num_heads
    tokens_per_call = proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_file": MODEL_FILE,
        "model_bytes": len(model_bytes),
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "run_step": step,
        "exporter": {"jax2onnx": _version("jax2onnx", jax2onnx), "onnx": onnx.__version__, "jax": jax.__version__,
                     "onnxruntime": _version("onnxruntime", None), "opset": OPSET},
        "compute_dtype": "float32",
        "model_config": model_cfg,
        "inputs": io(proto.graph.input),
        "outputs": io(proto.graph.output),
        "context_inputs": list(CONTEXT_INPUTS),
        "tokens_per_call": tokens_per_call,
        "cache": {"layers": model.num_layers, "shape": [1, model.num_heads, cache_len, head_dim],
                  "dtype": "float32", "length": cache_len, "capacity": cache_len,
                  "inputs": [f"cache_{kv}_{i}" for i in range(model.num_layers) for kv in ("k", "v")],
                  "outputs": [f"new_{kv}_{i}" for i in range(model.num_layers) for kv in ("k", "v")]},
        "vocab": {
            "version": vocab.version,
            "size": vocab.size,
            "specials": {"PAD": PAD, "BOS": BOS, "EOS": EOS, "SEP": SEP, "TIME": TIME},
            "blocks": {name: {"start": vocab.block_start(i), "size": size} for i, (name, size) in enumerate(zip(
                ("specials", "note_on", "note_off", "velocity", "control", "time_shift"), vocab.block_sizes()))},
            "num_velocity_bins": vocab.num_velocity_bins,
            "velocity_of_bin": vocab.velocity_of_bin(np.arange(vocab.num_velocity_bins)).tolist(),
            "time_shifts": vocab.time_shifts,
        },
        "time_codec": {"num_supports": codec.num_supports, "min_s": codec.min_s, "max_s": codec.max_s,
                       "supports_s": codec.supports.tolist()},
        "controls": {
            "id": "control_start + (interval * (chord_values) + chord) * velocity_values + velocity",
            "num_controls": NUM_CONTROLS,
            "interval": {"names": list(ctl.INTERVAL_NAMES), "meaning": list(ctl.INTERVAL_MEANING),
                         "bounds": [list(presses.interval_bounds(c)) for c in range(len(ctl.INTERVAL_NAMES))],
                         "any": presses.ANY_INTERVAL, "values": presses.ANY_INTERVAL + 1},
            "chord": {"names": list(ctl.CHORD_NAMES), "any": presses.ANY_CHORD, "values": presses.ANY_CHORD + 1},
            "velocity": {"names": list(ctl.VELOCITY_NAMES), "ranges": [list(r) for r in presses.VELOCITY_BUCKET_RANGE],
                         "any": presses.ANY_VELOCITY, "values": presses.ANY_VELOCITY + 1},
            "press_window_s": presses.PRESS_WINDOW_S,
        },
        "styles": {"names": list(model_styles(model.num_styles)), "none": NO_STYLE},
        "age_edges_s": list(age_edges(model.age_edges_scale)),
        "rules": rules_for(model),
        "play": play_limits(),
        "check": check,
    }


def rules_for(model: Transformer) -> dict[str, Any]:
    """The tables the page's own rules read (static/engine/: the Track, the
    masks, sampling, time decoding), taken from the library's: each id's
    token family, the VELOCITY bins inside each velocity bucket (the strict
    mask's; ANY last), the time supports' logs as the sampler uses them
    (float32), and the sampler's constants."""
    vocab, codec = model.vocab, model.codec
    return {
        "family_names": [f.name for f in Family],
        "family_of_id": vocab.family(np.arange(vocab.size)).tolist(),
        "velocity_bucket_bins": bucket_bins(vocab).astype(int).tolist(),
        "log_supports": np.asarray(codec.log_supports(jnp), np.float32).tolist(),
        "masked_logit": MASKED,
        "min_temperature": 1e-6,
        "num_pitches": NUM_PITCHES,
        "since_press_start_s": float(np.asarray(init_track(1).since_press)[0]),
    }


def play_limits() -> dict[str, int]:
    """The instrument's limits the page's local engine (static/engine/session.js)
    keeps as the server does, from the library's own constants: keys one press
    may name, notes it plays, the most tokens one press may add to a cache
    (the refill ahead keeps room for two), and the piano's range."""
    from yoshimidi_jax.play.batch import JOB_TOKENS
    from yoshimidi_jax.play.press import MAX_NOTES, PlaySettings

    settings = PlaySettings()
    return {"max_keys": presses.MAX_KEYS, "max_notes": MAX_NOTES, "job_tokens": JOB_TOKENS,
            "pitch_lo": settings.pitch_lo, "pitch_hi": settings.pitch_hi}


def _version(name: str, module: Any) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return getattr(module, "__version__", "unknown")


def write_site(out: str, files: dict[str, bytes]) -> None:
    """Writes `files` (name -> bytes) as the folder `out`, atomically: into a
    temporary folder beside it, then renamed into place (a previous export
    there is swapped out by renames and removed). `out` that holds anything
    but a previous export is refused, untouched."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ExportError(f"--out {out} is a file, not a folder")
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, MANIFEST_FILE)):
        raise ExportError(f"--out {out} holds other files (no {MANIFEST_FILE} of an export): give an empty or "
                          "new folder, or a previous export's")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.export-", dir=parent)
    old = None
    try:
        for name, data in files.items():
            if os.path.dirname(name):  # the page's files: static/...
                os.makedirs(os.path.join(tmp, os.path.dirname(name)), exist_ok=True)
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o755)
        if os.path.isdir(out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=parent)
            os.rename(out, os.path.join(old, "site"))
        os.rename(tmp, out)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and not os.path.exists(out):  # put the previous export back
                os.rename(os.path.join(old, "site"), out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def export_run(workdir: str, out: str, cache_len: int | None = None, max_weight_bytes: int = MAX_WEIGHT_BYTES,
               check_steps: int = 64, log: Callable[[str], None] = print, page: bool = False,
               tokens_per_call: int = TOKENS_PER_CALL) -> dict[str, Any]:
    """A trained run -> `out`/{model.onnx, manifest.json}; returns the manifest.
    page: also the static site that plays it with no server (site.py: the
    page, engine.json, the service worker). Raises ExportError, with nothing
    written, for a run the page cannot play."""
    from yoshimidi_jax import config as config_lib
    from yoshimidi_jax.model import make_model
    from yoshimidi_jax.restore import latest_step, restore
    from yoshimidi_jax.storage import is_remote

    if not is_remote(workdir):
        if not os.path.isdir(workdir):
            raise ExportError(f"no run at {workdir}: the folder does not exist")
        if not os.path.exists(os.path.join(workdir, "config.json")):
            raise ExportError(f"no run at {workdir}: it has no config.json")
        cfg = config_lib.load_config(os.path.join(workdir, "config.json"))
        model = make_model(cfg.model)
        cache_len = int(cache_len or model.max_len)
        check_exportable(model, cache_len, max_weight_bytes, tokens_per_call)  # before reading any weights
        if latest_step(workdir) is None:
            raise ExportError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}: train the run first "
                              "(an export of random weights would play noise)")
    restored = restore(workdir)
    if restored.step is None:
        raise ExportError(f"no checkpoint for {workdir}: {restored.message}")
    model = restored.model
    cache_len = int(cache_len or model.max_len)
    check_exportable(model, cache_len, max_weight_bytes, tokens_per_call)
    t0 = time.perf_counter()
    model_bytes = export_step(model, restored.params, cache_len, tokens_per_call)
    log(f"exported the decode step ({len(model_bytes) / 1e6:.2f} MB) in {time.perf_counter() - t0:.1f} s")
    check = None
    if check_steps:
        ids, times = check_tokens(model.vocab, check_steps)
        check = compare_with_jax(model, restored.params, model_bytes, cache_len, ids, times)
        if check["max_abs_logit_diff"] > 1e-4 or check["argmax_differs"]:
            raise ExportError(f"the exported step does not match the JAX step: {check}")
        log(f"onnxruntime matches JAX over {check_steps} steps (max |logit diff| {check['max_abs_logit_diff']:.2e})")
    manifest = manifest_for(model, restored.config.model.to_dict(), model_bytes, cache_len, restored.step, check)
    files = {MODEL_FILE: model_bytes, MANIFEST_FILE: (json.dumps(manifest, indent=1) + "\n").encode()}
    if page:
        from yoshimidi_jax.export.site import page_files

        files.update(page_files(files))
    write_site(out, files)
    return manifest
