"""W&B table exports: ``*.table.json`` and ``*.joined-table.json``, media resolved inside the
export's folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.data.cell_notes import CellNotes, CellWarning
from panels_core.data.columns import build_column, column_type
from panels_core.data.media import Image, LayerProblem, UnreadableImage
from panels_core.data.sources.common import exception_text
from panels_core.data.sources.wandb_media import (
    WANDB_MEDIA_TYPES,
    is_media_cell,
    read_media_column,
)
from panels_core.data.table import JoinedTable, Table
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
    strip_optional,
)

__all__ = ["read_wandb", "wandb_type_to_datatype"]


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
    if name in WANDB_MEDIA_TYPES:
        return WANDB_MEDIA_TYPES[name]
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
    ``refused``. Unless ``strict``, a box or mask layer that does not fit its image is
    dropped (or resized) and kept in ``cells``. ``notes`` words both, naming the rows.
    """

    def __init__(self, json_path: Path, missing: str, strict: bool = False) -> None:
        if missing not in ("error", "null"):
            raise ValueError(f"missing_media must be 'error' or 'null', got {missing!r}")
        self.json_path = json_path
        self.roots = [json_path.parent, *list(json_path.parent.parents)[:3]]
        self.missing = missing
        self.missing_count = 0
        self.strict = strict
        self.refused: list[tuple[str, int, str]] = []  # (column, row, why)
        self.cells = CellNotes()
        self.refused_kinds: set[str] = set()  # "image", "media"
        self._json_cache: dict[Path, Any] = {}

    def find(self, relative: str) -> Path | None:
        """The file ``relative`` names in the first folder that has it; None if none does."""
        media = PurePath(relative).parts[:1] == ("media",)
        for root in self.roots if media else self.roots[:1]:
            candidate = resolve_inside(root, relative, "the export's folder")
            if candidate.is_file():
                return candidate
        return None

    def notes(self) -> list[str]:
        """The table's notes: image (or other media) cells left empty, layers dropped or resized (by rows)."""
        notes = self.cells.lines()
        if self.refused:
            kind = "image" if self.refused_kinds <= {"image"} else "media"
            rows = ", ".join(f"`{column}` row {row}" for column, row, _ in self.refused[:10])
            more = f" and {len(self.refused) - 10} more" if len(self.refused) > 10 else ""
            notes.insert(
                0,
                f"{len(self.refused)} {kind} cells left empty ({rows}{more}): "
                f"{self.refused[0][2]}; media files are read only inside the export's folder",
            )
        return notes

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
            self.refused_kinds.add("image")
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
            masks[str(layer)] = {"path": mask_file}
        classes_of = [{"id": k, "name": v} for k, v in sorted(class_map.items())]
        parts = {"boxes": boxes or None, "masks": masks or None, "classes": classes_of or None}
        return self._checked(found, parts, cell.get("caption"), column, row)

    def _checked(self, found: Path, parts: dict[str, Any], caption: Any, column: str, row: int):
        """The Image of a cell's file and parts; unless ``strict``, a layer that does not fit
        is dropped (or resized) and an unreadable file leaves the cell empty, noted by row."""
        problems: list[LayerProblem] | None = None if self.strict else []
        try:
            image = Image(found, caption=caption, problems=problems, **parts)
        except (TypeError, ValueError) as exc:
            if self.strict or not isinstance(exc, UnreadableImage):
                raise ValueError(
                    f"`{self.json_path}`, column `{column}`, row {row}: {exc}"
                ) from exc
            why = "its file is not an image that can be read"
            self.cells.add(column, row, "image left empty", why)
            return None
        for problem in problems or ():
            self.cells.add(column, row, problem.what, problem.detail)
        return image


def read_wandb(
    path: str | os.PathLike[str],
    *,
    dtypes: Mapping[str, Any] | None = None,
    missing_media: str = "error",
    strict: bool = False,
) -> Table | JoinedTable:
    """A W&B ``*.table.json`` (or ``*.joined-table.json``) export as a Table (or JoinedTable).

    Image cells (``{"_type": "image-file", "path": ...}``) load from the files
    next to the export, with their boxes, masks and classes; ``column_types``
    types columns the values cannot (all-null columns, image classes), turns
    timestamp columns (milliseconds since the epoch) into datetimes, and finds
    numpy columns W&B wrote to ``media/serialized_data/*.npz`` (each cell
    flattened to one vector). Partitioned tables (``parts_path``) and
    incremental tables (``<n>.table.json`` increments) are read whole.

    One bad cell does not refuse the table: a box or mask layer that does not fit its
    image is dropped from that cell (a mask of an integer multiple or divisor of the
    image's size is resized, nearest neighbour), and an image file outside the
    export's folder leaves its cell empty. The table's ``notes`` say so, one per
    column and problem naming the rows, and each is warned (``CellWarning``).
    ``strict=True`` refuses a table with a layer that does not fit, as it always did.
    """
    path = Path(path)
    try:
        return _read_wandb(path, dtypes, missing_media, strict)
    except RecursionError:
        raise ValueError(
            f"cannot read `{path}`: it is nested too deeply (lists or objects inside each "
            "other hundreds of levels deep); it is not a W&B table export typed-panels reads"
        ) from None


def _read_wandb(
    path: Path, dtypes: Mapping[str, Any] | None, missing_media: str, strict: bool
) -> Table | JoinedTable:
    obj = _load_json(path)
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"`{path}` is not a W&B table export: it holds a JSON {type(obj).__name__}, not an "
            "object with `columns` and `data`"
        )
    kind = obj.get("_type")
    if kind == "joined-table":
        return _read_wandb_joined(path, obj, missing_media, strict)
    columns, rows, type_map = _wandb_rows(path, obj)
    wb_types = {name: wandb_type_to_datatype(type_map.get(name)) for name in columns}
    resolver = _MediaResolver(path, missing_media, strict)
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
            raise type(exc)(f"`{path}`: {exception_text(exc)}") from exc
        fields.append(field)
        arrays.append(array)
    arrow = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    try:
        table = Table.from_arrow(arrow, dtypes=dtypes, rename=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise type(exc)(f"`{path}`: {exception_text(exc)}") from exc
    table.notes = resolver.notes()
    for note in table.notes:
        warnings.warn(f"`{path}`: {note}", CellWarning, stacklevel=3)
    return table


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
        try:
            file = resolver.find(str(serialized.get("path")))
        except OutsideFolder as exc:
            raise ValueError(f"`{path}`, column `{name}`: {exc}") from None
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
    if any(is_media_cell(value) for value in cells):
        return read_media_column(path, name, cells, resolver)
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


def _read_wandb_joined(
    path: Path, obj: Mapping[str, Any], missing_media: str, strict: bool
) -> JoinedTable:
    sides = []
    for key in ("table1", "table2"):
        ref = obj.get(key)
        if isinstance(ref, Mapping):
            ref = ref.get("path")
        if not isinstance(ref, str):
            raise ValueError(f"`{path}`: a joined-table needs `{key}`, the path of a table file")
        try:
            found = _MediaResolver(path, "error").find(ref)
        except OutsideFolder as exc:
            raise ValueError(f"`{path}`: `{key}`: {exc}") from None
        if found is None:
            raise FileNotFoundError(
                f"`{path}`: `{key}` names `{ref}`, which is not next to the export; "
                "download both tables of the join"
            )
        side = read_wandb(found, missing_media=missing_media, strict=strict)
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
        raise type(exc)(f"`{path}`: {exception_text(exc)}") from exc
