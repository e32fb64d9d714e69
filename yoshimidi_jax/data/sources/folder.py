"""A folder of MIDI files, searched recursively."""

from __future__ import annotations

import os

from yoshimidi_jax.data.sources.base import SourceFiles

MIDI_SUFFIXES = (".mid", ".midi", ".kar")


def is_midi_name(name: str) -> bool:
    """True if a file name ends in .mid, .midi or .kar (any case)."""
    return name.lower().endswith(MIDI_SUFFIXES)


def _file_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of what `path` points to, or None if it cannot be stat'ed
    (a broken symlink, a file removed meanwhile, no permission)."""
    try:
        st = os.stat(path)  # follows symlinks
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _walk_candidates(folder: str) -> tuple[list[str], list[dict]]:
    """Paths under `folder` with a MIDI suffix, following symlinked folders
    but visiting each real folder once (so a symlink loop cannot recurse).

    Returns (paths in walk order, failures for walk errors)."""
    failed: list[dict] = []
    seen_dirs: set[tuple[int, int]] = set()
    found: list[str] = []

    def on_error(err: OSError) -> None:
        failed.append({"path": err.filename or folder, "reason": "unreadable_dir", "detail": str(err)})

    for dirpath, dirnames, filenames in os.walk(folder, onerror=on_error, followlinks=True):
        dir_id = _file_id(dirpath)
        if dir_id is None or dir_id in seen_dirs:
            dirnames[:] = []  # a loop or a second path to a folder already walked
            continue
        seen_dirs.add(dir_id)
        dirnames.sort()  # deterministic choice of which path to a folder wins
        found.extend(os.path.join(dirpath, name) for name in sorted(filenames) if is_midi_name(name))
    return found, failed


def _dedupe_files(paths: list[str]) -> tuple[list[str], list[dict]]:
    """Drop broken links, and second paths (links) to a file already listed:
    a duplicate could otherwise end up in both the train and the eval split."""
    kept: list[str] = []
    failed: list[dict] = []
    seen: dict[tuple[int, int], str] = {}
    for path in sorted(paths):
        file_id = _file_id(path)
        if file_id is None:
            failed.append({"path": path, "reason": "unreadable_file", "detail": "cannot stat (broken symlink?)"})
        elif file_id in seen:
            failed.append({"path": path, "reason": "duplicate_file", "detail": f"same file as {seen[file_id]}"})
        else:
            seen[file_id] = path
            kept.append(path)
    return kept, failed


def list_midi_files(folder: str) -> SourceFiles:
    """All MIDI files (.mid/.midi/.kar, any case) under `folder`, recursively.

    Paths are `folder` joined with the relative path (symlinks are not
    resolved in the returned names), sorted by string. Symlinked folders are
    followed, each real folder once. Broken links, unreadable folders and
    second links to the same file are reported in `failed`.

    Raises FileNotFoundError if `folder` does not exist, NotADirectoryError if
    it is not a folder, ValueError if it holds no MIDI file.
    """
    if not os.path.exists(folder):
        raise FileNotFoundError(f"MIDI folder not found: {folder!r}")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"MIDI folder is not a directory: {folder!r}")
    candidates, walk_failed = _walk_candidates(folder)
    paths, file_failed = _dedupe_files(candidates)
    if not paths:
        raise ValueError(
            f"no MIDI files (*{', *'.join(MIDI_SUFFIXES)}) found under {folder!r}"
            + (f" ({len(walk_failed) + len(file_failed)} unreadable entries)" if walk_failed or file_failed else "")
        )
    return SourceFiles(paths=tuple(paths), failed=tuple(walk_failed + file_failed), root=folder)
