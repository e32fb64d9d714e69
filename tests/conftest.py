"""Shared fixtures: real MIDI files from the music21 corpus that ships with the
music21 package (offline), converted once per session."""

from __future__ import annotations

import contextlib
import fcntl
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the same cache the quick start fills: converting once serves both
CORPUS_CACHE = os.environ.get("YOSHIMIDI_TEST_CACHE", os.path.join(REPO, "cache", "music21"))

FEW_WORKS = ("bach/bwv66.6", "bach/bwv1.6", "bach/bwv10.7", "mozart/k80/movement1", "bach/bwv11.6")


def pytest_configure(config):
    """JAX's persistent compilation cache in the test process too, the folder
    the entry points use (compile_cache.py: $YOSHIMIDI_JAX_CACHE, empty: off):
    the many tests that build the same small model, train step or sampler
    afresh (and the subprocesses they start) load it instead of compiling it
    again. Only compile time changes: the programs are the same."""
    from yoshimidi_jax import compile_cache

    compile_cache.enable()


# `bash scripts/test.sh` runs two pytest-xdist workers (--dist loadgroup): one
# test file is one work unit (its module fixtures built once), except these
# groups of files that share a session fixture (one server for tests/app/).
SHARED_GROUPS = {"tests/app/": "app"}
# Files that take minutes go first, so that no worker is left with a long file
# at the end while the other has nothing to do (2 cores; the others follow in
# the usual order).
LONG_FIRST = ("tests/train/test_multiprocess.py", "tests/notebooks/test_notebooks.py", "tests/app/",
              "tests/train/test_train_loop.py", "tests/train/test_resume.py", "tests/train/test_time_shift_model.py",
              "tests/train/test_devices.py", "tests/train/test_trained_music.py",
              "tests/benchmarks/test_page_latency.py")


def _group(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return next((g for prefix, g in SHARED_GROUPS.items() if path.startswith(prefix)), path)


def _rank(nodeid: str) -> int:
    return next((i for i, prefix in enumerate(LONG_FIRST) if nodeid.startswith(prefix)), len(LONG_FIRST))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: _rank(item.nodeid))  # stable: the usual order within each rank
    for item in items:
        if not any(True for _ in item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group(_group(item.nodeid)))


@pytest.fixture(scope="session")
def few_midi_files(tmp_path_factory) -> list[str]:
    """Five real pieces (chorales, a quartet movement...) written as MIDI by music21."""
    from music21 import corpus

    from tests.corpus_scores import parse_score

    out = tmp_path_factory.mktemp("few_midi")
    paths = []
    for work in FEW_WORKS:
        path = str(out / (work.replace("/", "_") + ".mid"))
        parse_score(corpus.getWork(work)).write("midi", fp=path)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def few_prepared(tmp_path_factory, few_midi_files) -> str:
    """The five pieces prepared (array_record shards), 30% of them held out."""
    from yoshimidi_jax.data.prepare import PrepareOptions, prepare
    from yoshimidi_jax.data.sources.base import SourceFiles

    out = str(tmp_path_factory.mktemp("few_prepared") / "few")
    manifest = prepare(SourceFiles(paths=tuple(few_midi_files)), out,
                       PrepareOptions(workers=1, progress=False, eval_fraction=0.3))
    assert manifest["split"]["eval"]["pieces"] > 0 and manifest["split"]["train"]["pieces"] > 0
    return out


# The round trips on "real corpus files" run on a seeded sample of the default
# corpus: every collection, each in proportion to its size but at least
# MIN_PER_COLLECTION pieces (~60 pieces, ~15 s to convert on 2 cores instead of
# ~4.5 min for all 1,653). YOSHIMIDI_TEST_CORPUS=all runs them on the whole
# default corpus, as before.
SAMPLE_SIZE = 60
MIN_PER_COLLECTION = 3
SAMPLE_SEED = 0


def corpus_sample_paths(size: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED) -> list[str]:
    """A seeded sample of the default corpus's files (paths relative to the
    corpus root, one piece each), every collection in it."""
    import collections
    import random

    from yoshimidi_jax.data.sources.music21_corpus import list_pieces

    by_collection: dict[str, set[str]] = collections.defaultdict(set)
    pieces = list_pieces(None)
    for piece in pieces:
        by_collection[piece.collection].add(piece.corpus_path)
    rng = random.Random(seed)
    chosen: list[str] = []
    for name in sorted(by_collection):
        files = sorted(by_collection[name])
        k = min(len(files), max(MIN_PER_COLLECTION, size * len(files) // len(pieces)))
        chosen += rng.sample(files, k)
    return sorted(chosen)


@contextlib.contextmanager
def _locked(folder: str):
    """An exclusive lock on a folder (pytest-xdist workers share the cache)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ".tests.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def corpus_sample():
    """Real pieces of the default embedded corpus as MIDI files (SourceFiles):
    the seeded sample above (YOSHIMIDI_TEST_CORPUS=all: every piece), converted
    once into cache/music21, the cache the quick start fills (seconds the
    first time, none after)."""
    from yoshimidi_jax.data.sources.music21_corpus import convert_corpus

    whole = os.environ.get("YOSHIMIDI_TEST_CORPUS", "") == "all"
    with _locked(CORPUS_CACHE):
        return convert_corpus(CORPUS_CACHE, collections=None if whole else corpus_sample_paths(),
                              workers=os.cpu_count() or 2, progress=False)
