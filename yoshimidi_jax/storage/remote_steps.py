"""Checkpoint steps on a remote workdir: each step's files under
``R/checkpoints/<step>/`` and its commit marker beside them (the layout is in
yoshimidi_jax/storage/__init__.py). No threads, no retries: WorkdirMirror
calls these from its worker and decides what to upload, delete or fetch."""

from __future__ import annotations

import json
import logging
import os
import shutil

from yoshimidi_jax.storage.paths import CHECKPOINTS, MARKER_RE, MARKER_SUFFIX, STEP_RE, file_sizes

log = logging.getLogger(__name__)


class RemoteSteps:
    """The committed checkpoint steps under ``root`` (a path on filesystem ``fs``)."""

    def __init__(self, fs, root: str, url: str):
        self.fs, self.root, self.url = fs, root, url

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *[p.strip("/") for p in parts if p]])

    def marker_path(self, step: int) -> str:
        return self.path(CHECKPOINTS, f"{step}{MARKER_SUFFIX}")

    def markers(self) -> dict[int, str]:
        """Committed steps: step -> path of its marker."""
        ckpt = self.path(CHECKPOINTS)
        if not self.fs.exists(ckpt):
            return {}
        out = {}
        for path in self.fs.ls(ckpt, detail=False):
            m = MARKER_RE.match(path.rstrip("/").rsplit("/", 1)[-1])
            if m:
                out[int(m.group(1))] = path
        return out

    def step_dirs(self) -> set[int]:
        """Steps that have a data prefix (committed or not)."""
        ckpt = self.path(CHECKPOINTS)
        if not self.fs.exists(ckpt):
            return set()
        names = (p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(ckpt, detail=False))
        return {int(n) for n in names if STEP_RE.match(n)}

    def read_marker(self, step: int) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(self.marker_path(step)))
        except FileNotFoundError:
            return None

    def upload(self, step: int, local_dir: str) -> None:
        """Upload a finished local step dir, then its marker (skipped when the
        remote marker already lists exactly these files and sizes)."""
        files = file_sizes(local_dir)
        marker = self.read_marker(step)
        if marker is not None and marker.get("files") == files:
            log.debug("step %d already on the remote", step)
            return
        if marker is not None:  # a different step <step> was there: uncommit before overwriting
            self.fs.rm_file(self.marker_path(step))
        for rel in sorted(files):
            self.fs.put_file(os.path.join(local_dir, *rel.split("/")), self.path(CHECKPOINTS, str(step), rel))
        body = json.dumps({"step": step, "files": files}, sort_keys=True).encode()
        self.fs.pipe_file(self.marker_path(step), body)
        log.info("uploaded checkpoint step %d (%d files) to %s", step, len(files), self.url)

    def delete(self, step: int) -> None:
        """Uncommit (marker first), then delete the step's files."""
        if self.fs.exists(self.marker_path(step)):
            self.fs.rm_file(self.marker_path(step))
        prefix = self.path(CHECKPOINTS, str(step))
        if self.fs.exists(prefix):
            self.fs.rm(prefix, recursive=True)
        log.info("deleted checkpoint step %d from %s (gone locally)", step, self.url)

    def download(self, step: int, files: dict[str, int], local_ckpt_dir: str) -> bool:
        """Fetch a committed step into ``local_ckpt_dir/<step>`` through a
        temporary dir renamed when complete. False (and nothing left behind)
        when the remote files do not match the marker's list and sizes."""
        final = os.path.join(local_ckpt_dir, str(step))
        tmp = os.path.join(local_ckpt_dir, f".{step}.yoshimidi-download-tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            for rel in sorted(files):
                dst = os.path.join(tmp, *rel.split("/"))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                self.fs.get_file(self.path(CHECKPOINTS, str(step), rel), dst)
            if file_sizes(tmp) != files:
                log.warning("remote step %d does not match its marker (files or sizes differ); skipping it", step)
                shutil.rmtree(tmp, ignore_errors=True)
                return False
        except FileNotFoundError as e:
            log.warning("remote step %d is missing a file (%s); skipping it", step, e)
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.replace(tmp, final)
        log.info("restored checkpoint step %d from %s", step, self.url)
        return True
