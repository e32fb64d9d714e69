"""Shared fixtures: real MIDI files from the music21 corpus that ships with the
music21 package (offline), converted once per session."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def default_corpus():
    """The default embedded corpus as MIDI files (SourceFiles), converted once
    into cache/music21 (minutes the first time, seconds after)."""
    from yoshimidi_jax.data.sources.music21_corpus import convert_corpus

    return convert_corpus(CORPUS_CACHE, collections=None, workers=os.cpu_count() or 2, progress=False)
