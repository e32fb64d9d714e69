"""Style: a sequence-level control naming the texture a piece comes from (the
collection of the corpus it was taken from). Given to the model at every
position (model/transformer.py), dropped at random like the per-press
controls, so one model samples a chosen style or, with none, a mixture.

A piece's style is read from the top folder of its path under the source
(the music21 corpus converts into cache/music21/<collection>/...; a folder
source may hold one subfolder per style, named as below).
"""

from __future__ import annotations

import os

STYLES = ("chorale", "classical", "renaissance", "fiddle")
NO_STYLE = -1  # not known or dropped: the unconditioned mode
NUM_STYLES = len(STYLES)

# music21 corpus collections (data/sources/music21_corpus) and the style they are
FOLDER_STYLES = {
    "bach": "chorale",
    "haydn": "classical", "mozart": "classical", "beethoven": "classical",
    "monteverdi": "renaissance", "josquin": "renaissance", "palestrina": "renaissance", "trecento": "renaissance",
    "ryansMammoth": "fiddle", "oneills1850": "fiddle", "airdsAirs": "fiddle",
    **{name: name for name in STYLES},
}


class StyleError(ValueError):
    """A style name that is not one of STYLES."""


def style_id(name: str | None) -> int:
    """'fiddle' -> its index; None, '', 'any' or '*' -> NO_STYLE."""
    if name is None or str(name).strip().lower() in ("", "any", "*", "none"):
        return NO_STYLE
    key = str(name).strip().lower()
    if key not in STYLES:
        raise StyleError(f"style {name!r}: one of {', '.join(STYLES)} (or 'any')")
    return STYLES.index(key)


def style_name(index: int) -> str:
    return "any" if index == NO_STYLE else STYLES[index]


def style_of_path(path: str, root: str) -> int:
    """The style of a file by its top folder under `root` (NO_STYLE if none is known)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root)) if root else path
    top = rel.split(os.sep, 1)[0] if os.sep in rel else ""
    return STYLES.index(FOLDER_STYLES[top]) if top in FOLDER_STYLES else NO_STYLE
