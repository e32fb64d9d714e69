"""The page's local engine (yoshimidi_jax/app/static/engine/) against the
library, in a real headless Chromium (Playwright) with onnxruntime-web (WASM,
one thread) and only a static file server (http.server, started here):

- a session recorded on the Python side (a player's walk: forced presses
  TIME CONTROL NOTE_OFF... VELOCITY, each press's NOTE_ONs sampled under the
  player's loose or strict mask, and stretches the model plays freely under
  the grammar, TIME values sampled too), made by the library's own code
  (Transformer.decode, tracker.advance, constraints.allowed_tokens,
  sampler.sample_token and time_value, their categorical draw an inverse
  CDF of a recorded uniform), replayed in the page: the page's Track equals
  the library's after every token, its masks equal allowed_tokens' under five
  constraint sets, its logits (model.js) match JAX's within 1e-4, and with
  the same uniforms the page (sample.js) picks every sampled token and time;
- sample.js with given draws picks what a numpy reference of sampler.py
  picks, and that reference picks what sampler.py itself does;
- the page's time per decode step (printed; YOSHIMIDI_PAGE_BENCH_SITE=DIR
  also times another export, e.g. runs/age's).

    .venv/bin/python -m pytest tests/export/test_page_engine.py -q -s
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.app.test_browser import browser  # noqa: F401  (the module's Chromium; skips without playwright)
from tests.conftest import REPO
from tests.model.helpers import model_and_params, save_run, small_config
from yoshimidi_jax.export import export_run
from yoshimidi_jax.export.step import check_tokens, float32_model, jax_step
from yoshimidi_jax.model import init_cache
from yoshimidi_jax.model.position_context import age_edges, position_context
from yoshimidi_jax.sample import sampler as sampler_lib
from yoshimidi_jax.sample.constraints import Constraints, allowed_tokens
from yoshimidi_jax.sample.tracker import advance, init_track
from yoshimidi_jax.tokens import BOS, TIME
from yoshimidi_jax.tokens import controls as ctl
from yoshimidi_jax.tokens.vocab import Family

STATIC = os.path.join(REPO, "yoshimidi_jax", "app", "static")
CACHE = 360  # the exported step's cache: the whole session fits
SESSION_STEPS = 300  # tokens of the recorded session
STYLE = 2
MASKED = sampler_lib.MASKED
# the constraint sets whose masks are compared after every token
CONSTRAINT_SETS = {
    "default": Constraints(),
    "free": Constraints(allow_eos=False),
    "loose": Constraints(21, 108, allow_controls=False, allow_eos=False),  # the player's (play/press.py)
    "strict": Constraints(21, 108, allow_controls=False, allow_eos=False, strict=True),
    "narrow_strict": Constraints(55, 70, strict=True),  # room above a chord, and empty strict rows
}
PLAYER = dict(temperature=1.0, top_p=0.95, top_k=0, per_family=False)  # play/press.py samples its notes so
FREE = dict(temperature=0.9, top_p=0.9, top_k=0, per_family=True)  # the sampler's default nucleus


# ---------------------------------------------------------------- the numpy reference of sampler.py

def weights(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.exp(x - x.max())


def inverse_cdf(w: np.ndarray, u: float) -> int:
    """The first id whose cumulative mass exceeds u times the total (ids of mass 0 never)."""
    w = np.asarray(w, np.float64)
    above = np.flatnonzero((np.cumsum(w) > u * w.sum()) & (w > 0))
    return int(above[0]) if above.size else int(np.flatnonzero(w > 0)[-1])


def ref_filter(logits, mask, temperature, top_p, top_k) -> np.ndarray:
    """sampler.filter_logits, float64."""
    x = np.where(mask, np.asarray(logits, np.float64) / max(temperature, 1e-6), MASKED)
    if top_k > 0:
        x = np.where(x < np.sort(x)[::-1][min(max(top_k - 1, 0), x.size - 1)], MASKED, x)
    desc = np.sort(x)[::-1]
    p = weights(desc) / weights(desc).sum()
    keep = ((np.cumsum(p) - p) < top_p) & (desc > MASKED)
    keep[0] = True
    return np.where((x >= desc[keep].min()) & mask, x, MASKED)


def logsumexp(x) -> float:
    x = np.asarray(x, np.float64)
    return float(x.max() + np.log(np.exp(x - x.max()).sum()))


def ref_filter_per_family(logits, mask, temperature, top_p, top_k, families) -> np.ndarray:
    """sampler.filter_logits_per_family, float64."""
    x = np.where(mask, np.asarray(logits, np.float64) / max(temperature, 1e-6), MASKED)
    out = np.full(x.shape, MASKED)
    for f in range(len(Family)):
        in_f = mask & (families == f)
        if not in_f.any():
            continue
        kept = ref_filter(logits, in_f, temperature, top_p, top_k)
        scaled = kept - logsumexp(kept) + logsumexp(np.where(in_f, x, MASKED)) - logsumexp(x)
        out = np.where(kept > MASKED, scaled, out)
    return out


def ref_sample(logits, mask, u, temperature, top_p, top_k, per_family, families) -> int:
    """sampler.sample_token for one row, the draw the inverse CDF of u."""
    mask = np.asarray(mask, bool)
    if temperature <= 0:
        return int(np.argmax(np.where(mask, logits, MASKED)))
    f = (ref_filter_per_family(logits, mask, temperature, top_p, top_k, families) if per_family
         else ref_filter(logits, mask, temperature, top_p, top_k))
    return inverse_cdf(weights(f), u)


def ref_time(time_logits, temperature, u, log_supports) -> float:
    """sampler.time_value 'refined' for one row, the support's draw the inverse CDF of u."""
    s = inverse_cdf(weights(np.asarray(time_logits, np.float64) / max(temperature, 1e-6)), u)
    p = weights(time_logits)
    near = np.abs(np.arange(p.size) - s) <= 1
    return float(np.exp((p * near) @ np.asarray(log_supports, np.float64) / (p * near).sum()))


