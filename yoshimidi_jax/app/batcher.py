"""The decode thread: jobs from every session, decoded in batches; and its
refill thread: the cache refills, never inside a batch.

Sessions `await batcher.submit(job)` from the event loop. One thread takes
every job waiting at that moment and runs them as one BatchPlayer.run call
(resets and slot opens first, one by one), then hands each session its
result. While a batch runs, new jobs queue up and form the next batch, so a
job waits for at most the batch in progress; the busier the server, the
larger the batches and the cheaper each press.

A session's cache that the next job might not fit is refilled (a prefill of
the recent half of its tokens) by a second thread, never inside a batch: the
decode thread takes the slot's row out of the pool (cheap), the refill thread
prefills it while batches of the other sessions go on, and the decode thread
puts it back between two batches. It begins as soon as a press leaves the
cache nearly full (ahead of time); a job of that session that comes while
its refill is under way waits for it, and only that job: a press never waits
for another session's refill (BatchPlayer.refills_in_batch, counted in
/api/stats as refills_in_press, stays 0).

Keeping warm: while someone has pressed in the last few seconds (and not
many: under load the batches themselves keep the weights warm), a decode
thread that waited `KeepWarm.interval_s` for a job with no program run by any
decode thread meanwhile runs one small call (BatchPlayer.keep_warm), so the
weights stay in the CPU's caches between a lone player's presses.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
import queue
import threading
import time

from yoshimidi_jax.play.batch import JOB_TOKENS, BatchPlayer, Job, OpenJob, Refill

log = logging.getLogger("yoshimidi.serve")

# a press that leaves fewer free places in its cache than two of the largest
# jobs take begins the refill at once, so that the next press rarely waits
REFILL_AHEAD_TOKENS = JOB_TOKENS


@dataclasses.dataclass
class KeepWarm:
    """When the decode threads call the model only to keep its weights in the
    CPU's caches: while someone has pressed in the last `while_s` seconds and
    fewer than `max_presses_per_s` presses came in the last second (more keep
    the weights warm themselves), once no decode thread ran a program for
    `interval_s`. Shared by every decode thread (the weights are too), so one
    call serves them all. interval_s 0: never."""

    interval_s: float = 0.0
    while_s: float = 10.0
    max_presses_per_s: int = 20
    last_program: float = -math.inf  # time.monotonic() at the end of any decode thread's last program
    presses: collections.deque = dataclasses.field(init=False, repr=False)  # the last presses' times
    calls: int = 0
    busy_s: float = 0.0

    def __post_init__(self) -> None:
        if not (self.interval_s >= 0 and self.while_s >= 0 and self.max_presses_per_s >= 1):
            raise ValueError(f"keep-warm interval_s={self.interval_s!r}, while_s={self.while_s!r} must be >= 0 "
                             f"and max_presses_per_s={self.max_presses_per_s!r} >= 1")
        self.presses = collections.deque(maxlen=self.max_presses_per_s)

    def pressed(self, now: float, jobs: int = 1) -> None:
        """A batch of `jobs` presses (or joins, or release flushes) was decoded at `now`."""
        self.last_program = now
        self.presses.extend([now] * min(jobs, self.max_presses_per_s))

    def wait_s(self, now: float) -> float | None:
        """How long a decode thread may wait for a job before a call is due
        (None: as long as it takes; nobody is playing, many are, or it is off)."""
        presses = self.presses
        if self.interval_s <= 0 or not presses or now - presses[-1] > self.while_s:
            return None
        if len(presses) == presses.maxlen and now - presses[0] < 1.0:  # busy: the batches keep it warm
            return None
        return max(0.0, self.last_program + self.interval_s - now)


class _Refilled:
    """The refill thread's answer, queued to the decode thread."""

    def __init__(self, slot: int, refill: Refill | None):
        self.slot, self.refill = slot, refill


