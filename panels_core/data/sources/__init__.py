"""Readers: open a file or folder of table data as a typed Table.

``open_table(path)`` picks the reader by the path's suffix (or its magic bytes
when the suffix says nothing): Parquet (lazy), CSV, Arrow IPC / Feather
(memory-mapped), a W&B ``*.table.json`` / ``*.joined-table.json`` export, and
a TensorBoard projector folder (``tensors.tsv`` + ``metadata.tsv``, or a
``projector_config.pbtxt``). Every failure names the file, and the line, row
or column, and says what to do.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.ipc as ipc

from panels_core.data.media import Classes, Image
from panels_core.data.table import JoinedTable, Table, build_column, column_type
from panels_core.paths import OutsideFolder, resolve_inside
from panels_core.types import (
    AnyType,
    BooleanType,
    ClassLabel,
    EmbeddingType,
    ImageType,
    ListType,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TimestampType,
    UnknownType,
    parse_type,
    strip_optional,
)

__all__ = [
    "FORMATS",
    "open_table",
    "read_arrow_ipc",
    "read_csv",
    "read_tensorboard",
    "read_wandb",
    "wandb_type_to_datatype",
]

Format = Literal["parquet", "csv", "arrow", "wandb", "tensorboard"]

FORMATS: dict[str, str] = {
    "parquet": "Parquet (.parquet, .pq)",
    "csv": "CSV (.csv, .tsv, .txt)",
    "arrow": "Arrow IPC / Feather (.arrow, .feather, .ipc, .arrows)",
    "wandb": "W&B table export (.table.json, .joined-table.json, .json)",
    "tensorboard": (
        "TensorBoard projector data (a folder with tensors.tsv [+ metadata.tsv], "
        "a tensors.tsv file, or projector_config.pbtxt)"
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
_TENSOR_NAMES = ("tensors.tsv", "vectors.tsv", "vecs.tsv")
_METADATA_NAMES = ("metadata.tsv", "meta.tsv")
_PROJECTOR_CONFIG = "projector_config.pbtxt"


def _supported() -> str:
    return "; ".join(FORMATS.values())


# --------------------------------------------------------------------------- open_table


def open_table(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    dtypes: Mapping[str, Any] | None = None,
    format: Format | None = None,
    **options: Any,
) -> Table | JoinedTable:
    """Open a table file (or TensorBoard projector folder) as a typed Table.

    ``dtypes`` overrides column types (``{"label": "category"}``); ``format``
    forces a reader (``"parquet"``, ``"csv"``, ``"arrow"``, ``"wandb"``,
    ``"tensorboard"``) instead of guessing from the suffix. Other options go to
    the reader: CSV takes ``delimiter``; W&B takes ``missing_media="error" |
    "null"``; TensorBoard takes ``metadata`` (a metadata.tsv path) and
    ``tensor_name`` (which embedding of a projector config). A pair of paths
    ``(tensors.tsv, metadata.tsv)`` opens TensorBoard data.
    """
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
    if not path.exists():
        hint = ""
        if path.parent.is_dir():
            siblings = sorted(p.name for p in path.parent.iterdir())[:10]
            hint = f"; the folder `{path.parent}` holds: {', '.join(siblings) or 'nothing'}"
        raise FileNotFoundError(f"cannot open `{path}`: no such file or folder{hint}")
    chosen = format or _detect_format(path)
    if chosen not in FORMATS:
        raise ValueError(
            f"open_table: unknown format {chosen!r}; choose one of {', '.join(FORMATS)}"
        )
    if chosen == "parquet":
        _check_options(chosen, options, set())
        return Table.from_parquet(path, dtypes=dtypes)
    if chosen == "csv":
        _check_options(chosen, options, {"delimiter"})
        return read_csv(path, dtypes=dtypes, **options)
    if chosen == "arrow":
        _check_options(chosen, options, set())
        return read_arrow_ipc(path, dtypes=dtypes)
    if chosen == "wandb":
        _check_options(chosen, options, {"missing_media"})
        return read_wandb(path, dtypes=dtypes, **options)
    _check_options(chosen, options, {"metadata", "tensor_name"})
    return read_tensorboard(path, dtypes=dtypes, **options)


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


def _detect_format(path: Path) -> Format:
    if path.is_dir():
        if (path / _PROJECTOR_CONFIG).is_file() or any(
            (path / name).is_file() for name in _TENSOR_NAMES
        ):
            return "tensorboard"
        names = sorted(p.name for p in path.iterdir())[:10]
        raise ValueError(
            f"cannot open folder `{path}`: it has no {_PROJECTOR_CONFIG} or tensors.tsv "
            f"(it holds: {', '.join(names) or 'nothing'}); pass one table file instead. "
            f"Supported formats are {_supported()}"
        )
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        if name in _TENSOR_NAMES:
            return "tensorboard"
        if name in _METADATA_NAMES:
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


# --------------------------------------------------------------------------- CSV


def _dtypes_to_csv_types(dtypes: Mapping[str, Any] | None) -> dict[str, pa.DataType]:
    """Arrow types for CSV columns whose override settles how to parse them."""
    arrow: dict[str, pa.DataType] = {}
    for name, wanted in (dtypes or {}).items():
        kind = strip_optional(wanted if hasattr(wanted, "kind") else parse_type(wanted)).kind
        if kind in ("string", "category"):
            arrow[name] = pa.string()
        elif kind == "number":
            arrow[name] = pa.float64()
    return arrow


_CONVERSION = re.compile(
    r"In CSV column #(\d+): .*?conversion error to (\w+): invalid value '(.*)'"
)


def read_csv(
    path: str | os.PathLike[str],
    *,
    dtypes: Mapping[str, Any] | None = None,
    delimiter: str | None = None,
) -> Table:
    """A CSV file (``.tsv``: tab-separated) as a Table; a malformed line raises naming its number."""
    path = Path(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    _check_text(path)
    convert = pacsv.ConvertOptions(column_types=_dtypes_to_csv_types(dtypes))
    parse = pacsv.ParseOptions(delimiter=delimiter)
    try:
        arrow = pacsv.read_csv(path, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise _csv_error(path, exc, parse, convert) from exc
    for field in arrow.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise ValueError(
                f"cannot read CSV `{path}`: column `{field.name}` holds text that is not UTF-8; "
                f"{_SAVE_UTF8}"
            )
    try:
        return Table.from_arrow(arrow, dtypes=dtypes, rename=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise type(exc)(f"`{path}`: {_message(exc)}") from exc


_SNIFF_BYTES = 1 << 16
_SAVE_UTF8 = "save the file as UTF-8 (a spreadsheet's \"CSV UTF-8\") and open it again"


def _check_text(path: Path) -> None:
    """Refuse a file whose first bytes are not UTF-8 text (binary data, another encoding)."""
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if b"\0" in head:
        raise ValueError(
            f"cannot read CSV `{path}`: it is binary data, not text (byte {head.index(0)} is "
            "NUL); open it with the reader for its format (format=...), or export it as CSV again"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = len(head) == _SNIFF_BYTES and exc.start >= len(head) - 3
        if not (cut and exc.reason == "unexpected end of data"):
            raise ValueError(
                f"cannot read CSV `{path}`: it is not UTF-8 text (byte {exc.start}: "
                f"{exc.reason}); {_SAVE_UTF8}, or open a binary file with the reader for its "
                "format (format=...)"
            ) from None


def _csv_error(
    path: Path, exc: pa.ArrowInvalid, parse: pacsv.ParseOptions, convert: pacsv.ConvertOptions
) -> Exception:
    """A clear error for a CSV file pyarrow could not read."""
    text = str(exc)
    if "Empty CSV file" in text:
        return ValueError(f"cannot read CSV `{path}`: the file is empty; it needs a header row")
    match = _CONVERSION.search(text)
    if match:
        names = _csv_header(path, parse.delimiter)
        index = int(match.group(1))
        column = names[index] if index < len(names) else f"#{index}"
        return ValueError(
            f"cannot read CSV `{path}`: column `{column}` cannot be read as {match.group(2)}: "
            f"it holds {match.group(3)!r}; clean the column, or pass "
            f'dtypes={{"{column}": "string"}} to read it as text'
        )
    bad: list[Any] = []

    def record(row: Any) -> str:
        bad.append(row)
        return "error"

    serial = pacsv.ParseOptions(delimiter=parse.delimiter, invalid_row_handler=record)
    with contextlib.suppress(pa.ArrowInvalid):
        pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False),
            parse_options=serial,
            convert_options=convert,
        )
    if bad:
        row = bad[0]
        where = f"line {row.number}" if row.number is not None else "a line"
        return ValueError(
            f"cannot read CSV `{path}`: {where} has {row.actual_columns} values but the header "
            f"names {row.expected_columns} columns ({row.text[:60]!r}); fix or remove that line, "
            "quote values that hold the delimiter, or pass delimiter=... if the file uses "
            "another separator"
        )
    return ValueError(f"cannot read CSV `{path}`: {text}")


def _csv_header(path: Path, delimiter: str) -> list[str]:
    """The column names of a CSV file's first line."""
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        return next(csv.reader(f, delimiter=delimiter), [])