class Draw:
    """sampler.py's jax.random.categorical replaced by the inverse CDF of `u` (one row)."""

    def __init__(self):
        self.u = 0.0

    def categorical(self, key, logits, axis=-1, **_):
        rows = np.asarray(logits, np.float64).reshape(-1, np.shape(logits)[-1])
        return jnp.asarray([inverse_cdf(weights(r), self.u) for r in rows], jnp.int32)


def library_sample(draw: Draw, logits, mask, u, temperature, top_p, top_k, per_family, vocab) -> int:
    """sampler.sample_token itself, its categorical draw the inverse CDF of u."""
    draw.u = u
    with mock.patch.object(jax.random, "categorical", draw.categorical):
        return int(sampler_lib.sample_token(jax.random.key(0), jnp.asarray(logits)[None], jnp.asarray(mask)[None],
                                            jnp.float32(temperature), jnp.float32(top_p), jnp.int32(top_k),
                                            vocab if per_family else None)[0])


def library_time(draw: Draw, model, time_logits, temperature, u) -> float:
    """sampler.time_value 'refined' itself, its categorical draw the inverse CDF of u."""
    draw.u = u
    with mock.patch.object(jax.random, "categorical", draw.categorical):
        return float(sampler_lib.time_value(jax.random.key(0), jnp.asarray(time_logits)[None], model, "refined",
                                            jnp.float32(temperature))[0])


