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
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time

from yoshimidi_jax.play.batch import JOB_TOKENS, BatchPlayer, Job, OpenJob, Refill

log = logging.getLogger("yoshimidi.serve")

# a press that leaves fewer free places in its cache than two of the largest
# jobs take begins the refill at once, so that the next press rarely waits
REFILL_AHEAD_TOKENS = JOB_TOKENS


class _Refilled:
    """The refill thread's answer, queued to the decode thread."""

    def __init__(self, slot: int, refill: Refill | None):
        self.slot, self.refill = slot, refill


class Batcher:
    def __init__(self, player: BatchPlayer):
        self.player = player
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
            first = self._queue.get()
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
            for (_, future, loop), result in zip(plays, results):
                loop.call_soon_threadsafe(_set, future, result, None)
            # answered: the caches now nearly full begin their refill, ahead of their next press
            for job, _, _ in plays:
                if job.slot not in self._refilling and self.player.needs_room(job.slot, REFILL_AHEAD_TOKENS):
                    self._begin_refill(job.slot)

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
