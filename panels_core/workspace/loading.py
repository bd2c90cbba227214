"""Turn command-line paths into named tables: files, projector folders and stores."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["is_store_folder", "load_tables", "unique_name"]


def is_store_folder(path: Path) -> bool:
    """True when ``path`` is a Store folder (it holds a ``tables/`` folder)."""
    return path.is_dir() and (path / "tables").is_dir()


def unique_name(stem: str, taken: set[str] | dict[str, Any]) -> str:
    """``stem``, or ``stem-2``, ``stem-3`` ... when it is taken."""
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    return name


def load_tables(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """Tables by name for each path: a file or projector folder by its stem, and every
    version of every Store entry as ``name:vN``, oldest first."""
    from panels_core.sources import open_table
    from panels_core.store import Store

    tables: dict[str, Any] = {}
    for raw in paths:
        path = Path(raw)
        if is_store_folder(path):
            store = Store(path)
            for name in store.names():
                for version in store.versions(name):
                    tables[f"{name}:{version}"] = store.get(f"{name}:{version}")
            continue
        stem = (
            path.name.removesuffix(".table.json")
            if path.name.endswith(".table.json")
            else path.stem
        )
        tables[unique_name(stem or "table", tables)] = open_table(path)
    return tables