def _message(exc: BaseException) -> str:
    """An exception's text without KeyError's added quotes."""
    return str(exc.args[0]) if exc.args else str(exc)


# --------------------------------------------------------------------------- Arrow IPC


def read_arrow_ipc(
    path: str | os.PathLike[str], *, dtypes: Mapping[str, Any] | None = None
) -> Table:
    """An Arrow IPC file or stream, or a Feather file, memory-mapped (no copy of its buffers)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(8)
        if head.startswith(b"FEA1"):
            arrow = feather.read_table(path, memory_map=True)
        else:
            source = pa.memory_map(str(path), "r")
            if head.startswith(b"ARROW1"):
                arrow = ipc.open_file(source).read_all()
            else:
                arrow = ipc.open_stream(source).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(
            f"cannot read Arrow IPC / Feather file `{path}` ({exc}); it may be truncated or in "
            "another format: write it again (pyarrow.feather.write_feather), or open it with the "
            "reader for its format"
        ) from exc
    return Table.from_arrow(arrow, dtypes=dtypes, rename=True)


# --------------------------------------------------------------------------- W&B exports


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (malformed parts of a type)."""
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    """``value`` when it is a JSON list, else an empty one."""
    return value if isinstance(value, list) else []


def wandb_type_to_datatype(wb_type: Mapping[str, Any] | None) -> Any:
    """Our DataType for a W&B ``wb_type`` dict (``{"wb_type": "number"}`` -> NumberType()).

    Malformed parts (a list where an object belongs, ...) give ``unknown``, not an error."""
    if not isinstance(wb_type, Mapping):
        return UnknownType()
    name = wb_type.get("wb_type")
    params = _mapping(wb_type.get("params"))
    if name == "number":
        return NumberType()
    if name == "string":
        return StringType()
    if name == "boolean":
        return BooleanType()
    if name == "timestamp":
        return TimestampType()
    if name == "none":
        return OptionalType(inner=UnknownType())
    if name == "any":
        return AnyType()
    if name == "union":
        members = [wandb_type_to_datatype(m) for m in _items(params.get("allowed_types"))]
        nullable = any(isinstance(m, OptionalType) for m in members)
        others = [m for m in members if not isinstance(m, OptionalType)]
        inner: Any = others[0] if len(others) == 1 else (AnyType() if others else UnknownType())
        return OptionalType(inner=inner) if nullable else inner
    if name == "list":
        item = wandb_type_to_datatype(params.get("element_type"))
        length = params.get("length")
        if isinstance(strip_optional(item), NumberType) and isinstance(length, int) and length > 0:
            return EmbeddingType(dim=length)
        return ListType(item=item)
    if name == "ndarray":
        shape = _items(params.get("shape"))
        if len(shape) == 1 and isinstance(shape[0], int):
            return EmbeddingType(dim=shape[0])
        return ListType(item=NumberType())
    if name == "typedDict":
        type_map = _mapping(params.get("type_map"))
        return StructType(fields={str(k): wandb_type_to_datatype(v) for k, v in type_map.items()})
    if name == "image-file":
        return ImageType(
            box_layers=tuple(str(k) for k in _mapping(params.get("box_layers"))),
            mask_layers=tuple(str(k) for k in _mapping(params.get("mask_layers"))),
            classes=tuple(
                ClassLabel(id=int(k), name=str(v)) for k, v in _class_map(params).items()
            ),
        )
    return UnknownType()


