"""Turn command-line paths and saved table sources into named tables."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panels_core.workspace.spec import TableSource

__all__ = [
    "Loaded",
    "TableLoadError",
    "absolute_source",
    "is_store_folder",
    "load_sources",
    "load_tables",
    "open_source",
    "unique_name",
]


class TableLoadError(ValueError):
    """A table of a workspace that cannot be opened; the message names it and the file."""


@dataclass(frozen=True)
class Loaded:
    """One opened table: the object, where it came from, and its Store folder if any."""

    table: Any
    source: TableSource
    store_folder: Path | None = None


def is_store_folder(path: Path) -> bool:
    """True when ``path`` is a Store folder (it holds a ``tables/`` folder)."""
    return path.is_dir() and (path / "tables").is_dir()


def unique_name(stem: str, taken: set[str] | Mapping[str, Any]) -> str:
    """``stem``, or ``stem-2``, ``stem-3`` ... when it is taken."""
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    return name


def _stem(path: Path) -> str:
    if path.is_dir():  # a dataset or projector folder: its name, dots and all
        return path.name or "table"
    if path.name.endswith(".table.json"):
        return path.name.removesuffix(".table.json")
    return path.stem or "table"


def load_sources(
    paths: Sequence[str | os.PathLike[str]],
    *,
    delimiter: str | None = None,
    failed: dict[str, str] | None = None,
) -> dict[str, Loaded]:
    """Every table of ``paths`` by name, with its source: a file or projector folder by
    its stem, and every version of every Store entry as ``name:vN``, oldest first.

    ``delimiter`` forces the delimiter of the CSV files among ``paths``. With ``failed``
    given, a path that cannot be opened is recorded there (its file name: why, naming
    the file) and the other paths still open; without it, the first failure raises.
    """
    from panels_core.data.sources.common import exception_text

    loaded: dict[str, Loaded] = {}
    for raw in paths:
        path = Path(raw)
        try:
            loaded.update(_load_path(path, loaded, delimiter))
        except Exception as exc:
            if failed is None:
                raise
            why = exception_text(exc)
            if str(path) not in why:
                why = f"cannot open `{path}`: {why}"
            failed[unique_name(path.name, failed)] = why
    return loaded


def _load_path(path: Path, taken: Mapping[str, Any], delimiter: str | None) -> dict[str, Loaded]:
    """The tables of one path (a file, projector folder or Store folder) by name."""
    from panels_core.data.dataset import is_glob
    from panels_core.data.sources import detect_format, open_table
    from panels_core.data.store import Store

    if is_glob(path) and not path.exists():  # a quoted pattern of Parquet files
        table = open_table(str(path))
        name = unique_name(table.parquet_dataset.name, taken)
        return {name: Loaded(table, TableSource(path=str(path.resolve())))}
    if not path.exists():
        raise TableLoadError(f"cannot open `{path}`: no such file or folder")
    if is_store_folder(path):
        store = Store(path)
        refs = [f"{name}:{version}" for name in store.names() for version in store.versions(name)]
        return {ref: Loaded(store.get(ref), TableSource(store=ref), path.resolve()) for ref in refs}
    options = {"delimiter": delimiter} if delimiter and detect_format(path) == "csv" else {}
    table = open_table(path, **options)
    return {unique_name(_stem(path), taken): Loaded(table, TableSource(path=str(path.resolve())))}


def load_tables(paths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """Tables by name for each path (see ``load_sources``)."""
    return {name: item.table for name, item in load_sources(paths).items()}


def absolute_source(
    source: TableSource, base_dir: str | os.PathLike[str] | None = None
) -> TableSource:
    """``source`` with a relative path made absolute against ``base_dir`` (default: cwd)."""
    if source.path is None or Path(source.path).is_absolute():
        return source
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return TableSource(path=str((base / source.path).resolve()))


def open_source(
    name: str,
    source: TableSource,
    base_dir: str | os.PathLike[str] | None = None,
    stores: Sequence[str | os.PathLike[str]] = (),
) -> Loaded:
    """Open one saved table source: a path (relative to ``base_dir``) or a Store reference
    looked up in ``stores`` (then in ``base_dir`` and ``base_dir/store``)."""
    from panels_core.data.dataset import is_glob
    from panels_core.data.sources import open_table
    from panels_core.data.store import Store

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if source.path is not None:
        path = Path(source.path)
        path = path if path.is_absolute() else base / path
        if not path.exists() and not is_glob(path):
            raise TableLoadError(f"table `{name}`: no such file or folder: {path}")
        try:
            return Loaded(open_table(path), TableSource(path=str(path.resolve())))
        except Exception as exc:
            raise TableLoadError(f"table `{name}`: cannot open {path}: {exc}") from exc
    assert source.store is not None
    ref = source.store if ":" in source.store else f"{source.store}:latest"
    folders = [Path(s) for s in stores] + [base, base / "store"]
    for folder in folders:
        if not is_store_folder(folder):
            continue
        store = Store(folder)
        if ref in store:
            return Loaded(store.get(ref), source, folder.resolve())
    looked = ", ".join(str(f) for f in folders if is_store_folder(f)) or "none found"
    raise TableLoadError(
        f"table `{name}` is the Store reference `{ref}`, which no store holds (stores: {looked}); "
        "give its store folder on the command line: panels serve STORE --workspace ws.json"
    )