# ---------------------------------------------------------------- the model, the session, the server

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A seeded small model (weights spread out, the control and note-age
    biases given values, as tests/export/test_export.py does) saved as a
    run and exported with a cache that holds the whole session."""
    cfg = small_config(max_len=CACHE)
    model, params = model_and_params(cfg, seed=11)
    rng = np.random.default_rng(11)
    params = jax.tree.map(lambda x: np.asarray(x + rng.normal(0, 0.05, x.shape), np.float32), params)
    for name in ("interval_bias", "velocity_bias", "chord_bias", "note_off_age_bias"):
        params[name] = rng.normal(0, 0.3, params[name].shape).astype(np.float32)
    root = tmp_path_factory.mktemp("page_engine")
    workdir = str(root / "run")
    save_run(workdir, cfg, params, step=5)
    manifest = export_run(workdir, str(root / "site"), cache_len=CACHE, check_steps=16, log=lambda _: None)
    return str(root / "site"), model, jax.tree.map(jnp.asarray, params), manifest


def track_json(track) -> dict:
    out = {}
    for name, value in track._asdict().items():
        v = np.asarray(value)[0]
        out[name] = v.tolist() if v.ndim else v.item()
    return out


def bits(mask: np.ndarray) -> str:
    return "".join("1" if x else "0" for x in np.asarray(mask, bool))


def constraints_json(c: Constraints) -> dict:
    return {"pitchLo": c.pitch_lo, "pitchHi": c.pitch_hi, "allowControls": c.allow_controls,
            "allowEos": c.allow_eos, "strict": c.strict}


def record_session(model, params, manifest, seed: int = 0) -> dict:
    """A player's walk through the library's own decoding, one token at a
    time: every token with its kind, the draws of the sampled ones, the masks
    before it, the Track after it and the logits it leads to."""
    vocab, codec = model.vocab, model.codec
    rng = np.random.default_rng(seed)
    draw = Draw()
    families = np.asarray(manifest["rules"]["family_of_id"])
    decode = jax_step(model, params)
    step_track = jax.jit(lambda t, tok, tv: advance(t, tok, tv, vocab))
    masks = {n: jax.jit(functools.partial(allowed_tokens, constraints=c, vocab=vocab))
             for n, c in CONSTRAINT_SETS.items()}
    is_on = np.asarray(vocab.is_note_on(np.arange(vocab.size)))
    cache = init_cache(model.num_layers, 1, CACHE, model.num_heads, model.d_model // model.num_heads)
    track = init_track(1)
    steps: list[dict] = []
    logits = time_logits = None
    counts = {"reference_checked": 0, "times_checked": 0}

    def feed(tok: int, t: float, entry: dict) -> None:
        nonlocal cache, track, logits, time_logits
        before = {n: np.asarray(fn(track))[0] for n, fn in masks.items()}
        lg, tl, cache = decode(jnp.asarray([[tok]], jnp.int32), jnp.asarray([[t]], jnp.float32), cache,
                               jnp.int32(len(steps)), track.position_start, jnp.asarray([STYLE], jnp.int32))
        track = step_track(track, jnp.asarray([tok], jnp.int32), jnp.asarray([t], jnp.float32))
        logits, time_logits = np.asarray(lg)[0, 0], np.asarray(tl)[0, 0]
        steps.append({**entry, "token": tok, "time": float(np.float32(t)),
                      "masks": {n: bits(m) for n, m in before.items()}, "track": track_json(track),
                      "logits": logits.tolist(), "time_logits": time_logits.tolist()})

    def rule_mask(sets, on_only, highest):
        for name in sets:
            m = np.asarray(masks[name](track))[0]
            if on_only:
                m = m & is_on & (np.arange(vocab.size) <= vocab.note_on + highest)
            if m.any():
                return m
        return None

    def sample(sets, on_only, highest, knobs) -> bool:
        mask = rule_mask(sets, on_only, highest)
        if mask is None:
            return False
        u, u_time = float(rng.random()), float(rng.random())
        args = (knobs["temperature"], knobs["top_p"], knobs["top_k"], knobs["per_family"])
        tok = library_sample(draw, logits, mask, u, *args, vocab)
        assert tok == ref_sample(logits, mask, u, *args, families), (len(steps), u)
        counts["reference_checked"] += 1
        t = 0.0
        if tok == TIME:
            t = library_time(draw, model, time_logits, knobs["temperature"], u_time)
            assert abs(ref_time(time_logits, knobs["temperature"], u_time, manifest["rules"]["log_supports"]) - t) \
                <= 1e-5 * t, (len(steps), u_time)
            counts["times_checked"] += 1
        feed(tok, t, {"kind": "sampled", "sets": list(sets), "on_only": on_only, "highest": highest,
                      "knobs": knobs, "u": u, "u_time": u_time})
        return True

    feed(BOS, 0.0, {"kind": "forced"})
    vel_bin, press = -1, 0
    while len(steps) < SESSION_STEPS:
        press += 1
        if press % 4 == 0:  # the model plays on its own for a while
            for _ in range(int(rng.integers(4, 9))):
                sample(["free"], False, 127, FREE)
            continue
        dt = float(np.clip(rng.choice([0.02, 0.05, 0.125, 0.25, 0.5, 1.5, 9.0]), codec.min_s, codec.max_s))
        attrs = (int(rng.integers(0, 10)), int(rng.integers(0, 6)), int(rng.integers(0, 4)))
        ending = sorted(p for p in np.flatnonzero(np.asarray(track.sounding)[0]) if rng.random() < 0.6)
        velocity = int(rng.integers(1, 128))
        forced = [(TIME, dt), (int(ctl.control_id(*attrs, vocab)), 0.0)]
        forced += [(vocab.note_off + int(p), 0.0) for p in ending]
        if int(vocab.velocity_bin(velocity)) != vel_bin:
            vel_bin = int(vocab.velocity_bin(velocity))
            forced.append((vocab.velocity + vel_bin, 0.0))
        for tok, t in forced:
            feed(tok, t, {"kind": "forced"})
        strict = rng.random() < 0.6
        keys = int(rng.integers(1, 5))
        for i in range(keys):  # low to high, leaving room above for the keys to come (play/press.py)
            sets = ["strict", "loose"] if strict else ["loose"]
            if not sample(sets, True, 108 - (keys - 1 - i), PLAYER):
                break
    kinds = [s["kind"] for s in steps]
    assert kinds.count("sampled") > 100 and counts["times_checked"] > 3, (kinds.count("sampled"), counts)
    return {"steps": steps, "constraints": {n: constraints_json(c) for n, c in CONSTRAINT_SETS.items()},
            "style": STYLE, "counts": counts}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                      ".json": "application/json"}

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """A static file server (http.server, a thread of this process) on a
    folder holding the page's engine and vendored onnxruntime-web, the
    export, and the recorded session."""
    site, model, params, manifest = exported
    root = tmp_path_factory.mktemp("served")
    for sub in ("engine", os.path.join("vendor", "onnxruntime-web")):
        shutil.copytree(os.path.join(STATIC, sub), root / "static" / sub)
    shutil.copytree(site, root / "site")
    session = record_session(model, params, manifest)
    (root / "session.json").write_text(json.dumps(session))
    (root / "index.html").write_text("<!doctype html><meta charset=utf-8><title>engine</title>")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, session
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page(browser, served):  # noqa: F811
    url, _, _ = served
    context = browser.new_context()
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(url + "/index.html")
    yield p, errors
    context.close()


REPLAY = """async () => {
    const { loadModel } = await import("/static/engine/model.js");
    const { allowedTokens, noteOnsOnly, anyAllowed, constraints } = await import("/static/engine/masks.js");
    const { Sampler } = await import("/static/engine/sample.js");
    const session = await (await fetch("/session.json")).json();
    const model = await loadModel("/site/", { threads: 1, style: session.style });
    const vocab = model.vocab, sampler = new Sampler(model.manifest);
    const sets = Object.fromEntries(Object.entries(session.constraints).map(([n, c]) => [n, constraints(c)]));
    const bits = (m) => Array.from(m, (x) => (x ? "1" : "0")).join("");
    const out = { tracks: [], masks: [], logitDiff: [], timeLogitDiff: [], picked: [], pickedTime: [] };
    let logits = null, timeLogits = null;
    for (const s of session.steps) {
        const masks = Object.keys(sets).map((n) => [n, bits(allowedTokens(model.track, sets[n], vocab))]);
        out.masks.push(Object.fromEntries(masks));
        if (s.kind === "sampled") {
            let mask = null;
            for (const n of s.sets) {
                let m = allowedTokens(model.track, sets[n], vocab);
                if (s.on_only) m = noteOnsOnly(m, vocab, s.highest);
                if (anyAllowed(m)) { mask = m; break; }
            }
            const k = s.knobs;
            const tok = sampler.sampleToken(logits, mask, { temperature: k.temperature, topP: k.top_p,
                                                            topK: k.top_k, perFamily: k.per_family }, s.u);
            out.picked.push(tok);
            const isTime = tok === vocab.specials.TIME;
            out.pickedTime.push(isTime ? sampler.timeValue(timeLogits, k.temperature, s.u_time) : 0);
        }
        ({ logits, timeLogits } = await model.step(s.token, s.time));
        let d = 0, dt = 0;
        for (let i = 0; i < logits.length; i++) d = Math.max(d, Math.abs(logits[i] - s.logits[i]));
        for (let i = 0; i < timeLogits.length; i++) dt = Math.max(dt, Math.abs(timeLogits[i] - s.time_logits[i]));
        out.logitDiff.push(d);
        out.timeLogitDiff.push(dt);
        out.tracks.push(model.track.toJSON());
    }
    return out;
}"""


def test_the_page_replays_a_recorded_session_as_the_library_played_it(page, served):
    p, errors = page
    _, _, session = served
    steps = session["steps"]
    got = p.evaluate(REPLAY)
    assert errors == []
    assert len(got["tracks"]) == len(steps) >= SESSION_STEPS
    # the Track after every token, field for field (its seconds exactly, as float32)
    for i, (want, have) in enumerate(zip(steps, got["tracks"])):
        assert have == want["track"], (i, {k: (want["track"][k], have[k]) for k in have if have[k] != want["track"][k]})
    # the masks before every token, under every constraint set
    for i, (want, have) in enumerate(zip(steps, got["masks"])):
        for name in CONSTRAINT_SETS:
            assert have[name] == want["masks"][name], (i, name, [j for j, (a, b) in enumerate(
                zip(have[name], want["masks"][name])) if a != b])
    # the model's logits
    diffs, time_diffs = np.asarray(got["logitDiff"]), np.asarray(got["timeLogitDiff"])
    print(f"\n{len(steps)} steps in the page: max |logit diff| {diffs.max():.2e}, "
          f"max |time logit diff| {time_diffs.max():.2e}; {session['counts']}")
    assert diffs.max() < 1e-4, (diffs.max(), int(diffs.argmax()))
    assert time_diffs.max() < 1e-4, (time_diffs.max(), int(time_diffs.argmax()))
    # the same draws pick the same tokens and times
    sampled = [s for s in steps if s["kind"] == "sampled"]
    assert got["picked"] == [s["token"] for s in sampled]
    for s, t in zip(sampled, got["pickedTime"]):
        assert abs(t - s["time"]) <= 2e-6 * max(s["time"], 1e-3), (s["time"], t)
    # the walk went where the rules bite: strict presses, chords, free TIME values, masks that differ
    strict_used = sum(1 for i, s in enumerate(sampled) if s["sets"][0] == "strict"
                      and "1" in s["masks"]["strict"] and s["masks"]["strict"] != s["masks"]["loose"])
    assert strict_used > 10, strict_used
    assert max(s["track"]["press_len"] for s in steps) >= 3
    assert sum(1 for s in sampled if s["token"] == TIME) > 3


REPLAY_IN_CALLS = """async () => {
    const { loadModel } = await import("/static/engine/model.js");
    const session = await (await fetch("/session.json")).json();
    const model = await loadModel("/site/", { threads: 1, style: session.style });
    const steps = session.steps, k = model.tokensPerCall, out = { logitDiff: [], timeLogitDiff: [], calls: [] };
    for (let i = 0, n = 0; i < steps.length; i += n) {
        n = Math.min(out.calls.length % k + 1, steps.length - i);  // calls of 1, 2, .. k tokens in turn
        const part = steps.slice(i, i + n);
        const { logits, timeLogits } = await model.run(part.map((s) => s.token), part.map((s) => s.time));
        const want = part[n - 1];  // the library's logits after the call's last token
        let d = 0, dt = 0;
        for (let j = 0; j < logits.length; j++) d = Math.max(d, Math.abs(logits[j] - want.logits[j]));
        for (let j = 0; j < timeLogits.length; j++) dt = Math.max(dt, Math.abs(timeLogits[j] - want.time_logits[j]));
        out.logitDiff.push(d);
        out.timeLogitDiff.push(dt);
        out.calls.push(n);
    }
    out.track = model.track.toJSON();
    out.tokensPerCall = k;
    return out;
}"""


def test_the_page_feeds_several_tokens_a_call_as_the_library_steps_them(page, served):
    """model.run: calls of 1..tokens_per_call tokens (PAD after them) give,
    after each call's last token, the logits the library's one-token decode
    gave there, and the same Track at the end."""
    p, errors = page
    _, _, session = served
    steps = session["steps"]
    got = p.evaluate(REPLAY_IN_CALLS)
    assert errors == []
    assert got["tokensPerCall"] == 4 and set(got["calls"]) == {1, 2, 3, 4} and sum(got["calls"]) == len(steps)
    diffs, time_diffs = np.asarray(got["logitDiff"]), np.asarray(got["timeLogitDiff"])
    print(f"\n{len(steps)} tokens in {len(got['calls'])} calls: max |logit diff| {diffs.max():.2e}")
    assert diffs.max() < 1e-4, (diffs.max(), int(diffs.argmax()))
    assert time_diffs.max() < 1e-4, (time_diffs.max(), int(time_diffs.argmax()))
    assert got["track"] == steps[-1]["track"]


CASES_JS = """async (cases) => {
    const { Sampler } = await import("/static/engine/sample.js");
    const manifest = await (await fetch("/site/manifest.json")).json();
    const sampler = new Sampler(manifest);
    return cases.map((c) => [
        sampler.sampleToken(c.logits, c.mask, { temperature: c.temperature, topP: c.top_p, topK: c.top_k,
                                                perFamily: c.per_family }, c.u),
        sampler.timeValue(c.time_logits, c.temperature, c.u_time)]);
}"""


def test_sampling_with_given_draws_picks_as_the_library(page, exported):
    """sample.js, the numpy reference and sampler.py pick the same id (and
    time) from the same logits with the same uniform draw, over temperatures,
    top-p, top-k, greedy, both nucleus scopes and sparse masks."""
    p, errors = page
    _, model, _, manifest = exported
    vocab = model.vocab
    families = np.asarray(manifest["rules"]["family_of_id"])
    rng = np.random.default_rng(7)
    draw = Draw()
    cases = []
    for i in range(160):
        logits = (rng.normal(0, rng.choice([0.5, 2.0, 5.0]), vocab.size)).astype(np.float32)
        mask = rng.random(vocab.size) < rng.choice([0.02, 0.3, 1.0])
        mask[rng.integers(0, vocab.size)] = True
        c = {"logits": logits.tolist(), "mask": mask.astype(int).tolist(), "u": float(rng.random()),
             "u_time": float(rng.random()), "time_logits": rng.normal(0, 2, model.num_time_supports).tolist(),
             "temperature": float(rng.choice([0.0, 0.3, 0.9, 1.0, 1.7])), "top_p": float(rng.choice([0.5, 0.9, 1.0])),
             "top_k": int(rng.choice([0, 0, 5, 40])), "per_family": bool(i % 2)}
        args = (c["temperature"], c["top_p"], c["top_k"], c["per_family"])
        want = library_sample(draw, logits, mask, c["u"], *args, vocab)
        assert ref_sample(logits, mask, c["u"], *args, families) == want, (i, c["u"], args)
        t = max(c["temperature"], 0.0)
        c["want"] = want
        c["want_time"] = library_time(draw, model, np.float32(c["time_logits"]), t, c["u_time"])
        ref_t = ref_time(np.float32(c["time_logits"]), t, c["u_time"], manifest["rules"]["log_supports"])
        assert abs(ref_t - c["want_time"]) <= 1e-5 * c["want_time"], (i, ref_t, c["want_time"])
        cases.append(c)
    got = p.evaluate(CASES_JS, cases)
    assert errors == []
    assert [g[0] for g in got] == [c["want"] for c in cases]
    for c, g in zip(cases, got):
        assert abs(g[1] - c["want_time"]) <= 1e-5 * c["want_time"], (g[1], c["want_time"])


BENCH_JS = """async ([base, ids, times, warmup]) => {
    const { loadModel } = await import("/static/engine/model.js");
    const model = await loadModel(base, { threads: 1 });
    const time = async (k) => {  // ms per call of k tokens over the stream
        const ms = [];
        model.reset();
        for (let i = 0, j = 0; i + k <= ids.length; i += k, j++) {
            if (model.index + k > model.capacity) model.reset();
            const t0 = performance.now();
            await model.run(ids.slice(i, i + k), times.slice(i, i + k));
            if (j >= warmup) ms.push(performance.now() - t0);
        }
        return ms;
    };
    const ms = await time(1), msCall = await time(model.tokensPerCall);
    return { ms, msCall, tokensPerCall: model.tokensPerCall, cacheLength: model.cacheLength,
             modelBytes: model.manifest.model_bytes };
}"""


def bench(page, base: str, vocab, steps: int = 500, warmup: int = 20) -> dict:
    ids, times = check_tokens(vocab, steps + warmup)
    got = page.evaluate(BENCH_JS, [base, ids.tolist(), times.tolist(), warmup])
    ms, ms_call = np.asarray(got["ms"]), np.asarray(got["msCall"])
    k = got["tokensPerCall"]
    return {"steps": len(ms), "threads": 1, "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "mean_ms": round(float(ms.mean()), 3),
            f"calls_of_{k}": len(ms_call), f"p50_ms_{k}_tokens": round(float(np.percentile(ms_call, 50)), 3),
            f"p99_ms_{k}_tokens": round(float(np.percentile(ms_call, 99)), 3),
            "call_ratio_p50": round(float(np.percentile(ms_call, 50) / np.percentile(ms, 50)), 3),
            "cache_len": got["cacheLength"], "model_bytes": got["modelBytes"]}


def test_the_pages_time_per_decode_step(page, served, exported):
    """ms per call of one token and of tokens_per_call tokens (model.run,
    onnxruntime-web, WASM, one thread), p50/p99 over 500 tokens: the test's
    model, and YOSHIMIDI_PAGE_BENCH_SITE's export if set."""
    p, errors = page
    _, root, _ = served
    vocab = exported[1].vocab
    figures = {"test_model": bench(p, "/site/", vocab)}
    other = os.environ.get("YOSHIMIDI_PAGE_BENCH_SITE")
    if other:
        shutil.copytree(other, root / "bench", dirs_exist_ok=True)
        from yoshimidi_jax.tokens import Vocab
        with open(os.path.join(other, "manifest.json")) as f:
            bins = json.load(f)["vocab"]["num_velocity_bins"]
        figures[other] = bench(p, "/bench/", Vocab(num_velocity_bins=bins))
    print("\npage decode step (onnxruntime-web WASM, 1 thread):", json.dumps(figures))
    assert errors == []
    assert all(f["p50_ms"] < 100 and f["p50_ms_4_tokens"] < 100 for f in figures.values()), figures


