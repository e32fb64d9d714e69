"""Which pieces the music21 corpus holds (one per score file, one per tune
of a many-tune .abc file) and the .mid name each becomes."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Sequence

# Chosen by measuring each collection alone (workers=2, timeout_s=60, 2 cores):
# bach 410 pieces 35 s, haydn 9/8 s, mozart 16/20 s, monteverdi 49/18 s,
# josquin 8/3 s, trecento 102/38 s, ryansMammoth 1059/49 s: 1,653 pieces,
# ~170 s, no failures. Left out for time: oneills1850 (2,009 tunes, 137 s),
# beethoven (22 quartet movements, > 6 min, 12 done after 4 min), essenFolksong
# (8,514 tunes, est. ~4 min from one file), palestrina (1,318), airdsAirs (1,180).
DEFAULT_COLLECTIONS: tuple[str, ...] = (
    "bach",
    "haydn",
    "mozart",
    "monteverdi",
    "josquin",
    "trecento",
    "ryansMammoth",
)

ALL = "all"
FAILURES_FILE = "failures.json"
# Roman-numeral analyses (monteverdi, bach): they restate the scores they
# analyse as block chords, so they would duplicate those pieces.
EXCLUDED_EXTENSIONS: tuple[str, ...] = (".rntxt",)
# When one piece is stored in several formats, keep the first of these.
FORMAT_PREFERENCE: tuple[str, ...] = (".mxl", ".musicxml", ".xml", ".krn", ".abc")
# Collections whose .abc X: numbers are the voices of one piece, not tunes.
ABC_VOICES_AS_PARTS: tuple[str, ...] = ("josquin",)
_X_LINE = re.compile(r"^X:\s*(\d+)", flags=re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Piece:
    """One piece of the corpus and the .mid it becomes.

    corpus_path: path relative to the music21 corpus root ("bach/bwv66.6.mxl").
    number: the abc X: reference number of a tune in a many-tune file, else None.
    name: the relative output path in the cache folder ("bach/bwv66.6.mid").
    """

    corpus_path: str
    number: int | None
    name: str

    @property
    def collection(self) -> str:
        return self.corpus_path.split("/", 1)[0]


# ----------------------------------------------------------------- listing


def corpus_root() -> pathlib.Path:
    """The folder of the corpus that ships inside music21."""
    from music21 import corpus

    return pathlib.Path(corpus.__file__).parent


def music21_version() -> str:
    import music21

    return str(music21.__version__)


def _core_relpaths() -> list[str]:
    """Corpus files relative to the corpus root, one format per piece."""
    from music21 import corpus

    root = corpus_root()
    rel = sorted(
        pathlib.Path(p).relative_to(root).as_posix()
        for p in corpus.getCorePaths()
        if pathlib.Path(p).suffix not in EXCLUDED_EXTENSIONS
    )
    return _one_format_per_piece(rel)


def _one_format_per_piece(relpaths: Sequence[str]) -> list[str]:
    """Keep one file per (path without extension), by FORMAT_PREFERENCE."""

    def rank(p: str) -> int:
        ext = os.path.splitext(p)[1]
        return FORMAT_PREFERENCE.index(ext) if ext in FORMAT_PREFERENCE else len(FORMAT_PREFERENCE)

    best: dict[str, str] = {}
    for p in relpaths:
        stem = os.path.splitext(p)[0]
        if stem not in best or rank(p) < rank(best[stem]):
            best[stem] = p
    return sorted(best.values())


def abc_tune_numbers(text: str) -> list[int]:
    """Distinct X: reference numbers of an abc text, in file order; like
    music21, a file with at most one is a single piece (returns [])."""
    numbers = list(dict.fromkeys(int(n) for n in _X_LINE.findall(text)))
    return numbers if len(numbers) > 1 else []


def pieces_of_file(corpus_path: str, text: str | None = None) -> list[Piece]:
    """The pieces a corpus file holds; `text` is read only for .abc files."""
    stem, ext = os.path.splitext(corpus_path)
    collection = corpus_path.split("/", 1)[0]
    if ext == ".abc" and collection not in ABC_VOICES_AS_PARTS:
        if text is None:
            text = (corpus_root() / corpus_path).read_text(encoding="utf-8", errors="replace")
        numbers = abc_tune_numbers(text)
        if numbers:
            return [Piece(corpus_path, n, f"{stem}/tune_{n:04d}.mid") for n in numbers]
    return [Piece(corpus_path, None, f"{stem}.mid")]


def _selects(spec: str, corpus_path: str) -> bool:
    """Whether a selection item names this corpus file: a collection name
    ("bach"), a folder or file relative to the corpus root ("bach/bwv66.6.mxl",
    "beethoven/opus18no1")."""
    return corpus_path == spec or corpus_path.startswith(spec.rstrip("/") + "/")


def list_pieces(collections: Sequence[str] | None) -> list[Piece]:
    """Pieces of the given collections, sorted by name.

    None: DEFAULT_COLLECTIONS; ("all",): every collection. An item may also be
    a file or folder relative to the corpus root ("bach/bwv66.6.mxl")."""
    relpaths = _core_relpaths()
    specs = list(DEFAULT_COLLECTIONS if collections is None else collections)
    if ALL in specs:
        specs = sorted({p.split("/", 1)[0] for p in relpaths})
    unknown = [s for s in specs if not any(_selects(s, p) for p in relpaths)]
    if unknown:
        known = sorted({p.split("/", 1)[0] for p in relpaths})
        raise ValueError(f"unknown music21 collections or paths {unknown}; collections: {known} or 'all'")
    pieces = [
        piece
        for p in relpaths
        if any(_selects(s, p) for s in specs)
        for piece in pieces_of_file(p)
    ]
    return sorted(pieces, key=lambda piece: piece.name)
