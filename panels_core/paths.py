"""Paths that data names (a W&B image cell, a Store media reference, the page's Save box),
resolved only inside their own folder; and the one atomic text write of the project.

A path from a file or a page is relative, has no ``..``, and no symlink on the
way (the file or a folder) leads out of the folder; anything else is refused
with ``OutsideFolder`` before a byte is read or written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path, PurePath

__all__ = ["OutsideFolder", "is_inside", "resolve_inside", "write_text_atomic"]


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


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8) all at once: a temp file beside it, then a rename.

    The temp file is created with ``O_EXCL`` (never through a planted file or link). The
    new file keeps the mode of the file it replaces, else gets the mode ``open()`` gives
    (0666 less the umask). ``path``'s folder must exist.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            with contextlib.suppress(FileNotFoundError):
                os.fchmod(handle.fileno(), stat.S_IMODE(os.stat(path).st_mode))
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