def _class_map(params: Mapping[str, Any]) -> dict[int, str]:
    """``class_map`` of an image-file type, as {id: name} (W&B nests it in a const type)."""
    raw = params.get("class_map") or {}
    if isinstance(raw, Mapping) and raw.get("wb_type") == "const":
        raw = (raw.get("params") or {}).get("val") or {}
    if not isinstance(raw, Mapping):
        return {}
    result = {}
    for key, value in raw.items():
        try:
            result[int(key)] = str(value)
        except (TypeError, ValueError):
            continue
    return result


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"cannot read `{path}`: not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}); download the export again"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"cannot read `{path}`: not UTF-8 text ({exc.reason})") from exc


class _MediaResolver:
    """Finds the files a W&B export references, relative to the export's folder or its parents.

    Only a ``media/...`` reference is looked for in the parents (up to 3: run files
    and partitioned tables keep media at their root). A reference that would leave
    its folder (absolute, ``..``, a symlink out) is never read: ``find`` raises
    OutsideFolder; an image cell with one is left empty and its row kept in
    ``refused`` (read_wandb warns, naming the rows).
    """

    def __init__(self, json_path: Path, missing: str) -> None:
        if missing not in ("error", "null"):
            raise ValueError(f"missing_media must be 'error' or 'null', got {missing!r}")
        self.json_path = json_path
        self.roots = [json_path.parent, *list(json_path.parent.parents)[:3]]
        self.missing = missing
        self.missing_count = 0
        self.refused: list[tuple[str, int, str]] = []  # (column, row, why)
        self._json_cache: dict[Path, Any] = {}

    def find(self, relative: str) -> Path | None:
        """The file ``relative`` names in the first folder that has it; None if none does."""
        media = PurePath(relative).parts[:1] == ("media",)
        for root in self.roots if media else self.roots[:1]:
            candidate = resolve_inside(root, relative, "the export's folder")
            if candidate.is_file():
                return candidate
        return None

    def warn_refused(self) -> None:
        """One warning naming the rows whose image cells were left empty, and why."""
        if not self.refused:
            return
        rows = ", ".join(f"`{column}` row {row}" for column, row, _ in self.refused[:10])
        more = f" and {len(self.refused) - 10} more" if len(self.refused) > 10 else ""
        warnings.warn(
            f"`{self.json_path}`: {len(self.refused)} image cells left empty ({rows}{more}): "
            f"{self.refused[0][2]}; media files are read only inside the export's folder",
            RuntimeWarning,
            stacklevel=3,
        )

    def json_file(self, relative: str, where: str) -> Any:
        found = self.find(relative)
        if found is None:
            raise FileNotFoundError(
                f"`{self.json_path}`, {where}: the referenced file `{relative}` is not next to "
                "the export; download the artifact's media folder with it"
            )
        if found not in self._json_cache:
            self._json_cache[found] = _load_json(found)
        return self._json_cache[found]

    def image(self, cell: Mapping[str, Any], column: str, row: int, classes: dict[int, str]):
        """The Image of one image-file cell; None (and the row kept) if it names a file outside."""
        try:
            return self._image(cell, column, row, classes)
        except OutsideFolder as exc:
            self.refused.append((column, row, str(exc)))
            return None

    def _image(self, cell: Mapping[str, Any], column: str, row: int, classes: dict[int, str]):
        where = f"column `{column}`, row {row}"
        relative = cell.get("path")
        found = self.find(relative) if isinstance(relative, str) else None
        if found is None:
            if self.missing == "null":
                self.missing_count += 1
                return None
            raise FileNotFoundError(
                f"`{self.json_path}`, {where}: image file `{relative}` not found next to the "
                "export; download the artifact's media folder with it, or pass "
                "missing_media='null' to open the table with those cells empty"
            )
        class_map = dict(classes)
        cell_classes = cell.get("classes")
        if isinstance(cell_classes, Mapping) and isinstance(cell_classes.get("path"), str):
            loaded = self.json_file(cell_classes["path"], where)
            for entry in loaded.get("class_set", []) if isinstance(loaded, Mapping) else []:
                class_map[int(entry["id"])] = str(entry["name"])
        boxes = {}
        for layer, value in (cell.get("boxes") or {}).items():
            box_data = value
            if isinstance(value, Mapping) and isinstance(value.get("path"), str):
                value = self.json_file(value["path"], f"{where}, box layer `{layer}`")
            if isinstance(value, Mapping):
                box_data = value.get("box_data", [])
                for key, name in (value.get("class_labels") or {}).items():
                    class_map.setdefault(int(key), str(name))
            boxes[str(layer)] = list(box_data or [])
        masks = {}
        for layer, value in (cell.get("masks") or {}).items():
            mask_path = value.get("path") if isinstance(value, Mapping) else None
            mask_file = self.find(mask_path) if isinstance(mask_path, str) else None
            if mask_file is None:
                raise FileNotFoundError(
                    f"`{self.json_path}`, {where}: mask layer `{layer}` file `{mask_path}` not "
                    "found; download the artifact's media folder with the export"
                )
            from PIL import Image as PILImage

            with PILImage.open(mask_file) as mask_image:
                masks[str(layer)] = np.asarray(mask_image)
        try:
            return Image(
                found,
                boxes=boxes or None,
                masks=masks or None,
                classes=Classes([{"id": k, "name": v} for k, v in sorted(class_map.items())])
                if class_map
                else None,
                caption=cell.get("caption"),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`{self.json_path}`, {where}: {exc}") from exc


def read_wandb(
    path: str | os.PathLike[str],
    *,
    dtypes: Mapping[str, Any] | None = None,
    missing_media: str = "error",
) -> Table | JoinedTable:
    """A W&B ``*.table.json`` (or ``*.joined-table.json``) export as a Table (or JoinedTable).

    Image cells (``{"_type": "image-file", "path": ...}``) load from the files
    next to the export, with their boxes, masks and classes; ``column_types``
    types columns the values cannot (all-null columns, image classes), turns
    timestamp columns (milliseconds since the epoch) into datetimes, and finds
    numpy columns W&B wrote to ``media/serialized_data/*.npz`` (each cell
    flattened to one vector). Partitioned tables (``parts_path``) and
    incremental tables (``<n>.table.json`` increments) are read whole.
    """
    path = Path(path)
    try:
        return _read_wandb(path, dtypes, missing_media)
    except RecursionError:
        raise ValueError(
            f"cannot read `{path}`: it is nested too deeply (lists or objects inside each "
            "other hundreds of levels deep); it is not a W&B table export typed-panels reads"
        ) from None


def _read_wandb(
    path: Path, dtypes: Mapping[str, Any] | None, missing_media: str
) -> Table | JoinedTable:
    obj = _load_json(path)
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"`{path}` is not a W&B table export: it holds a JSON {type(obj).__name__}, not an "
            "object with `columns` and `data`"
        )
    kind = obj.get("_type")
    if kind == "joined-table":
        return _read_wandb_joined(path, obj, missing_media)
    columns, rows, type_map = _wandb_rows(path, obj)
    wb_types = {name: wandb_type_to_datatype(type_map.get(name)) for name in columns}
    resolver = _MediaResolver(path, missing_media)
    fields, arrays = [], []
    for j, name in enumerate(columns):
        wb_type = wb_types[name]
        values = _wandb_column(path, name, [row[j] for row in rows], type_map.get(name), resolver)
        try:
            data_type = column_type(name, values)
            if isinstance(strip_optional(data_type), UnknownType) and not isinstance(
                strip_optional(wb_type), UnknownType | AnyType | ImageType
            ):
                data_type = OptionalType(inner=strip_optional(wb_type))
            field, array = build_column(name, values, data_type)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"`{path}`: {_message(exc)}") from exc
        fields.append(field)
        arrays.append(array)
    resolver.warn_refused()
    arrow = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    try:
        return Table.from_arrow(arrow, dtypes=dtypes, rename=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise type(exc)(f"`{path}`: {_message(exc)}") from exc


def _check_rows(path: Path, columns: list[str], rows: Any, first_row: int = 0) -> list[list[Any]]:
    if not isinstance(rows, list):
        raise ValueError(f"`{path}`: `data` must be a list of rows, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            got = f"{len(row)} values" if isinstance(row, list) else f"a {type(row).__name__}"
            raise ValueError(
                f"`{path}`: row {first_row + i} has {got} but `columns` names {len(columns)} "
                f"({', '.join(columns)}); fix or re-export the table"
            )
    return rows


def _wandb_rows(
    path: Path, obj: Mapping[str, Any]
) -> tuple[list[str], list[list[Any]], dict[str, Any]]:
    """Columns, rows and wb type map of a table export (parts and increments gathered)."""
    if obj.get("_type") == "partitioned-table":
        parts_dir = path.parent / str(obj.get("parts_path", ""))
        parts = sorted(parts_dir.glob("*.table.json")) if parts_dir.is_dir() else []
        if not parts:
            raise FileNotFoundError(
                f"`{path}`: its parts_path `{obj.get('parts_path')}` holds no *.table.json "
                "parts; download the parts folder with the export"
            )
        columns: list[str] | None = None
        rows: list[list[Any]] = []
        type_map: dict[str, Any] = {}
        for part in parts:
            part_columns, part_rows, part_types = _wandb_rows(part, _load_json(part))
            if columns is not None and part_columns != columns:
                raise ValueError(
                    f"`{part}` has columns {part_columns}, the parts before it {columns}; "
                    "every part of a partitioned table needs the same columns"
                )
            columns = part_columns
            rows.extend(part_rows)
            type_map = type_map or part_types
        return columns or [], rows, type_map
    if "columns" not in obj or "data" not in obj:
        raise ValueError(
            f"`{path}` is not a W&B table export: it has no `columns` and `data` "
            f"(its keys are {sorted(obj)[:10]}); export the table with wandb, or pass format=... "
            "for another reader"
        )
    if not isinstance(obj["columns"], list):
        raise ValueError(
            f"`{path}`: `columns` must be a list of column names, got a JSON "
            f"{type(obj['columns']).__name__}; fix or re-export the table"
        )
    columns = [str(c) for c in obj["columns"]]
    rows = list(_check_rows(path, columns, obj["data"]))
    if obj.get("log_mode") == "INCREMENTAL":
        increments = sorted(
            (int(m.group(1)), p)
            for p in path.parent.glob("*.table.json")
            if (m := re.match(r"^(\d+)\.", p.name)) and p != path
        )
        for _, increment in increments:
            data = _load_json(increment)
            rows.extend(_check_rows(increment, columns, data.get("data", []), len(rows)))
    return columns, rows, _type_map(path, obj.get("column_types"))


def _type_map(path: Path, column_types: Any) -> dict[str, Any]:
    """The per-column W&B types of an export's ``column_types`` (a typedDict), if any."""
    value, where = column_types, "column_types"
    for key in ("params", "type_map"):
        if value is None or not isinstance(value, Mapping):
            break
        value, where = value.get(key), f"{where}.{key}"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        kind = {list: "a list", str: "text", bool: "a boolean"}.get(type(value), "a number")
        raise ValueError(
            f"`{path}`: `{where}` is {kind}, but `column_types` must be an object like "
            '{"wb_type": "typedDict", "params": {"type_map": {"column": {...}}}}; re-export '
            "the table, or delete `column_types` to type the columns from their values"
        )
    return {str(k): v for k, v in value.items()}


def _wandb_column(
    path: Path, name: str, cells: list[Any], wb_json: Any, resolver: _MediaResolver
) -> list[Any]:
    """A column's cells as Python values: images loaded, timestamps and numpy columns decoded."""
    wb_type = strip_optional(wandb_type_to_datatype(wb_json))
    serialized = _serialization_path(wb_json)
    if serialized is not None:
        file = resolver.find(str(serialized.get("path")))
        if file is None:
            raise FileNotFoundError(
                f"`{path}`, column `{name}`: its values are in `{serialized.get('path')}`, "
                "which is not next to the export; download the artifact's media folder with it"
            )
        with np.load(file, allow_pickle=False) as npz:
            values = npz[str(serialized.get("key", name))]
        if len(values) != len(cells):
            raise ValueError(
                f"`{file}` holds {len(values)} values for column `{name}` but the table has "
                f"{len(cells)} rows; re-export the table"
            )
        return [np.asarray(v).reshape(-1) for v in values]
    if isinstance(wb_type, TimestampType):
        return [
            _dt.datetime.fromtimestamp(v / 1000, tz=_dt.UTC)
            if isinstance(v, int | float) and not isinstance(v, bool)
            else v
            for v in cells
        ]
    classes = {c.id: c.name for c in wb_type.classes} if isinstance(wb_type, ImageType) else {}
    return [_wandb_cell(value, name, i, resolver, classes) for i, value in enumerate(cells)]


def _serialization_path(wb_json: Any) -> Mapping[str, Any] | None:
    """Where W&B put a numpy column (``media/serialized_data/*.npz``), if it did."""
    if not isinstance(wb_json, Mapping):
        return None
    params = _mapping(wb_json.get("params"))
    if wb_json.get("wb_type") == "ndarray" and isinstance(
        params.get("serialization_path"), Mapping
    ):
        return params["serialization_path"]
    if wb_json.get("wb_type") == "union":
        for member in _items(params.get("allowed_types")):
            found = _serialization_path(member)
            if found is not None:
                return found
    return None


def _wandb_cell(
    value: Any, column: str, row: int, resolver: _MediaResolver, classes: dict[int, str]
) -> Any:
    if isinstance(value, Mapping) and value.get("_type") == "image-file":
        return resolver.image(value, column, row, classes)
    return value


def _read_wandb_joined(path: Path, obj: Mapping[str, Any], missing_media: str) -> JoinedTable:
    sides = []
    for key in ("table1", "table2"):
        ref = obj.get(key)
        if isinstance(ref, Mapping):
            ref = ref.get("path")
        if not isinstance(ref, str):
            raise ValueError(f"`{path}`: a joined-table needs `{key}`, the path of a table file")
        found = _MediaResolver(path, "error").find(ref)
        if found is None:
            raise FileNotFoundError(
                f"`{path}`: `{key}` names `{ref}`, which is not next to the export; "
                "download both tables of the join"
            )
        side = read_wandb(found, missing_media=missing_media)
        if not isinstance(side, Table):
            raise ValueError(f"`{path}`: `{key}` (`{ref}`) is itself a joined table")
        sides.append(side)
    join_key = obj.get("join_key")
    if isinstance(join_key, str):
        on: str | tuple[str, str] = join_key
    elif isinstance(join_key, list) and len(join_key) == 2:
        on = (str(join_key[0]), str(join_key[1]))
    else:
        raise ValueError(
            f"`{path}`: `join_key` must be a column name or a [left, right] pair, got {join_key!r}"
        )
    try:
        return JoinedTable(sides[0], sides[1], on, names=("table1", "table2"))
    except (KeyError, TypeError, ValueError) as exc:
        raise type(exc)(f"`{path}`: {_message(exc)}") from exc


# --------------------------------------------------------------------------- TensorBoard


_PBTXT_FIELD = re.compile(r'(\w+)\s*:\s*"((?:[^"\\]|\\.)*)"')
_PBTXT_BLOCK_START = re.compile(r"(\w+)\s*\{")


def _pbtxt_blocks(text: str) -> list[tuple[str, str]]:
    """Top-level ``name { ... }`` blocks of protobuf text, nested braces matched."""
    blocks, pos = [], 0
    while (match := _PBTXT_BLOCK_START.search(text, pos)) is not None:
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        blocks.append((match.group(1), text[match.end() : i - 1]))
        pos = i
    return blocks


def _projector_entries(config: Path) -> list[dict[str, str]]:
    text = config.read_text(encoding="utf-8")
    entries = []
    for name, body in _pbtxt_blocks(text):
        if name != "embeddings":
            continue
        nested = _pbtxt_blocks(body)
        for _, inner in nested:
            body = body.replace(inner, "")
        entries.append(dict(_PBTXT_FIELD.findall(body)))
    if not entries:
        raise ValueError(
            f"`{config}` lists no `embeddings {{ ... }}` block; a projector config needs one with "
            "tensor_path (and optionally metadata_path)"
        )
    return entries


def _resolve_projector(
    path: Path, metadata: Path | None, tensor_name: str | None
) -> tuple[Path, Path | None]:
    """The tensors and metadata files of a projector folder, config or tensors file."""
    if path.is_dir():
        config = path / _PROJECTOR_CONFIG
        if config.is_file():
            return _resolve_projector(config, metadata, tensor_name)
        tensors = next((path / n for n in _TENSOR_NAMES if (path / n).is_file()), None)
        if tensors is None:
            raise FileNotFoundError(
                f"`{path}` has no {_PROJECTOR_CONFIG} and no {' / '.join(_TENSOR_NAMES)}; "
                "write the vectors as tensors.tsv (one tab-separated vector per line)"
            )
        if metadata is None:
            metadata = next((path / n for n in _METADATA_NAMES if (path / n).is_file()), None)
        return tensors, metadata
    if path.suffix.lower() == ".pbtxt":
        entries = _projector_entries(path)
        if tensor_name is not None:
            chosen = [e for e in entries if e.get("tensor_name") == tensor_name]
            if not chosen:
                names = [e.get("tensor_name", "?") for e in entries]
                raise KeyError(f"`{path}` has no embedding named {tensor_name!r}; it has {names}")
            entry = chosen[0]
        else:
            entry = entries[0]
        if "tensor_path" not in entry:
            raise ValueError(
                f"`{path}`: embedding {entry.get('tensor_name', '#0')!r} has no tensor_path (its "
                "tensor lives in a checkpoint); export it as tensors.tsv and set tensor_path"
            )
        tensors = path.parent / entry["tensor_path"]
        if metadata is None and entry.get("metadata_path"):
            metadata = path.parent / entry["metadata_path"]
        for what, file in (("tensor_path", tensors), ("metadata_path", metadata)):
            if file is not None and not file.is_file():
                raise FileNotFoundError(f"`{path}`: {what} `{file}` does not exist")
        return tensors, metadata
    if metadata is None:
        metadata = next(
            (path.parent / n for n in _METADATA_NAMES if (path.parent / n).is_file()), None
        )
    return path, metadata


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"cannot read `{path}`: not UTF-8 text ({exc.reason})") from exc
    lines = text.split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def _parse_tensors(path: Path) -> np.ndarray:
    """The vectors of a tensors.tsv as an (n, d) float32 array; ragged or non-numeric lines raise."""
    lines = _read_lines(path)
    if not lines:
        raise ValueError(f"`{path}` is empty; it needs one tab-separated vector per line")
    split = [line.split("\t") for line in lines]
    lengths = Counter(len(parts) for parts in split)
    dim = lengths.most_common(1)[0][0]
    for i, parts in enumerate(split, start=1):
        if len(parts) != dim:
            raise ValueError(
                f"`{path}`: line {i} has {len(parts)} values, the others {dim}; every vector "
                "needs the same number of tab-separated values"
            )
    try:
        return np.array(split, dtype=np.float32)
    except ValueError:
        pass
    for i, parts in enumerate(split, start=1):
        for j, token in enumerate(parts, start=1):
            try:
                float(token)
            except ValueError:
                raise ValueError(
                    f"`{path}`: line {i}, value {j} is {token[:30]!r}, not a number; tensors.tsv "
                    "holds numbers only (labels go in metadata.tsv)"
                ) from None
    raise ValueError(f"`{path}`: cannot read the vectors as numbers")


def _convert_metadata_column(values: list[str]) -> list[Any]:
    present = [v for v in values if v != ""]
    for caster in (int, float):
        try:
            converted = [caster(v) for v in present]
        except ValueError:
            continue
        it = iter(converted)
        return [None if v == "" else next(it) for v in values]
    return [None if v == "" else v for v in values]


def _parse_metadata(path: Path, rows: int, tensors: Path) -> dict[str, list[Any]]:
    """Metadata columns: one column has no header row (it is `label`); several have one."""
    lines = _read_lines(path)
    first = lines[0].split("\t") if lines else [""]
    if len(first) > 1:
        header, body, offset = first, lines[1:], 2
    else:
        header, body, offset = ["label"], lines, 1
    if len(body) != rows:
        after = " after its header row" if offset == 2 else ""
        raise ValueError(
            f"`{path}` has {len(body)} rows{after} but `{tensors}` has {rows} vectors; the files "
            "must match line for line (a metadata file with several columns starts with a header "
            "row, one with a single column has none)"
        )
    if len(set(header)) != len(header) or "" in header:
        raise ValueError(f"`{path}`: the header row {header} has empty or repeated column names")
    columns: list[list[str]] = [[] for _ in header]
    for i, line in enumerate(body):
        parts = line.split("\t")
        if len(parts) != len(header):
            raise ValueError(
                f"`{path}`: line {i + offset} has {len(parts)} values but the header names "
                f"{len(header)} columns"
            )
        for column, value in zip(columns, parts):
            column.append(value)
    return {name: _convert_metadata_column(values) for name, values in zip(header, columns)}


def read_tensorboard(
    path: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | None = None,
    tensor_name: str | None = None,
    dtypes: Mapping[str, Any] | None = None,
) -> Table:
    """TensorBoard projector data as a Table: an ``embedding`` column plus the metadata columns.

    ``path`` is a folder (with ``projector_config.pbtxt`` or ``tensors.tsv`` and
    an optional ``metadata.tsv``), a ``projector_config.pbtxt``, or a tensors file.
    """
    tensors, meta = _resolve_projector(
        Path(path), Path(metadata) if metadata is not None else None, tensor_name
    )
    vectors = _parse_tensors(tensors)
    columns: dict[str, list[Any]] = {}
    if meta is not None:
        columns = _parse_metadata(meta, len(vectors), tensors)
        if "embedding" in columns:
            raise ValueError(
                f"`{meta}` has a column named `embedding`, the name the vectors take; "
                "rename that column"
            )
    fields, arrays = [], []
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    fields.append(pa.field("embedding", embedding.type))
    arrays.append(embedding)
    for name, values in columns.items():
        field, array = build_column(name, values)
        fields.append(field)
        arrays.append(array)
    arrow = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return Table.from_arrow(arrow, dtypes=dtypes, rename=True)