REFILL_JS = """async (cases) => {
    const { loadModel } = await import("/static/engine/model.js");
    const { windowStart } = await import("/static/engine/session.js");
    const session = await (await fetch("/session.json")).json();
    const model = await loadModel("/site/", { threads: 1, style: session.style });
    const out = [];
    for (const c of cases) {
        const after = { sounding: Uint8Array.from(c.sounding_after, (x) => (x ? 1 : 0)),
                        age: Float32Array.from(c.age_after) };
        const start = windowStart(c.ids, c.times, after, model.vocab);
        const atCut = { sounding: Array.from(start.sounding, (x) => x === 1), age: Array.from(start.age) };
        // session.js room(): the kept tokens stepped into a fresh cache from where the first one stands
        model.reset();
        model.track = start;
        let logits = null;
        for (let i = 0; i < c.ids.length; i++) ({ logits } = await model.step(c.ids[i], c.times[i]));
        let d = 0;
        for (let i = 0; i < logits.length; i++) d = Math.max(d, Math.abs(logits[i] - c.logits[i]));
        out.push({ ...atCut, logitDiff: d });  // (stepping moves the Track on from the cut)
    }
    return out;
}"""


def test_the_pages_cache_refill_starts_where_the_librarys_does(page, served, exported):
    """A full cache in the page (engine/session.js room: windowStart, then the
    kept tokens stepped into a fresh cache) against the library's refill
    (play/player.py _room: sampler.window_start, then prefill) at cuts across
    the recorded session: the same pitches sounding where the kept tokens
    start, the same ages, and the same logits after them as the library's
    step-by-step decode from there; the library's one-call prefill gives the
    same logits too, except where a note's age lies on an age bucket's edge to
    float32 rounding (its window clock sums seconds in another order)."""
    p, errors = page
    _, model, params, _ = exported
    _, _, session = served
    steps = session["steps"]
    vocab, model32 = model.vocab, float32_model(model)
    style = jnp.asarray([STYLE], jnp.int32)
    prefill = jax.jit(lambda ids, times, start: sampler_lib.prefill(
        model32, params, ids, times, init_track(1), jax.random.key(0), ids.shape[1], style, start).logits)
    window_ages = jax.jit(lambda ids, times, start: position_context(ids, times, None, start, vocab))
    decode = jax_step(model, params)
    step_track = jax.jit(lambda t, tok, tv: advance(t, tok, tv, vocab))
    edges = np.asarray(age_edges(model.age_edges_scale), np.float32)
    cases, want = [], []
    for cut in range(40, len(steps), 23):
        for keep in (16, 37):
            kept = steps[cut - keep:cut]
            ids = np.asarray([s["token"] for s in kept], np.int32)[None]
            times = np.asarray([s["time"] for s in kept], np.float32)[None]
            after = steps[cut - 1]["track"]
            track = init_track(1)._replace(sounding=jnp.asarray([after["sounding"]], bool),
                                           age=jnp.asarray([after["age"]], jnp.float32))
            start = sampler_lib.window_start(jnp.asarray(ids), jnp.asarray(times), track, vocab)
            # the library step by step from the window's start, as the page steps it
            t = init_track(1)._replace(sounding=start.sounding, age=start.age)
            cache = init_cache(model.num_layers, 1, keep, model.num_heads, model.d_model // model.num_heads)
            for i in range(keep):
                stepped, _, cache = decode(jnp.asarray(ids[:, i:i + 1]), jnp.asarray(times[:, i:i + 1]), cache,
                                           jnp.int32(i), t.position_start, style)
                t = step_track(t, jnp.asarray(ids[:, i]), jnp.asarray(times[:, i]))
            ctx = window_ages(jnp.asarray(ids), jnp.asarray(times), start)
            ages = np.asarray(ctx.age)[np.asarray(ctx.sounding)]
            on_edge = bool((np.abs(ages[:, None] - edges[None]) < 1e-5).any())
            want.append({"sounding": np.asarray(start.sounding)[0], "age": np.asarray(start.age)[0],
                         "prefill": np.asarray(prefill(jnp.asarray(ids), jnp.asarray(times), start))[0],
                         "on_edge": on_edge})
            cases.append({"ids": ids[0].tolist(), "times": times[0].tolist(), "sounding_after": after["sounding"],
                          "age_after": after["age"], "logits": np.asarray(stepped)[0, 0].tolist()})
    got = p.evaluate(REFILL_JS, cases)
    assert errors == []
    # the cuts fall where the rules bite: notes sounding across the cut, some struck before it with an age
    assert sum(int(w["sounding"].sum()) for w in want) > 20 and sum(int((w["age"] > 0).sum()) for w in want) > 10
    prefill_diffs = []
    for i, (w, have, case) in enumerate(zip(want, got, cases)):
        assert have["sounding"] == w["sounding"].tolist(), (i, np.flatnonzero(np.asarray(have["sounding"]) != w["sounding"]))
        np.testing.assert_allclose(have["age"], w["age"], atol=1e-5, err_msg=f"case {i}")
        assert have["logitDiff"] < 1e-4, (i, have["logitDiff"])
        d = float(np.abs(w["prefill"] - np.asarray(case["logits"])).max())
        prefill_diffs.append(d)
        assert d < 1e-4 or w["on_edge"], (i, d)
    assert sum(d < 1e-4 for d in prefill_diffs) > len(cases) * 0.8, prefill_diffs
    print(f"\n{len(cases)} refills: max |logit diff| page vs library {max(h['logitDiff'] for h in got):.2e}; "
          f"the library's prefill vs its steps: {sum(d >= 1e-4 for d in prefill_diffs)} differ (an age on an edge)")
