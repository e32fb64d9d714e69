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


@pytest.fixture(scope="session")
def few_midi_files(tmp_path_factory) -> list[str]:
    """Five real pieces (chorales, a quartet movement...) written as MIDI by music21."""
    import music21
    from music21 import corpus

    out = tmp_path_factory.mktemp("few_midi")
    paths = []
    for work in FEW_WORKS:
        path = str(out / (work.replace("/", "_") + ".mid"))
        music21.converter.parse(corpus.getWork(work)).write("midi", fp=path)
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