class Batcher:
    def __init__(self, player: BatchPlayer, warm: KeepWarm | None = None):
        self.player = player
        self.warm = KeepWarm() if warm is None else warm
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._refill_queue: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0
        self.jobs = 0
        self.busy_s = 0.0
        self.refills = 0  # cache refills done in the refill thread, outside every batch
        self.refill_s = 0.0  # the refill thread's time
        self.refill_waits = 0  # jobs that waited for their own session's refill
        self._refilling: set[int] = set()  # slots whose refill is under way
        self._held: dict[int, tuple] = {}  # slot -> its job (job, future, loop), waiting for the refill
        self._thread = threading.Thread(target=self._loop, name="decode", daemon=True)
        self._refill_thread = threading.Thread(target=self._refill_loop, name="refill", daemon=True)
        self._thread.start()
        self._refill_thread.start()

    async def submit(self, job: Job | OpenJob):
        """The job's result (PressNotes for a press; None otherwise), decoded
        with the other jobs waiting now."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((job, future, loop))
        return await future

    def close(self) -> None:
        self._queue.put(None)
        self._refill_queue.put(None)

    # -- the decode thread ---------------------------------------------------------
    def _loop(self) -> None:
        while True:
            wait = self.warm.wait_s(time.monotonic())
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                self._keep_warm()
                continue
            if first is None:
                return
            items = [first]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                items.append(item)
            t0 = time.perf_counter()
            jobs = [it for it in (self._sort(item) for item in items) if it is not None]
            if jobs:
                self._run(jobs)
                self.batches += 1
                self.jobs += len(jobs)
            self.busy_s += time.perf_counter() - t0

    def _sort(self, item):
        """An item from the queue -> the job to run in this batch, or None: a
        finished refill is put in place (its slot's waiting job, if any, joins
        this batch); a job whose cache must be refilled first waits for it."""
        if isinstance(item, _Refilled):
            self._refilling.discard(item.slot)
            held = self._held.pop(item.slot, None)
            if held is not None and held[1].done():  # its session went away meanwhile
                held = None
            if item.refill is None:  # it failed: the job refills inside its batch (BatchPlayer._room)
                return held
            if self.player.refill_end(item.refill):
                self.refills += 1
                return held
            return None if held is None else self._sort(held)  # stale (the slot was reopened): again
        job = item[0]
        if isinstance(job, OpenJob):
            return item
        if job.slot in self._refilling:
            self._held[job.slot] = item
            self.refill_waits += 1
            return None
        if self.player.needs_room(job.slot):
            self._held[job.slot] = item
            self.refill_waits += 1
            self._begin_refill(job.slot)
            return None
        return item

    def _begin_refill(self, slot: int) -> None:
        try:
            refill = self.player.refill_begin(slot)
        except Exception:  # noqa: BLE001  the job then refills inside its batch, as it would have
            log.exception("slot %d: the refill could not begin", slot)
            self._queue.put(_Refilled(slot, None))
        else:
            self._refill_queue.put(refill)
        self._refilling.add(slot)

    def _run(self, items) -> None:
        opens = [it for it in items if isinstance(it[0], OpenJob)]
        plays = [it for it in items if not isinstance(it[0], OpenJob)]
        for job, future, loop in opens:
            self._settle(future, loop, lambda job=job: self.player.open(job.slot, job.key, job.style))
        if plays:
            try:
                results = self.player.run([job for job, _, _ in plays])
            except Exception:  # noqa: BLE001  one bad job must not fail the others: each alone
                log.exception("a batch of %d jobs failed; running them one by one", len(plays))
                for job, future, loop in plays:
                    self._settle(future, loop, lambda job=job: self.player.run([job])[0])
                return
            self.warm.pressed(time.monotonic(), len(plays))
            for (_, future, loop), result in zip(plays, results):
                loop.call_soon_threadsafe(_set, future, result, None)
            # answered: the caches now nearly full begin their refill, ahead of their next press
            for job, _, _ in plays:
                if job.slot not in self._refilling and self.player.needs_room(job.slot, REFILL_AHEAD_TOKENS):
                    self._begin_refill(job.slot)

    def _keep_warm(self) -> None:
        """One keep-warm call, unless another decode thread ran a program meanwhile."""
        if self.warm.wait_s(time.monotonic()) != 0.0:
            return
        t0 = time.perf_counter()
        try:
            ran = self.player.keep_warm()
        except Exception:  # noqa: BLE001  a press would fail the same way and say so; stop warming
            log.exception("the keep-warm call failed: no more of them")
            self.warm.interval_s = 0.0
            return
        self.warm.last_program = time.monotonic()
        if ran:
            self.warm.calls += 1
            self.warm.busy_s += time.perf_counter() - t0

    @staticmethod
    def _settle(future, loop, fn) -> None:
        try:
            result, error = fn(), None
        except Exception as e:  # noqa: BLE001
            result, error = None, e
        loop.call_soon_threadsafe(_set, future, result, error)

    # -- the refill thread -----------------------------------------------------------
    def _refill_loop(self) -> None:
        while True:
            refill = self._refill_queue.get()
            if refill is None:
                return
            t0 = time.perf_counter()
            try:
                done = self.player.refill_compute(refill)
            except Exception:  # noqa: BLE001  the job then refills inside its batch
                log.exception("slot %d: the refill failed", refill.slot)
                done = None
            self.refill_s += time.perf_counter() - t0
            self._queue.put(_Refilled(refill.slot, done))


def _set(future: asyncio.Future, result, error) -> None:
    if future.done():  # the session went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
