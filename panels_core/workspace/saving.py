"""Read and write workspace spec files: validated JSON in, atomic JSON out.

Reading a spec only parses JSON and validates it with pydantic: a spec is
data and can never run code. Writing goes to a temporary file in the target's
folder, flushed to disk, then renamed over the target (``os.replace``), so a
reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from panels_core.workspace.spec import TableSource, WorkspaceSpec

__all__ = ["SpecError", "read_spec", "relative_sources", "write_spec"]


class SpecError(ValueError):
    """A workspace file that cannot be read; the message names the file and the problem."""


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
            source = TableSource(path=Path(rel).as_posix())
        tables[name] = source
    return spec.model_copy(update={"tables": tables})


def write_spec(spec: WorkspaceSpec, path: str | os.PathLike[str]) -> Path:
    """Write ``spec`` to ``path`` atomically (temp file in the same folder + os.replace)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    spec = relative_sources(spec, folder.resolve())
    text = json.dumps(spec.to_dict(), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
