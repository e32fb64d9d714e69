"""The decode thread: jobs from every session, decoded in batches.

Sessions `await batcher.submit(job)` from the event loop. One thread takes
every job waiting at that moment and runs them as one BatchPlayer.run call
(resets and slot opens first, one by one), then hands each session its
result. While a batch runs, new jobs queue up and form the next batch, so a
job waits for at most the batch in progress; the busier the server, the
larger the batches and the cheaper each press. When nothing waits after a
batch, the caches of its sessions that are nearly full are refilled then
(a prefill of the recent half), so a press rarely pays for a refill.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import threading
import time

import jax

from yoshimidi_jax.play.batch import BatchPlayer, Job, OpenJob

log = logging.getLogger("yoshimidi.serve")


class Batcher:
    def __init__(self, player: BatchPlayer):
        self.player = player
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0
        self.jobs = 0
        self.busy_s = 0.0
        self.refills = 0  # cache refills done ahead, between presses
        self._thread = threading.Thread(target=self._loop, name="decode", daemon=True)
        self._thread.start()

    async def submit(self, job: Job | OpenJob):
        """The job's result (PressNotes for a press; None otherwise), decoded
        with the other jobs waiting now."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((job, future, loop))
        return await future

    def close(self) -> None:
        self._queue.put(None)

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
            self._run(items)
            self.busy_s += time.perf_counter() - t0
            self.batches += 1
            self.jobs += len(items)

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
            # answered: now, before the next press, refill the caches that are nearly full
            if self._queue.empty():
                self.refills += len(self.player.refill_ahead([job.slot for job, _, _ in plays]))

    @staticmethod
    def _settle(future, loop, fn) -> None:
        try:
            result, error = fn(), None
        except Exception as e:  # noqa: BLE001
            result, error = None, e
        loop.call_soon_threadsafe(_set, future, result, error)


def _set(future: asyncio.Future, result, error) -> None:
    if future.done():  # the session went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
