"""The static site of an export: the instrument's page (yoshimidi_jax/app/static/)
beside the model, playing through its local engine (static/engine/session.js)
with no server, and a service worker that keeps every file of the site for
offline play.

    site/index.html       the page, its paths made relative (any folder of any static host)
    site/static/...       the page's scripts, styles, vendored onnxruntime-web and soundfont
    site/engine.json      {"engine": "local", ...}: the page plays the model in itself
    site/sw.js            the service worker: caches every file below on first load
    site/model.onnx, site/manifest.json   the model (step.py)

`page_files` returns these (but the model's) as name -> bytes, for write_site.
"""

from __future__ import annotations

import hashlib
import json
import os

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", "static")
ENGINE_FILE = "engine.json"
SERVICE_WORKER_FILE = "sw.js"
INDEX_FILE = "index.html"
# files of static/ the page never loads
SKIP = {os.path.join("vendor", "README.md"), os.path.join("vendor", "trim_soundfont.mjs")}

SERVICE_WORKER = """// The site's service worker (written by python -m experiments.export): on
// first load it caches every file of the site, then answers from that cache
// (the network only for what it lacks), so the page plays offline.
const VERSION = %(version)s;
const FILES = %(files)s;
const CACHE = "yoshimidi-site-" + VERSION;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n.startsWith("yoshimidi-site-") && n !== CACHE)
      .map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET" || new URL(req.url).origin !== self.location.origin) return;
  event.respondWith(caches.open(CACHE).then(async (cache) => {
    const hit = await cache.match(req, { ignoreSearch: true });
    if (hit) return hit;
    return fetch(req);
  }));
});
"""


def page_files(model_files: dict[str, bytes], static_dir: str = STATIC_DIR) -> dict[str, bytes]:
    """The site's page (static_dir's files under static/, index.html at the
    top with its /static/ paths made relative), engine.json and sw.js, whose
    cache lists every file of the site, model_files' too."""
    files: dict[str, bytes] = {}
    for root, dirs, names in os.walk(static_dir):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, static_dir)
            if rel in SKIP or name.startswith("."):
                continue
            with open(path, "rb") as f:
                data = f.read()
            if rel == INDEX_FILE:
                data = data.replace(b'"/static/', b'"static/')
                files[INDEX_FILE] = data
            else:
                files["static/" + rel.replace(os.sep, "/")] = data
    if INDEX_FILE not in files:
        raise FileNotFoundError(f"no {INDEX_FILE} in {static_dir}")
    files[ENGINE_FILE] = (json.dumps({"engine": "local", "model": "", "service_worker": SERVICE_WORKER_FILE},
                                     indent=1) + "\n").encode()
    every = {**files, **model_files}
    digest = hashlib.sha256()
    for name in sorted(every):
        digest.update(name.encode() + b"\0" + hashlib.sha256(every[name]).digest())
    urls = ["./"] + sorted(every)
    files[SERVICE_WORKER_FILE] = (SERVICE_WORKER % {"version": json.dumps(digest.hexdigest()[:16]),
                                                    "files": json.dumps(urls, indent=1)}).encode()
    return files
