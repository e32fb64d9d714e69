"""What one call of the exported decode graph costs in the page, by how many
tokens the graph takes a call: onnxruntime-web (WASM, one thread) in headless
Chromium, `session.run` alone. Prints one JSON line.

    python -m benchmarks.page_call_cost [--workdir=runs/tiny] [--tokens=1,2,4] [--calls=400]

Exports the run's decode step once per count in --tokens (export.step.export_step,
cache 256), serves them with the vendored onnxruntime-web (http.server, a
thread of this process), and times --calls calls of each after 30 of warm-up,
the graphs in the order 4 1 2 1 4 ... (each count timed twice, interleaved,
the median of its two p50s quoted). The baseline is the one-token graph: the
figure is `ratio_p50_K` = a K-token call's p50 over a one-token call's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile

import numpy as np

from benchmarks.page_latency import find_chromium, start_static
from benchmarks.serve_latency import REPO

CALLS_JS = """async ([counts, order, shapes, calls]) => {
  const ort = await import("/static/vendor/onnxruntime-web/ort.wasm.min.mjs");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  const sessions = {}, out = [];
  for (const k of counts) {
    const data = new Uint8Array(await (await fetch(`/step_${k}.onnx`)).arrayBuffer());
    sessions[k] = await ort.InferenceSession.create(data, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  }
  for (const k of order) {
    const feeds = {};
    for (const [name, shape, dtype] of shapes[k]) {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = dtype === "int32" ? new Int32Array(size) : dtype === "bool" ? new Uint8Array(size) : new Float32Array(size);
      feeds[name] = new ort.Tensor(dtype === "float32" ? "float32" : dtype, data, shape);
    }
    feeds.index = new ort.Tensor("int32", Int32Array.of(10), []);
    const ms = [];
    for (let i = 0; i < calls + 30; i++) {
      const t0 = performance.now();
      await sessions[k].run(feeds);
      if (i >= 30) ms.push(performance.now() - t0);
    }
    out.push([k, ms]);
  }
  return out;
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="runs/tiny")
    parser.add_argument("--tokens", default="1,2,4", help="tokens a call of each graph timed (1 is the baseline)")
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    counts = sorted({1, *(int(x) for x in args.tokens.split(","))})
    from playwright.sync_api import sync_playwright

    from yoshimidi_jax.export.step import export_step, step_inputs
    from yoshimidi_jax.restore import restore

    restored = restore(args.workdir)
    root = tempfile.mkdtemp(prefix="page_call_cost.")
    try:
        vendor = os.path.join(REPO, "yoshimidi_jax", "app", "static", "vendor", "onnxruntime-web")
        shutil.copytree(vendor, os.path.join(root, "static", "vendor", "onnxruntime-web"))
        open(os.path.join(root, "index.html"), "w").write("<!doctype html><title>page_call_cost</title>\n")
        shapes = {}
        for k in counts:
            with open(os.path.join(root, f"step_{k}.onnx"), "wb") as f:
                f.write(export_step(restored.model, restored.params, 256, tokens_per_call=k))
            shapes[k] = [(n, list(s.shape), str(s.dtype)) for n, s in step_inputs(restored.model, 256, k)]
        order = [max(counts), *counts[:-1], *counts[::-1]]  # the first timed graph warms the runtime up
        httpd, url = start_static(root, check_site=False)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url + "/index.html")
            runs = page.evaluate(CALLS_JS, [counts, order, {str(k): v for k, v in shapes.items()}, args.calls])
            browser.close()
        httpd.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    p50 = {k: float(np.median([np.percentile(ms, 50) for kk, ms in runs if kk == k])) for k in counts}
    p99 = {k: float(np.median([np.percentile(ms, 99) for kk, ms in runs if kk == k])) for k in counts}
    out = {"benchmark": "page_call_cost", "workdir": args.workdir, "run_step": restored.step, "calls": args.calls,
           "threads": 1, **{f"p50_ms_{k}": round(p50[k], 3) for k in counts},
           **{f"p99_ms_{k}": round(p99[k], 3) for k in counts},
           **{f"ratio_p50_{k}": round(p50[k] / p50[1], 3) for k in counts if k != 1}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
