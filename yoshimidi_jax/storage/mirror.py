"""WorkdirMirror: a local run dir mirrored to a remote workdir from one
background thread (queue, retries with backoff, outage logging, which steps
to upload, delete or fetch); the remote step layout itself is RemoteSteps.
The layout and the reasons are in yoshimidi_jax/storage/__init__.py."""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from typing import Callable

from yoshimidi_jax.storage.paths import (CHECKPOINTS, DEFAULT_FILES, FINALIZE_WAIT_S, RESTORE_FILES, file_sizes,
                                         local_steps, make_fs, s3_endpoint, url_scheme)
from yoshimidi_jax.storage.remote_steps import RemoteSteps

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Task:
    key: tuple
    what: str  # for log messages: "step 15", "files [...]"
    run: Callable[[], None]


class WorkdirMirror:
    """Mirror a local run dir to a remote workdir from one background thread.

    ``push_checkpoint`` / ``push_files`` only enqueue (an identical task still
    waiting in the queue is not enqueued twice). The worker runs tasks in order;
    a task that fails (endpoint down, throttled, ...) is retried with exponential
    backoff from ``retry_initial_s`` up to ``retry_max_s``, forever, until
    ``close``. One warning per outage, one info line on recovery. Nothing local
    is ever deleted by the mirror except a half-done download in ``restore_latest``.
    """

    def __init__(
        self,
        remote: str,
        local: str,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        fs=None,
    ):
        self.remote_url = remote.rstrip("/")
        self.local = local
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.fs = fs if fs is not None else make_fs(remote)
        self.root = self.fs._strip_protocol(self.remote_url).rstrip("/")
        self.endpoint = s3_endpoint() if url_scheme(remote) in ("s3", "s3a") else url_scheme(remote)
        self.endpoint = self.endpoint or "default AWS endpoint"
        self.steps = RemoteSteps(self.fs, self.root, self.remote_url)

        self._cond = threading.Condition()
        self._queue: collections.deque[_Task] = collections.deque()
        self._running: _Task | None = None
        self._closing = threading.Event()
        self._failures = 0
        self._last_error: str | None = None
        self._in_outage = False
        self._outage_failures = 0
        self._uploaded: dict[str, tuple[int, int]] = {}  # relpath -> (size, mtime_ns) last pushed
        # steps this mirror uploaded or downloaded: the only remote steps it may delete
        self._known_steps: set[int] = set()
        self._thread = threading.Thread(target=self._worker, name="WorkdirMirror", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ paths

    def _r(self, *parts: str) -> str:
        return self.steps.path(*parts)

    # ------------------------------------------------------------------ status

    @property
    def pending(self) -> int:
        """Tasks queued or in progress."""
        with self._cond:
            return len(self._queue) + (self._running is not None)

    @property
    def failures(self) -> int:
        """Failed upload attempts so far (each retry counts)."""
        return self._failures

    @property
    def last_error(self) -> str | None:
        """The last upload error as text, or None if there never was one."""
        return self._last_error

    # ------------------------------------------------------------------ enqueue

    def _enqueue(self, task: _Task) -> None:
        with self._cond:
            if self._closing.is_set():
                log.warning("WorkdirMirror is closed; not uploading %s", task.what)
                return
            # coalesced only with the same upload last in the queue: an upload always runs after
            # everything queued before it (logs pushed before a checkpoint reach the remote before its marker)
            if self._queue and self._queue[-1].key == task.key:
                return
            self._queue.append(task)
            self._cond.notify_all()

    def push_checkpoint(self, step: int) -> None:
        """Enqueue: upload local ``checkpoints/<step>/``, then its marker; then drop
        remote steps that orbax has deleted locally (marker first, then files).

        Call after orbax has finished (or at least started) saving ``step``; the
        worker waits up to 10 minutes for orbax's temporary dir to be renamed.
        """
        step = int(step)
        self._enqueue(_Task(("ckpt", step), f"step {step}", lambda: self._upload_step(step)))

    def push_files(self, relpaths: list[str] | None = None) -> None:
        """Enqueue: upload these files or dirs (relative to the local dir; default
        config.json, metrics.jsonl, tb/, samples/), overwriting. Missing ones are
        skipped; files unchanged (size, mtime) since their last upload are skipped."""
        rels = tuple(relpaths) if relpaths is not None else DEFAULT_FILES
        self._enqueue(_Task(("files", rels), f"files {list(rels)}", lambda: self._upload_files(rels)))

    # ------------------------------------------------------------------ wait

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued upload is done (True) or ``timeout_s`` passed (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._running is not None:
                if not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
            return True

    def close(self, timeout_s: float | None = 300.0) -> bool:
        """Flush (up to ``timeout_s``), then stop the worker. True if everything was uploaded."""
        done = self.flush(timeout_s)
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=30.0)
        if not done:
            log.warning(
                "WorkdirMirror closed with %d upload(s) not done (last error: %s); "
                "the files are still in %s and a later run's pushes will upload them",
                self.pending,
                self._last_error,
                self.local,
            )
        return done

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ worker

    def _worker(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing.is_set():
                    self._cond.wait()
                if self._closing.is_set():
                    return
                self._running = self._queue.popleft()
            task = self._running
            delay = self.retry_initial_s
            while True:
                try:
                    self.fs.invalidate_cache()
                    task.run()
                except Exception as e:  # noqa: BLE001 - any failure is retried
                    self._failures += 1
                    self._outage_failures += 1
                    self._last_error = f"{type(e).__name__}: {e}"
                    if not self._in_outage:
                        self._in_outage = True
                        self._outage_failures = 1
                        log.warning(
                            "S3 unreachable (%s, %s); training continues, will retry upload of %s in %.3gs",
                            self.endpoint,
                            self._last_error,
                            task.what,
                            delay,
                        )
                    else:
                        log.debug("upload of %s failed again (%s); retry in %.3gs", task.what, self._last_error, delay)
                    if self._closing.wait(delay):
                        with self._cond:
                            self._queue.appendleft(task)  # keep it counted as pending
                            self._running = None
                            self._cond.notify_all()
                        return
                    delay = min(delay * 2, self.retry_max_s)
                    continue
                break
            if self._in_outage:
                self._in_outage = False
                log.warning(
                    "S3 reachable again (%s) after %d failed attempt(s); uploads resumed (%d pending)",
                    self.endpoint,
                    self._outage_failures,
                    len(self._queue),
                )
            with self._cond:
                self._running = None
                self._cond.notify_all()

    # ------------------------------------------------------------------ uploads

    def _wait_finalized(self, step: int) -> str | None:
        """The local dir of ``step`` once orbax has renamed it into place; None if gone."""
        ckpt = os.path.join(self.local, CHECKPOINTS)
        path = os.path.join(ckpt, str(step))
        deadline = time.monotonic() + FINALIZE_WAIT_S
        while True:
            if os.path.isdir(path):
                return path
            tmp = os.path.isdir(ckpt) and any(
                n.startswith(f"{step}.") and ".orbax-checkpoint-tmp" in n for n in os.listdir(ckpt)
            )
            if not tmp or time.monotonic() > deadline or self._closing.is_set():
                return None
            time.sleep(0.2)

    def _upload_step(self, step: int) -> None:
        path = self._wait_finalized(step)
        if path is None:
            log.info("checkpoint step %d is no longer in %s (deleted by keep-N?); not uploading it", step, self.local)
        else:
            self.steps.upload(step, path)
            self._known_steps.add(step)
        self._delete_stale_steps()

    def _delete_stale_steps(self) -> None:
        """Delete remote steps orbax deleted locally: steps this mirror uploaded or
        downloaded itself, no longer in local/checkpoints, older than the newest
        local step. Marker first, then the files. Steps it never held (a run
        resumed on a new machine pulls only the latest) are never touched, so
        the remote history, the best step included, survives a move."""
        local = set(local_steps(self.local))
        if not local:
            return
        newest = max(local)
        remote = set(self.steps.markers()) | self.steps.step_dirs()
        for step in sorted(s for s in remote & self._known_steps if s not in local and s < newest):
            self.steps.delete(step)
            self._known_steps.discard(step)

    def _upload_files(self, relpaths: tuple[str, ...]) -> None:
        for rel in relpaths:
            src = os.path.join(self.local, rel)
            if os.path.isdir(src):
                rels = [f"{rel.rstrip('/')}/{r}" for r in sorted(file_sizes(src))]
            elif os.path.isfile(src):
                rels = [rel]
            else:
                continue
            for r in rels:
                p = os.path.join(self.local, *r.split("/"))
                st = os.stat(p)
                sig = (st.st_size, st.st_mtime_ns)
                if self._uploaded.get(r) == sig:
                    continue
                self.fs.put_file(p, self._r(r))
                self._uploaded[r] = sig

    # ------------------------------------------------------------------ restore

    def restore_latest(self) -> int | None:
        """Make the newest finished checkpoint available in ``local/checkpoints``.

        If the local dir already has a finished step at least as new as the
        remote's newest committed one, returns it (nothing downloaded).
        Otherwise (no local step, or the run went on elsewhere and the remote is
        newer) downloads the newest remote step that has its commit marker and
        whose files match the marker (a step without one is never used), into a
        temporary dir renamed to ``checkpoints/<step>`` when complete. Also pulls
        config.json, metrics.jsonl and tb/ files: those missing locally, or all
        of them when the remote is newer. Returns the step, or None if none.

        Runs on the calling thread; raises if the remote cannot be reached (it
        cannot tell whether to resume, and starting over would clobber the run).
        """
        self.fs.invalidate_cache()
        have = local_steps(self.local)
        markers = self.steps.markers()
        if have and (not markers or have[-1] >= max(markers)):
            self._pull_missing(RESTORE_FILES)
            self._known_steps.update(have)
            return have[-1]
        if have:
            # the remote went on without this staging dir (the run moved to another
            # machine): its newer step wins, with its logs
            log.warning(
                "local staging %s holds step %d but %s has step %d: resuming from the remote",
                self.local, have[-1], self.remote_url, max(markers),
            )
            self._pull_missing(RESTORE_FILES, overwrite=True)
        else:
            self._pull_missing(RESTORE_FILES)
        for step in sorted(markers, reverse=True):
            if have and step <= have[-1]:
                break
            marker = self.steps.read_marker(step)
            if marker is None:
                continue
            if self.steps.download(step, marker.get("files", {}), os.path.join(self.local, CHECKPOINTS)):
                self._known_steps.add(step)
                return step
        return have[-1] if have else None

    def _pull_missing(self, relpaths, overwrite: bool = False) -> None:
        for rel in relpaths:
            src = self._r(rel)
            if not self.fs.exists(src):
                continue
            if self.fs.isdir(src):
                base = src.rstrip("/") + "/"
                rels = [f"{rel}/{p[len(base):]}" for p in self.fs.find(src) if p.startswith(base)]
            else:
                rels = [rel]
            for r in rels:
                dst = os.path.join(self.local, *r.split("/"))
                if os.path.exists(dst) and not overwrite:
                    continue
                os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
                part = dst + ".yoshimidi-download-tmp"
                self.fs.get_file(self._r(r), part)
                os.replace(part, dst)
                st = os.stat(dst)
                self._uploaded[r] = (st.st_size, st.st_mtime_ns)
