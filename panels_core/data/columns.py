"""Python values and pandas frames to typed Arrow columns.

Every value added from Python is typed (``type_of``) and checked against its
column, so a mixed column fails early with the column, the row and both types;
``build_column`` encodes a typed column (embeddings, images, structs) in Arrow
and ``python_values`` reads one back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.data.infer import KIND_KEY
from panels_core.data.media import (
    Image,
    image_field,
    images_from_arrow,
    images_to_arrow,
    is_image_field,
)
from panels_core.data.media_files import (
    MediaFile,
    is_media_field,
    media_field,
    media_from_arrow,
    media_to_arrow,
)
from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    EmbeddingType,
    ImageType,
    ListType,
    MediaType,
    MixedTypesError,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TimestampType,
    UnknownType,
    describe,
    strip_optional,
    type_of,
    unify,
)

__all__ = [
    "EMPTY_NAME",
    "arrow_from_columns",
    "build_column",
    "check_names",
    "column_type",
    "from_dataframe",
    "has_python_values",
    "mixed_types_error",
    "python_values",
    "short_value",
    "shown_names",
]

EMPTY_NAME = "(empty)"
"""The name a column shows under when its file gives it none."""


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def short_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def mixed_types_error(name: str, row: int, value: Any, value_type: Any, current: Any) -> TypeError:
    """The error for a value whose type does not merge with its column's."""
    return TypeError(
        f"column `{name}`, row {row}: {describe(value_type)} value {short_value(value)} in a column "
        f"of {describe(current)} values; clean the column, or pass allow_mixed_types=True to "
        "keep it as `any`"
    )


def column_type(
    name: str, values: Sequence[Any], allow_mixed: bool = False, start_row: int = 0
) -> Any:
    """The merged DataType of a column's Python values; a clear TypeError when they mix."""
    current: Any = OptionalType(inner=UnknownType()) if not values else None
    for i, value in enumerate(values):
        value_type = type_of(value)
        if isinstance(value_type, UnknownType):
            raise TypeError(
                f"column `{name}`, row {start_row + i}: a {type(value).__name__} cannot be stored; "
                "use a number, string, bool, datetime, list, dict, numpy array or Image"
            )
        if current is None:
            current = value_type
            continue
        try:
            current = unify(current, value_type)
        except MixedTypesError:
            if allow_mixed:
                return AnyType()
            raise mixed_types_error(name, start_row + i, value, value_type, current) from None
    return current


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _embedding_array(values: Sequence[Any], dim: int) -> pa.Array:
    dtype = (
        np.float32
        if all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in values if v is not None)
        else np.float64
    )
    flat = np.zeros((len(values), dim), dtype=dtype)
    mask = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if value is None:
            mask[i] = True
        else:
            flat[i] = np.asarray(value, dtype=dtype)
    return pa.FixedSizeListArray.from_arrays(
        pa.array(flat.reshape(-1)), dim, mask=pa.array(mask) if mask.any() else None
    )


def _as_image(value: Any, name: str, row: int) -> Image | None:
    if value is None or isinstance(value, Image):
        return value
    try:
        return Image(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"column `{name}`, row {row}: {exc}") from exc


def _as_media(value: Any, media_type: MediaType, name: str, row: int) -> MediaFile | None:
    if value is None or isinstance(value, MediaFile):
        return value
    raise TypeError(
        f"column `{name}`, row {row}: a {media_type} column holds MediaFile values or nulls, "
        f"not a {type(value).__name__}"
    )


