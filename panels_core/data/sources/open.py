"""``open_table``: pick the reader for a path by its suffix (or magic bytes) and open it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from panels_core.data.dataset import PARQUET_SUFFIXES, has_parquet_files, is_glob
from panels_core.data.sources.arrow_ipc import read_arrow_ipc
from panels_core.data.sources.csv_reader import read_csv
from panels_core.data.sources.tensorboard_tsv import (
    METADATA_NAMES,
    PROJECTOR_CONFIG,
    TENSOR_NAMES,
    read_tensorboard,
)
from panels_core.data.sources.wandb_json import read_wandb
from panels_core.data.table import JoinedTable, Table

__all__ = ["FORMATS", "Format", "detect_format", "open_table"]


Format = Literal["parquet", "csv", "arrow", "wandb", "tensorboard"]

FORMATS: dict[str, str] = {
    "parquet": (
        "Parquet (.parquet, .pq), or a dataset of Parquet files: a folder (Hive partition "
        "folders such as split=train/ become columns), a glob, or a list of files"
    ),
    "csv": "CSV (.csv, .tsv, .txt)",
    "arrow": "Arrow IPC / Feather (.arrow, .feather, .ipc, .arrows)",
    "wandb": "W&B table export (.table.json, .joined-table.json, .json)",
    "tensorboard": (
        "TensorBoard projector data (a folder with tensors.tsv [+ metadata.tsv], "
        "a tensors.tsv file, or projector_config.pbtxt with .tsv or .bytes tensors and sprites)"
    ),
}
"""Every format ``open_table`` reads, with the suffixes that select it."""

_SUFFIXES: dict[str, Format] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".csv": "csv",
    ".txt": "csv",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".arrows": "arrow",
    ".json": "wandb",
    ".pbtxt": "tensorboard",
}


def _supported() -> str:
    return "; ".join(FORMATS.values())


def open_table(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    dtypes: Mapping[str, Any] | None = None,
    format: Format | None = None,
    strict: bool = False,
    **options: Any,
) -> Table | JoinedTable:
    """Open a table file (or TensorBoard projector folder) as a typed Table.

    ``dtypes`` overrides column types (``{"label": "category"}``); ``format``
    forces a reader (``"parquet"``, ``"csv"``, ``"arrow"``, ``"wandb"``,
    ``"tensorboard"``) instead of guessing from the suffix. Other options go to
    the reader: CSV takes ``delimiter``; W&B takes ``missing_media="error" |
    "null"``; TensorBoard takes ``metadata`` (a metadata.tsv path) and
    ``tensor_name`` (which embedding of a projector config; required when it lists
    several, see ``projector_embeddings``). A pair of paths
    ``(tensors.tsv, metadata.tsv)`` opens TensorBoard data.

    A W&B cell whose box or mask layer does not fit its image loses that layer (the
    table's ``notes`` say which rows); ``strict=True`` refuses such a table instead.

    A folder of Parquet files (searched recursively), a glob (``preds/**/*.parquet``) or
    a list of them opens as one dataset table: Hive partition folders become columns.
    """
    if _is_parquet_list(path) or (isinstance(path, str | os.PathLike) and _is_parquet_glob(path)):
        _check_options("parquet", options, set())
        return Table.from_parquet_dataset(path, dtypes=dtypes)  # type: ignore[arg-type]
    if isinstance(path, list | tuple):
        if len(path) != 2:
            raise ValueError(
                "open_table: a sequence of paths must be a (tensors.tsv, metadata.tsv) pair, "
                f"got {len(path)} paths"
            )
        tensors, metadata = (Path(p) for p in path)
        _check_options("tensorboard", options, set())
        return read_tensorboard(tensors, metadata=metadata, dtypes=dtypes)
    path = Path(path)
    _check_exists(path)
    chosen = format or detect_format(path)
    if chosen not in FORMATS:
        raise ValueError(
            f"open_table: unknown format {chosen!r}; choose one of {', '.join(FORMATS)}"
        )
    if chosen == "parquet":
        _check_options(chosen, options, set())
        if path.is_dir():
            return Table.from_parquet_dataset(path, dtypes=dtypes)
        return Table.from_parquet(path, dtypes=dtypes)
    if chosen == "csv":
        _check_options(chosen, options, {"delimiter"})
        return read_csv(path, dtypes=dtypes, **options)
    if chosen == "arrow":
        _check_options(chosen, options, set())
        return read_arrow_ipc(path, dtypes=dtypes)
    if chosen == "wandb":
        _check_options(chosen, options, {"missing_media"})
        return read_wandb(path, dtypes=dtypes, strict=strict, **options)
    _check_options(chosen, options, {"metadata", "tensor_name"})
    return read_tensorboard(path, dtypes=dtypes, **options)


def _check_exists(path: Path) -> None:
    """FileNotFoundError naming ``path`` and what its folder holds, when it is not there."""
    if path.exists():
        return
    hint = ""
    if path.parent.is_dir():
        siblings = sorted(p.name for p in path.parent.iterdir())[:10]
        hint = f"; the folder `{path.parent}` holds: {', '.join(siblings) or 'nothing'}"
    raise FileNotFoundError(f"cannot open `{path}`: no such file or folder{hint}")


def _is_parquet_list(path: Any) -> bool:
    """A list of Parquet files (by suffix): a dataset, not a TensorBoard pair."""
    return (
        isinstance(path, list | tuple)
        and bool(path)
        and all(Path(p).suffix.lower() in PARQUET_SUFFIXES for p in path)
    )


def _is_parquet_glob(path: str | os.PathLike[str]) -> bool:
    """A glob of Parquet files (that is not the name of an existing file)."""
    return is_glob(path) and not Path(path).exists()


def _check_options(fmt: str, options: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "no options"
        raise TypeError(
            f"open_table: the {fmt} reader does not take {', '.join(unknown)}; it takes {accepted}"
        )


def _magic_format(path: Path) -> Format | None:
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith((b"ARROW1", b"FEA1")) or head.startswith(b"\xff\xff\xff\xff"):
        return "arrow"
    return None


def detect_format(path: str | os.PathLike[str]) -> Format:
    """The reader ``open_table`` picks for an existing path (by suffix, else magic bytes);
    ValueError, saying what is read, when none fits."""
    path = Path(path)
    if path.is_dir():
        if (path / PROJECTOR_CONFIG).is_file() or any(
            (path / name).is_file() for name in TENSOR_NAMES
        ):
            return "tensorboard"
        if has_parquet_files(path):
            return "parquet"
        names = sorted(p.name for p in path.iterdir())[:10]
        raise ValueError(
            f"cannot open folder `{path}`: it has no Parquet files, {PROJECTOR_CONFIG} or "
            f"tensors.tsv (it holds: {', '.join(names) or 'nothing'}); pass one table file "
            "instead. "
            f"Supported formats are {_supported()}"
        )
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        if name in TENSOR_NAMES:
            return "tensorboard"
        if name in METADATA_NAMES:
            raise ValueError(
                f"cannot open `{path}` alone: a TensorBoard metadata file needs its vectors; "
                "open the folder, or the pair (tensors.tsv, metadata.tsv)"
            )
        return "csv"
    found = _SUFFIXES.get(suffix)
    if found is not None:
        return found
    magic = _magic_format(path)
    if magic is not None:
        return magic
    raise ValueError(
        f"cannot open `{path}`: `{suffix or path.name}` files are not a format typed-panels "
        f"reads; supported formats are {_supported()}. Convert the file (for a spreadsheet: "
        "pandas.read_excel(path).to_parquet('data.parquet')), or pass format=... if the "
        "suffix is misleading"
    )
