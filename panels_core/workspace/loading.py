"""Turn command-line paths and saved table sources into named tables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panels_core.workspace.spec import TableSource

__all__ = [
    "Loaded",
    "TableLoadError",
    "absolute_source",
    "display_name",
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


_SHARD = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}$")
_PLAIN_FOLDERS = frozenset({"", "data", "datasets", "downloads", "files", "parquet", "tmp"})


def display_name(path: str | os.PathLike[str]) -> str:
    """The name a file's table goes by: its stem (``x.table.json`` gives ``x``), and for a
    Hugging Face-style shard ``train-00000-of-00003.parquet`` its split, after the dataset's
    folder when that says more (``mnist/data/train-...`` gives ``mnist/train``)."""
    path = Path(path)
    if path.is_dir():  # a dataset or projector folder: its name, dots and all
        return path.name or "table"
    if path.name.endswith(".table.json"):
        return path.name.removesuffix(".table.json") or "table"
    shard = _SHARD.match(path.stem)
    if shard is None:
        return path.stem or "table"
    folder = path.absolute().parent
    if folder.name.lower() == "data":
        folder = folder.parent
    if folder.name.lower() in _PLAIN_FOLDERS:
        return shard["split"]
    return f"{folder.name}/{shard['split']}"


def load_sources(
    paths: Sequence[str | os.PathLike[str]],
    *,
    delimiter: str | None = None,
    failed: dict[str, str] | None = None,
    strict: bool = False,
) -> dict[str, Loaded]:
    """Every table of ``paths`` by name, with its source: a file by its ``display_name``,
    a projector folder by its stem (one listing several embeddings: each embedding by its
    ``tensor_name``), and every version of every Store entry as ``name:vN``, oldest first.

    ``delimiter`` forces the delimiter of the CSV files among ``paths``. With ``failed``
    given, a path (or one embedding of a projector folder) that cannot be opened is
    recorded there (its file name: why, naming the file) and the others still open;
    without it, the first failure raises.
    ``strict`` refuses a table with a cell it could read only in part (``open_table``).
    """
    loaded: dict[str, Loaded] = {}
    for raw in paths:
        path = Path(raw)
        try:
            _load_path(path, loaded, delimiter, failed, strict)
        except Exception as exc:
            _record_failure(failed, path.name, path, exc)
    return loaded


def _record_failure(failed: dict[str, str] | None, key: str, path: Path, exc: Exception) -> None:
    """Record why ``path`` failed under ``key`` in ``failed``; re-raise without ``failed``."""
    from panels_core.data.sources.common import exception_text

    if failed is None:
        raise exc
    why = exception_text(exc)
    if str(path) not in why:
        why = f"cannot open `{path}`: {why}"
    failed[unique_name(key, failed)] = why


def _load_path(
    path: Path,
    loaded: dict[str, Loaded],
    delimiter: str | None,
    failed: dict[str, str] | None,
    strict: bool = False,
) -> None:
    """Add the tables of one path (a file, projector folder or Store folder) to ``loaded``."""
    from panels_core.data.dataset import is_glob
    from panels_core.data.sources import detect_format, open_table, projector_embeddings
    from panels_core.data.store import Store

    if is_glob(path) and not path.exists():  # a quoted pattern of Parquet files
        table = open_table(str(path), strict=strict)
        name = unique_name(table.parquet_dataset.name, loaded)
        loaded[name] = Loaded(table, TableSource(path=str(path.resolve())))
        return
    if not path.exists():
        raise TableLoadError(f"cannot open `{path}`: no such file or folder")
    if is_store_folder(path):
        store = Store(path)
        refs = [f"{name}:{version}" for name in store.names() for version in store.versions(name)]
        for ref in refs:
            loaded[ref] = Loaded(store.get(ref), TableSource(store=ref), path.resolve())
        return
    fmt = detect_format(path)
    embeddings = projector_embeddings(path) if fmt == "tensorboard" else []
    if len(embeddings) > 1:
        for tensor_name in embeddings:
            try:
                table = open_table(path, tensor_name=tensor_name, strict=strict)
            except Exception as exc:
                _record_failure(failed, f"{path.name}: {tensor_name}", path, exc)
                continue
            source = TableSource(path=str(path.resolve()), tensor_name=tensor_name)
            loaded[unique_name(tensor_name, loaded)] = Loaded(table, source)
        return
    options = {"delimiter": delimiter} if delimiter and fmt == "csv" else {}
    table = open_table(path, strict=strict, **options)
    name = unique_name(display_name(path), loaded)
    loaded[name] = Loaded(table, TableSource(path=str(path.resolve())))


def load_tables(paths: Sequence[str | os.PathLike[str]], strict: bool = False) -> dict[str, Any]:
    """Tables by name for each path (see ``load_sources``)."""
    return {name: item.table for name, item in load_sources(paths, strict=strict).items()}


def absolute_source(
    source: TableSource, base_dir: str | os.PathLike[str] | None = None
) -> TableSource:
    """``source`` with a relative path made absolute against ``base_dir`` (default: cwd)."""
    if source.path is None or Path(source.path).is_absolute():
        return source
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return source.model_copy(update={"path": str((base / source.path).resolve())})


def open_source(
    name: str,
    source: TableSource,
    base_dir: str | os.PathLike[str] | None = None,
    stores: Sequence[str | os.PathLike[str]] = (),
    strict: bool = False,
) -> Loaded:
    """Open one saved table source: a path (relative to ``base_dir``) or a Store reference
    looked up in ``stores`` (then in ``base_dir`` and ``base_dir/store``); ``strict`` as
    ``open_table`` takes it."""
    from panels_core.data.dataset import is_glob
    from panels_core.data.sources import open_table
    from panels_core.data.store import Store

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if source.path is not None:
        path = Path(source.path)
        path = path if path.is_absolute() else base / path
        if not path.exists() and not is_glob(path):
            raise TableLoadError(f"table `{name}`: no such file or folder: {path}")
        options = {"tensor_name": source.tensor_name} if source.tensor_name else {}
        resolved = source.model_copy(update={"path": str(path.resolve())})
        try:
            return Loaded(open_table(path, strict=strict, **options), resolved)
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
