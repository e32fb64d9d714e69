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

import numpy as np

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


def model_styles(num_styles: int) -> tuple[str, ...]:
    """The style names a model of `num_styles` (model.num_styles) takes; () for
    a model trained without styles."""
    return STYLES[: max(0, min(int(num_styles), NUM_STYLES))]


def check_style(style, num_styles: int) -> int:
    """A style index asked of a model of `num_styles` -> it, as an int;
    StyleError where that model cannot take it (NO_STYLE is always taken)."""
    if isinstance(style, bool) or not isinstance(style, (int, np.integer)):
        raise StyleError(f"style={style!r}: expected a style index (tokens/styles.py: style_id)")
    style = int(style)
    if style == NO_STYLE:
        return style
    known = model_styles(num_styles)
    if not known:
        raise StyleError(f"style {style_label(style)}: this run was trained without styles "
                         "(model.num_styles = 0): only 'any'")
    if not 0 <= style < len(known):
        raise StyleError(f"style {style_label(style)}: this model takes {', '.join(known)} (or 'any')")
    return style


def style_label(index: int) -> str:
    """A style index for a message: its name in quotes, or the number where it names none."""
    return repr(STYLES[index]) if 0 <= index < NUM_STYLES else str(index)
