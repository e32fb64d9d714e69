"""The one process pool of the data path: an ordered map over batches of work
that survives workers that crash or hang (pebble's ProcessPool underneath).

A C++ parser can take its whole process down on a hostile file, and a score
parser can loop for minutes on one. pebble replaces a worker that dies and
kills one that runs past its task's timeout; here a batch that failed that way
is run again one item per task, so the culprit is found and reported
(`on_failure(item, reason, detail)`, reason "worker_crash" or "timeout") while
the rest of the work goes on. A pool that breaks as a whole (pebble's race
with a worker dying the moment it takes a task) is replaced, and what it held
runs again.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import pebble

T = TypeVar("T")
R = TypeVar("R")

WINDOW_PER_WORKER = 8  # batches in flight per worker: results are held until read in order
POLL_S = 0.25  # a wait for a result asks this often whether the pool still runs


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """items cut into consecutive batches of at most `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def map_each(fn: Callable[[T], R], batch: Sequence[T]) -> list[R]:
    """fn over one batch, in a worker (module level, so it pickles)."""
    return [fn(item) for item in batch]


def _context() -> multiprocessing.context.BaseContext:
    # forkserver avoids forking a process that has threads (jax, grain)
    return multiprocessing.get_context("forkserver")


def _why(error: BaseException, timeout_s: float | None) -> tuple[str, str]:
    if isinstance(error, (cf.TimeoutError, TimeoutError)):
        return "timeout", f"ran past {timeout_s} s"
    return "worker_crash", f"worker process died: {error}"


class PoolBroken(Exception):
    """pebble's pool stopped working: futures it still holds will never resolve."""


def _new_pool(workers: int, initializer: Callable[[], None] | None) -> pebble.ProcessPool:
    return pebble.ProcessPool(max_workers=workers, context=_context(), initializer=initializer)


def _result(pool: pebble.ProcessPool, future: cf.Future):
    """future.result(), or PoolBroken where the pool broke before it resolved.

    A worker that dies the moment it takes a task (before the pool has read
    its acknowledgement) can make pebble 5.1 declare the whole pool broken
    ("All workers expired"): its manager threads end and the futures in
    flight are never resolved (newer pebble resolves them with
    BrokenProcessPool). Waiting in POLL_S steps and
    asking whether the pool still runs turns either into PoolBroken."""
    while True:
        try:
            return future.result(timeout=POLL_S)
        except BrokenProcessPool as e:
            raise PoolBroken(str(e) or type(e).__name__) from e
        except cf.TimeoutError:
            if future.done():
                raise  # the task ran past its own timeout
            if not pool.active:
                raise PoolBroken("its manager threads stopped") from None


def map_batches(
    fn: Callable[[Sequence[T]], Sequence[R]],
    batches: Sequence[Sequence[T]],
    on_failure: Callable[[T, str, str], R],
    workers: int = 2,
    timeout_s: float | None = None,
    initializer: Callable[[], None] | None = None,
) -> Iterator[R]:
    """Yields the results of fn(batch) for every batch, flattened, in input
    order; fn(batch) returns one result per item of its batch. fn must pickle
    (a module-level function or a functools.partial of one).

    A batch gets `timeout_s` per item. A batch whose worker dies or runs past
    its time is run again one item per task (each with `timeout_s`); an item
    that fails alone yields on_failure(item, reason, detail). Where the pool
    itself breaks (PoolBroken), a new one takes over, and every item then in
    flight runs again alone, one at a time: one that breaks the new pool too
    yields on_failure(item, "worker_crash", ...). workers <= 0 runs
    everything in this process (for debugging: no isolation, no timeouts)."""
    if workers <= 0:
        for batch in batches:
            yield from fn(batch)
        return
    n_workers = min(workers, max(1, len(batches)))
    pool = _new_pool(n_workers, initializer)

    def submit(batch: Sequence[T]) -> cf.Future:
        try:
            return pool.schedule(fn, (batch,), timeout=None if timeout_s is None else timeout_s * len(batch))
        except RuntimeError as e:  # the pool broke since the last result was read
            broken: cf.Future = cf.Future()
            broken.set_exception(BrokenProcessPool(str(e)))
            return broken

    todo = iter(batches)
    # [batch, future or None (not submitted yet)], in input order; the first
    # `alone` run one at a time (after a broken pool: one that breaks it again is the culprit)
    pending: collections.deque[list] = collections.deque()
    alone = 0

    def top_up() -> None:
        if alone:
            if pending[0][1] is None:
                pending[0][1] = submit(pending[0][0])
            return
        while len(pending) < WINDOW_PER_WORKER * workers:
            batch = next(todo, None)
            if batch is None:
                return
            pending.append([batch, submit(batch)])

    finished = False
    try:
        top_up()
        while pending:
            batch, future = pending[0]
            try:
                results = _result(pool, future)
            except PoolBroken as broken:
                pool.stop()
                pool.join()
                pool = _new_pool(n_workers, initializer)
                if alone:  # it ran alone: it broke the pool
                    pending.popleft()
                    alone -= 1
                    results = [on_failure(batch[0], "worker_crash", f"the worker pool broke while it ran alone: {broken}")]
                else:  # which item did it is not known: each in flight runs again, alone
                    items = [item for b, _ in pending for item in b]
                    pending = collections.deque([[item], None] for item in items)
                    alone = len(pending)
                    top_up()
                    continue
            except (pebble.ProcessExpired, cf.TimeoutError) as error:
                pending.popleft()
                if alone:
                    alone -= 1
                if len(batch) == 1:
                    results = [on_failure(batch[0], *_why(error, timeout_s))]
                else:  # find the culprit: each item alone, in the same pool
                    pending.extendleft(reversed([[[item], submit([item])] for item in batch]))
                    continue
            else:
                pending.popleft()
                if alone:
                    alone -= 1
            yield from results
            top_up()
        finished = True
    finally:
        if finished:
            pool.close()
        else:  # the caller stopped early or fn raised: do not wait for the rest
            pool.stop()
        pool.join()


def resilient_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    on_failure: Callable[[T, str, str], R],
    workers: int = 2,
    chunk_size: int = 8,
    timeout_s: float | None = None,
) -> Iterator[R]:
    """fn(item) for every item, in order, `chunk_size` items per task; see
    map_batches for what happens to a worker that dies or hangs."""
    yield from map_batches(functools.partial(map_each, fn), chunked(items, chunk_size), on_failure,
                           workers=workers, timeout_s=timeout_s)
