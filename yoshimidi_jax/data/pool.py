"""An ordered process-pool map that survives workers that crash.

A C++ parser can take its whole process down on a hostile file. When that
happens, the items that were in flight are run again one per fresh process, so
the culprit is found and reported (`on_crash`) while the rest go on.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _run_chunk(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(item) for item in chunk]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _context():
    # forkserver/spawn avoid forking a process that has threads (jax, grain)
    return multiprocessing.get_context("forkserver")


def resilient_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    on_crash: Callable[[T, str], R],
    workers: int = 2,
    chunk_size: int = 8,
) -> Iterator[R]:
    """Yields fn(item) for every item, in input order. fn must be picklable
    (a module-level function or a functools.partial of one). An item whose
    worker process dies yields on_crash(item, reason) instead."""
    if workers <= 0:  # in this process: for debugging, no crash isolation
        yield from _isolated_or_inline(fn, items, on_crash, inline=True)
        return
    pending: list[Sequence[T]] = list(_chunks(items, chunk_size))
    window = 4 * workers
    next_chunk = 0
    while next_chunk < len(pending):
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
            futures: list[cf.Future] = []
            broken = False
            while next_chunk < len(pending) and not broken:
                try:
                    # submit too raises once a worker has died (the pool may break
                    # between two results); the chunk it refused is still pending
                    while len(futures) < window and next_chunk + len(futures) < len(pending):
                        futures.append(pool.submit(_run_chunk, fn, pending[next_chunk + len(futures)]))
                    results = futures[0].result()
                except BrokenProcessPool:
                    broken = True
                    break
                futures.pop(0)
                next_chunk += 1
                yield from results
            if broken:
                for f in futures:
                    f.cancel()
        if broken:
            # every chunk that was in flight: one item per fresh process
            in_flight = [item for chunk in pending[next_chunk : next_chunk + len(futures)] for item in chunk]
            yield from _isolated_or_inline(fn, in_flight, on_crash, inline=False)
            next_chunk += len(futures)


def _isolated_or_inline(
    fn: Callable[[T], R], items: Iterable[T], on_crash: Callable[[T, str], R], inline: bool
) -> Iterator[R]:
    for item in items:
        if inline:
            yield fn(item)
            continue
        with cf.ProcessPoolExecutor(max_workers=1, mp_context=_context()) as pool:
            try:
                yield pool.submit(fn, item).result()
            except BrokenProcessPool as e:
                yield on_crash(item, f"worker process died: {e}")