def build_column(
    name: str, values: Sequence[Any], data_type: Any = None, *, start_row: int = 0
) -> tuple[pa.Field, pa.Array]:
    """An Arrow field and array for a column of Python values of ``data_type``."""
    if data_type is None:
        data_type = column_type(name, values, start_row=start_row)
    inner = strip_optional(data_type)
    values = [None if _is_missing(v) and not isinstance(inner, NumberType) else v for v in values]
    if isinstance(inner, AnyType):
        texts = [None if v is None else json.dumps(v, default=_json_default) for v in values]
        return pa.field(name, pa.string(), metadata={KIND_KEY: b"any"}), pa.array(
            texts, pa.string()
        )
    if isinstance(inner, UnknownType):
        return pa.field(name, pa.null()), pa.nulls(len(values))
    if isinstance(inner, ImageType):
        images = [_as_image(v, name, start_row + i) for i, v in enumerate(values)]
        merged = inner
        for image in images:
            if image is not None:
                merged = unify(merged, image.data_type)
        field = image_field(name, merged)
        return field, images_to_arrow(images, merged)
    if isinstance(inner, MediaType):
        return media_field(name, inner), media_to_arrow(
            [_as_media(v, inner, name, start_row + i) for i, v in enumerate(values)]
        )
    if isinstance(inner, EmbeddingType) and inner.dim:
        array = _embedding_array(values, inner.dim)
        return pa.field(name, array.type), array
    arrow_type: pa.DataType | None = {
        BooleanType: pa.bool_(),
        StringType: pa.string(),
        CategoryType: pa.string(),
    }.get(type(inner))
    if isinstance(inner, NumberType):
        arrow_type = pa.int64() if inner.integer else pa.float64()
    if isinstance(inner, ListType | EmbeddingType):
        values = [v.tolist() if isinstance(v, np.ndarray) else v for v in values]
    try:
        array = pa.array(values, type=arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        if isinstance(inner, NumberType) and inner.integer:
            array = pa.array(values, type=pa.float64())
        else:
            raise TypeError(
                f"column `{name}`: cannot store {describe(inner)} values ({exc})"
            ) from exc
    if isinstance(inner, TimestampType) and not pa.types.is_timestamp(array.type):
        array = array.cast(pa.timestamp("us"))
    if isinstance(inner, StructType | ListType) and array.type.equals(pa.null()):
        return pa.field(name, pa.null()), array
    if arrow_type is None and array.type.equals(pa.null()):
        array = pa.nulls(len(values))
    return pa.field(name, array.type), array


def has_python_values(field: pa.Field) -> bool:
    """True when ``python_values`` gives a column's cells as more than Arrow's values
    (Images, MediaFiles, decoded `any` values)."""
    return (field.metadata or {}).get(KIND_KEY) in (b"image", b"media", b"any")


def python_values(column: pa.ChunkedArray, field: pa.Field) -> list[Any]:
    """A column back as the Python values ``build_column`` takes (Images, decoded `any`)."""
    if is_image_field(field):
        return images_from_arrow(column, field)
    if is_media_field(field):
        return media_from_arrow(column, field)
    if (field.metadata or {}).get(KIND_KEY) == b"any":
        return [None if v is None else json.loads(v) for v in column.to_pylist()]
    return column.to_pylist()


def arrow_from_columns(
    names: Sequence[str], columns: Sequence[Sequence[Any]], allow_mixed: bool, start_row: int = 0
) -> pa.Table:
    fields, arrays = [], []
    for name, values in zip(names, columns, strict=True):
        data_type = column_type(name, values, allow_mixed=allow_mixed, start_row=start_row)
        field, array = build_column(name, values, data_type, start_row=start_row)
        fields.append(field)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def check_names(names: Iterable[Any]) -> list[str]:
    result = []
    for name in names:
        if not isinstance(name, str | int) or isinstance(name, bool):
            raise TypeError(f"column names must be strings, got {name!r}")
        text = str(name)
        if not text:
            raise ValueError("column names cannot be empty")
        if text in result:
            raise ValueError(f"column `{text}` appears twice; give each column its own name")
        result.append(text)
    return result


def shown_names(names: Sequence[str]) -> list[str]:
    """Names for a file's columns that a table can use: each one non-empty and unique.

    A column with no name shows as ``(empty)``; the second and later columns of
    one name as ``x (2)``, ``x (3)`` (skipping names the file has already), so
    every column can be named in a filter, a sort or a card.
    """
    taken = set(names)
    seen: set[str] = set()
    shown = []
    for name in names:
        base = name or EMPTY_NAME
        candidate, n = base, 2
        while candidate in seen or (candidate != name and candidate in taken):
            candidate, n = f"{base} ({n})", n + 1
        seen.add(candidate)
        shown.append(candidate)
    return shown


def from_dataframe(df: Any, allow_mixed: bool) -> pa.Table:
    """Arrow from pandas, keeping Image/array/mixed object columns typed and checked."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        if hasattr(df, "__arrow_c_stream__"):
            return pa.table(df)
        raise TypeError(
            f"Table(dataframe=...) takes a pandas DataFrame or an Arrow-compatible table, "
            f"not {type(df).__name__}"
        )
    names = check_names(df.columns)
    fields, arrays = [], []
    for name, (_, series) in zip(names, df.items(), strict=True):
        if series.dtype == object:
            values = [None if _scalar_missing(v) else v for v in series.tolist()]
            data_type = column_type(name, values, allow_mixed=allow_mixed)
            field, array = build_column(name, values, data_type)
        else:
            array = pa.Array.from_pandas(series)
            field = pa.field(name, array.type)
        fields.append(field)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _scalar_missing(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))
