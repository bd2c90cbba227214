"""Paths that data names (a W&B image cell, a Store media reference, the page's Save box),
resolved only inside their own folder.

A path from a file or a page is relative, has no ``..``, and no symlink on the
way (the file or a folder) leads out of the folder; anything else is refused
with ``OutsideFolder`` before a byte is read or written.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath

__all__ = ["OutsideFolder", "is_inside", "resolve_inside"]


class OutsideFolder(ValueError):
    """A path that would leave its folder; the message says how (``..``, absolute, symlink)."""


def is_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path``, symlinks followed, is ``folder`` or below it (``folder`` resolved too)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def resolve_inside(folder: str | os.PathLike[str], relative: str, what: str | None = None) -> Path:
    """``folder / relative``, when that stays inside ``folder``; else OutsideFolder.

    ``what`` names the folder in the message (default: the folder's path).
    """
    what = what or f"`{folder}`"
    if not relative or "\0" in relative:
        raise OutsideFolder(f"an empty path cannot name a file in {what}")
    given = PurePath(relative)
    if given.is_absolute():
        raise OutsideFolder(f"`{relative}` is an absolute path, not a file in {what}")
    if ".." in given.parts:
        raise OutsideFolder(f"`{relative}` contains `..`, which could leave {what}")
    candidate = Path(folder) / given
    if not is_inside(candidate, folder):
        raise OutsideFolder(f"`{relative}` leads out of {what} through a symlink")
    return candidate
