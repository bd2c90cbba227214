"""Read and write workspace spec files: validated JSON in, atomic JSON out.

Reading a spec only parses JSON and validates it with pydantic: a spec is
data and can never run code. Writing goes to a temporary file in the target's
folder, flushed to disk, then renamed over the target (``os.replace``), so a
reader sees the old file or the new one, never half of one; an overwritten file
keeps its mode.

What a page may ask to write is confined (``confined_target``): a ``*.json``
file inside the workspace folder, reached without ``..`` and without a
symlink that leads out of it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from panels_core.paths import OutsideFolder, is_inside, resolve_inside, write_text_atomic
from panels_core.workspace.spec import WorkspaceSpec

__all__ = [
    "SaveRefused",
    "SpecError",
    "confined_target",
    "read_spec",
    "relative_sources",
    "write_spec",
]


class SpecError(ValueError):
    """A workspace file that cannot be read; the message names the file and the problem."""


class SaveRefused(ValueError):
    """A save a page asked for that would write outside the workspace folder, or not JSON."""


def read_spec(path: str | os.PathLike[str]) -> WorkspaceSpec:
    """The WorkspaceSpec in a JSON file (a newer schema version is refused with a message)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read workspace {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"workspace {path} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
            "a workspace file is JSON written by `panels serve` or Workspace.save"
        ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"workspace {path} is not JSON: {exc}") from exc
    except RecursionError:
        raise SpecError(
            f"workspace {path} is nested too deeply to read (lists or objects inside each "
            "other hundreds of levels deep); it is not a workspace file"
        ) from None
    if not isinstance(data, dict):
        raise SpecError(f"workspace {path} must hold a JSON object, not {type(data).__name__}")
    try:
        return WorkspaceSpec.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'workspace'}: {e['msg']}" for e in exc.errors()
        )
        raise SpecError(f"workspace {path} is not valid: {details}") from exc


def relative_sources(spec: WorkspaceSpec, folder: str | os.PathLike[str]) -> WorkspaceSpec:
    """The spec with absolute table paths written relative to ``folder``."""
    tables = {}
    for name, source in spec.tables.items():
        if source.path is not None and os.path.isabs(source.path):
            try:
                rel = os.path.relpath(source.path, folder)
            except ValueError:  # another drive
                rel = source.path
            source = source.model_copy(update={"path": Path(rel).as_posix()})
        tables[name] = source
    return spec.model_copy(update={"tables": tables})


def confined_target(text: str, root: str | os.PathLike[str]) -> Path:
    """The file ``text`` names inside the folder ``root``; SaveRefused if it is not one.

    ``text`` is relative to ``root`` (or absolute inside it) and names a ``*.json``
    file; ``..`` is refused, and so is any symlink (the file or a folder on the
    way) that leads out of ``root``.
    """
    real_root = Path(root).resolve()
    text = text.strip()
    hint = f"give a .json file name inside the workspace folder {real_root}"
    if not text or "\0" in text:
        raise SaveRefused(f"no file name given; {hint}")
    given = Path(text)
    if given.suffix.lower() != ".json" or not given.stem:
        raise SaveRefused(f"`{text}` is not a .json file; {hint}")
    relative = text
    if given.is_absolute() and ".." not in given.parts:
        bases = (real_root, Path(os.path.abspath(root)))
        base = next((b for b in bases if given.is_relative_to(b)), None)
        if base is None:
            raise SaveRefused(f"`{text}` is outside the workspace folder; {hint}")
        relative = str(given.relative_to(base))
    try:
        return resolve_inside(real_root, relative, "the workspace folder")
    except OutsideFolder as exc:
        raise SaveRefused(f"{exc}; {hint}") from exc


def write_spec(
    spec: WorkspaceSpec,
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``spec`` to ``path`` atomically (temp file in the same folder + os.replace).

    With ``root``, ``path`` must be a file ``confined_target`` accepts, and the
    folders it creates are checked again before anything is written.
    """
    path = Path(path) if root is None else confined_target(str(path), root)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    if root is not None and not is_inside(folder, root):  # changed since the check
        raise SaveRefused(f"`{path}` leads out of the workspace folder {root}")
    spec = relative_sources(spec, folder.resolve())
    text = json.dumps(spec.to_dict(), indent=2) + "\n"
    write_text_atomic(path, text)
    return path
