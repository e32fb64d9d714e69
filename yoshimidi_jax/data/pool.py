"""The one process pool of the data path: an ordered map over batches of work
that survives workers that crash or hang (pebble's ProcessPool underneath).

A C++ parser can take its whole process down on a hostile file, and a score
parser can loop for minutes on one. pebble replaces a worker that dies and
kills one that runs past its task's timeout; here a batch that failed that way
is run again one item per task, so the culprit is found and reported
(`on_failure(item, reason, detail)`, reason "worker_crash" or "timeout") while
the rest of the work goes on.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import pebble

T = TypeVar("T")
R = TypeVar("R")

WINDOW_PER_WORKER = 8  # batches in flight per worker: results are held until read in order


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
    that fails alone yields on_failure(item, reason, detail). workers <= 0 runs
    everything in this process (for debugging: no isolation, no timeouts)."""
    if workers <= 0:
        for batch in batches:
            yield from fn(batch)
        return
    pool = pebble.ProcessPool(max_workers=min(workers, max(1, len(batches))), context=_context(),
                              initializer=initializer)

    def submit(batch: Sequence[T]) -> cf.Future:
        return pool.schedule(fn, (batch,), timeout=None if timeout_s is None else timeout_s * len(batch))

    finished = False
    try:
        todo = iter(batches)
        in_flight: collections.deque = collections.deque()
        for batch in todo:
            in_flight.append((batch, submit(batch)))
            if len(in_flight) >= WINDOW_PER_WORKER * workers:
                break
        while in_flight:
            batch, future = in_flight.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                in_flight.append((nxt, submit(nxt)))
            try:
                results = future.result()
            except (pebble.ProcessExpired, cf.TimeoutError) as error:
                if len(batch) == 1:
                    results = [on_failure(batch[0], *_why(error, timeout_s))]
                else:  # find the culprit: each item alone, in the same pool
                    alone = [(item, submit([item])) for item in batch]
                    results = []
                    for item, f in alone:
                        try:
                            results.extend(f.result())
                        except (pebble.ProcessExpired, cf.TimeoutError) as e:
                            results.append(on_failure(item, *_why(e, timeout_s)))
            yield from results
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
