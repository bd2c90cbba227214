"""The type language: one pydantic model per kind of column value.

Every model is frozen data with a ``kind`` discriminator, so a type serializes
to JSON and back unchanged (``DataTypeAdapter.validate_json(t.model_dump_json())``).
``is_assignable(src, dst)`` is the one rule the registry uses for matching;
``type_of(value)`` types a single Python value; ``unify`` merges the types of
two values of one column. This module makes no values: a value class of
another module (``Image``) describes its own type with a ``__data_type__()``
method, which ``type_of`` calls.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import sys
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from panels_core.media_types import (
    AudioType,
    HtmlType,
    MediaType,
    MoleculeType,
    Object3DType,
    PlotType,
    VideoType,
)

__all__ = [
    "AnyType",
    "AudioType",
    "BooleanType",
    "CategoryType",
    "ClassLabel",
    "ComparedType",
    "DataType",
    "DataTypeAdapter",
    "EmbeddingType",
    "HtmlType",
    "ImageType",
    "JoinedTableType",
    "ListType",
    "MediaType",
    "MixedTypesError",
    "MoleculeType",
    "NumberType",
    "Object3DType",
    "OptionalType",
    "PlotType",
    "StringType",
    "StructType",
    "TableType",
    "TimestampType",
    "UnionType",
    "UnknownType",
    "VideoType",
    "describe",
    "is_assignable",
    "is_nullable",
    "parse_type",
    "strip_optional",
    "type_of",
    "unify",
]


class _TypeModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __str__(self) -> str:
        return describe(self)  # type: ignore[arg-type]


class NumberType(_TypeModel):
    """Integers and floats; ``integer`` is true when every value is whole."""

    kind: Literal["number"] = "number"
    integer: bool = False


class BooleanType(_TypeModel):
    """True / false."""

    kind: Literal["boolean"] = "boolean"


class StringType(_TypeModel):
    """Free text with many distinct values."""

    kind: Literal["string"] = "string"


class CategoryType(_TypeModel):
    """A label from a small set; ``categories`` lists them when they are known."""

    kind: Literal["category"] = "category"
    categories: tuple[str | int, ...] | None = None


class TimestampType(_TypeModel):
    """A point in time."""

    kind: Literal["timestamp"] = "timestamp"
    unit: Literal["s", "ms", "us", "ns"] = "us"
    tz: str | None = None


class EmbeddingType(_TypeModel):
    """A vector of numbers of one length (``dim``; None accepts any length)."""

    kind: Literal["embedding"] = "embedding"
    dim: int | None = None


class ClassLabel(_TypeModel):
    """One class of an image's boxes and masks."""

    id: int
    name: str


class ImageType(_TypeModel):
    """An image, with the box and mask layers it carries and their class names."""

    kind: Literal["image"] = "image"
    box_layers: tuple[str, ...] = ()
    mask_layers: tuple[str, ...] = ()
    classes: tuple[ClassLabel, ...] = ()


class ListType(_TypeModel):
    """A list of values of one type (grouped columns, ragged lists)."""

    kind: Literal["list"] = "list"
    item: DataType


class ComparedType(_TypeModel):
    """One value per compared source (``sources`` empty accepts any sources)."""

    kind: Literal["compared"] = "compared"
    item: DataType
    sources: tuple[str, ...] = ()


class OptionalType(_TypeModel):
    """A value of ``inner`` type, or null."""

    kind: Literal["optional"] = "optional"
    inner: DataType


class StructType(_TypeModel):
    """A record with named fields (a dict per cell)."""

    kind: Literal["struct"] = "struct"
    fields: dict[str, DataType]


class UnionType(_TypeModel):
    """Any one of ``members``; used for slots that accept several kinds."""

    kind: Literal["union"] = "union"
    members: tuple[DataType, ...]


class UnknownType(_TypeModel):
    """Nothing fits (no values seen, or values of no known kind)."""

    kind: Literal["unknown"] = "unknown"


class AnyType(_TypeModel):
    """Accepts every type; also the type of a column of allowed mixed types."""

    kind: Literal["any"] = "any"


DataType = Annotated[
    Union[  # noqa: UP007 - a discriminated union needs the explicit form
        NumberType,
        BooleanType,
        StringType,
        CategoryType,
        TimestampType,
        EmbeddingType,
        ImageType,
        AudioType,
        VideoType,
        HtmlType,
        Object3DType,
        PlotType,
        MoleculeType,
        ListType,
        ComparedType,
        OptionalType,
        StructType,
        UnionType,
        UnknownType,
        AnyType,
    ],
    Field(discriminator="kind"),
]

for _model in (ListType, ComparedType, OptionalType, StructType, UnionType):
    _model.model_rebuild()

DataTypeAdapter: TypeAdapter[Any] = TypeAdapter(DataType)


class TableType(_TypeModel):
    """The type of a whole table: an ordered map from column name to DataType."""

    kind: Literal["table"] = "table"
    columns: dict[str, DataType]

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]


class JoinedTableType(_TypeModel):
    """The type of two tables joined on a key."""

    kind: Literal["joined_table"] = "joined_table"
    left: TableType
    right: TableType
    left_key: str
    right_key: str
    left_name: str = "left"
    right_name: str = "right"


def parse_type(data: Any) -> Any:
    """A DataType from its JSON dict (or JSON text), or from a kind name like ``"category"``."""
    if isinstance(data, str) and not data.lstrip().startswith("{"):
        data = {"kind": data}
    if isinstance(data, str):
        return DataTypeAdapter.validate_json(data)
    return DataTypeAdapter.validate_python(data)


# --------------------------------------------------------------------------- describe


def describe(t: Any) -> str:
    """A short human text for a type: ``optional[number]``, ``embedding[64]``."""
    match t:
        case NumberType(integer=True):
            return "integer"
        case NumberType():
            return "number"
        case CategoryType(categories=cats) if cats:
            return f"category({len(cats)})"
        case EmbeddingType(dim=dim):
            return f"embedding[{dim}]" if dim is not None else "embedding"
        case ImageType(box_layers=boxes, mask_layers=masks):
            extras = [f"boxes:{','.join(boxes)}"] if boxes else []
            extras += [f"masks:{','.join(masks)}"] if masks else []
            return f"image[{'; '.join(extras)}]" if extras else "image"
        case MediaType():
            return t.label()
        case ListType(item=item):
            return f"list[{describe(item)}]"
        case ComparedType(item=item):
            return f"compared[{describe(item)}]"
        case OptionalType(inner=inner):
            return f"optional[{describe(inner)}]"
        case StructType(fields=fields):
            return "struct{" + ", ".join(f"{k}: {describe(v)}" for k, v in fields.items()) + "}"
        case UnionType(members=members):
            return " | ".join(describe(m) for m in members)
        case TableType(columns=cols):
            return "table{" + ", ".join(f"{k}: {describe(v)}" for k, v in cols.items()) + "}"
        case JoinedTableType():
            return f"joined({t.left_name}.{t.left_key} = {t.right_name}.{t.right_key})"
        case _:
            return str(t.kind)


# --------------------------------------------------------------------------- assignability


def is_nullable(t: Any) -> bool:
    """True when values of ``t`` may be null."""
    return isinstance(t, OptionalType | AnyType | UnknownType)


def strip_optional(t: Any) -> Any:
    """The inner type of an optional, else ``t`` itself."""
    return t.inner if isinstance(t, OptionalType) else t


def is_assignable(src: Any, dst: Any) -> bool:
    """True when every value of type ``src`` is acceptable where ``dst`` is expected.

    Rules: everything fits ``any``; a union source needs every member to fit, a
    union target needs one member to accept; ``optional[T]`` fits only a nullable
    target (``optional[U]`` with T -> U), while T fits ``optional[U]``; integers
    fit numbers; a category fits ``string``; ``embedding[64]`` fits
    ``embedding`` of no fixed dim; images fit a target whose layers they carry;
    a plot fits ``plot`` of its library or of none; other media kinds fit their own kind;
    lists, compared values and structs are checked item by item (structs by
    width: the source may have extra fields).
    """
    if isinstance(dst, AnyType):
        return True
    if isinstance(src, UnionType):
        return all(is_assignable(m, dst) for m in src.members)
    if isinstance(dst, UnionType):
        return any(is_assignable(src, m) for m in dst.members)
    if isinstance(dst, OptionalType):
        return is_assignable(strip_optional(src), dst.inner)
    if isinstance(src, OptionalType | AnyType | UnknownType):
        return False
    match dst:
        case NumberType():
            return isinstance(src, NumberType) and (src.integer or not dst.integer)
        case StringType():
            return isinstance(src, StringType | CategoryType)
        case CategoryType():
            if not isinstance(src, CategoryType):
                return False
            if dst.categories is None:
                return True
            return src.categories is not None and set(src.categories) <= set(dst.categories)
        case TimestampType():
            return isinstance(src, TimestampType)
        case EmbeddingType():
            return isinstance(src, EmbeddingType) and dst.dim in (None, src.dim)
        case ImageType():
            return (
                isinstance(src, ImageType)
                and set(dst.box_layers) <= set(src.box_layers)
                and set(dst.mask_layers) <= set(src.mask_layers)
            )
        case PlotType():
            return isinstance(src, PlotType) and dst.library in (None, src.library)
        case ListType():
            return isinstance(src, ListType) and is_assignable(src.item, dst.item)
        case ComparedType():
            return (
                isinstance(src, ComparedType)
                and is_assignable(src.item, dst.item)
                and (not dst.sources or tuple(dst.sources) == tuple(src.sources))
            )
        case StructType():
            return isinstance(src, StructType) and all(
                name in src.fields and is_assignable(src.fields[name], field_type)
                for name, field_type in dst.fields.items()
            )
        case _:
            return type(src) is type(dst)


# --------------------------------------------------------------------------- type_of / unify


class MixedTypesError(TypeError):
    """Two values of one column have types that cannot be merged."""


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


def looks_like_image_bytes(data: bytes) -> bool:
    """True when ``data`` starts with the magic bytes of PNG, JPEG, GIF, BMP or WebP."""
    head = bytes(data[:12])
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _is_image_array(arr: np.ndarray) -> bool:
    """HxW or HxWx{1,3,4} numeric arrays are images."""
    if arr.dtype.kind not in "uif" or arr.size == 0:
        return False
    return arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))


def _sequence_type(values: Iterable[Any]) -> Any:
    values = list(values)
    if not values:
        return ListType(item=UnknownType())
    if all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
        for v in values
    ):
        return EmbeddingType(dim=len(values))
    item: Any = type_of(values[0])
    for v in values[1:]:
        item = unify(item, type_of(v))
    return ListType(item=item)


def type_of(value: Any) -> Any:
    """The DataType of one Python value.

    ``None`` gives ``optional[unknown]`` (float NaN stays a number); a
    list, tuple or 1-D array of numbers is an embedding of its length; an
    ``Image``, image bytes or an HxW[xC] array is an image; a dict is a struct.
    A value whose class has a ``__data_type__()`` method gives what it returns.
    """
    if value is None or value is np.ma.masked:
        return OptionalType(inner=UnknownType())
    if isinstance(value, bool | np.bool_):
        return BooleanType()
    if isinstance(value, int | np.integer):
        return NumberType(integer=True)
    if isinstance(value, float | np.floating | decimal.Decimal):
        return NumberType(integer=False)
    if isinstance(value, str):
        return StringType()
    if isinstance(value, _dt.datetime | _dt.date | np.datetime64):
        tz = getattr(value, "tzinfo", None)
        return TimestampType(tz=str(tz) if tz is not None else None)
    own_type = getattr(type(value), "__data_type__", None)
    if own_type is not None:  # a value that describes its own type (an Image)
        return own_type(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return ImageType() if looks_like_image_bytes(bytes(value)) else UnknownType()
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            if value.dtype.kind in "uif":
                return EmbeddingType(dim=int(value.shape[0]))
            return _sequence_type(value.tolist())
        if _is_image_array(value):
            return ImageType()
        return UnknownType()
    if isinstance(value, Mapping):
        return StructType(fields={str(k): type_of(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return _sequence_type(value)
    pil = sys.modules.get("PIL.Image")  # a PIL image exists only once PIL is imported
    if pil is not None and isinstance(value, pil.Image):
        return ImageType()
    return UnknownType()


def unify(a: Any, b: Any) -> Any:
    """The narrowest type holding values of both ``a`` and ``b``.

    Raises ``MixedTypesError`` when there is none (say, a number and a string).
    Integers and floats merge to number; embeddings of different lengths and
    lists merge to a list; nulls make the result optional.
    """
    if a == b:
        return a
    if isinstance(a, AnyType) or isinstance(b, AnyType):
        return AnyType()
    if isinstance(a, OptionalType) or isinstance(b, OptionalType):
        inner = unify(strip_optional(a), strip_optional(b))
        return inner if isinstance(inner, OptionalType) else OptionalType(inner=inner)
    if isinstance(a, UnknownType):
        return b
    if isinstance(b, UnknownType):
        return a
    if isinstance(a, NumberType) and isinstance(b, NumberType):
        return NumberType(integer=a.integer and b.integer)
    if isinstance(a, StringType | CategoryType) and isinstance(b, StringType | CategoryType):
        return StringType()
    if isinstance(a, TimestampType) and isinstance(b, TimestampType):
        return TimestampType(unit=a.unit, tz=a.tz if a.tz == b.tz else None)
    if isinstance(a, EmbeddingType) and isinstance(b, EmbeddingType):
        return ListType(item=NumberType())
    if isinstance(a, EmbeddingType | ListType) and isinstance(b, EmbeddingType | ListType):
        item_a = NumberType() if isinstance(a, EmbeddingType) else a.item
        item_b = NumberType() if isinstance(b, EmbeddingType) else b.item
        return ListType(item=unify(item_a, item_b))
    if isinstance(a, ImageType) and isinstance(b, ImageType):
        classes = {c.id: c for c in (*a.classes, *b.classes)}
        return ImageType(
            box_layers=tuple(dict.fromkeys((*a.box_layers, *b.box_layers))),
            mask_layers=tuple(dict.fromkeys((*a.mask_layers, *b.mask_layers))),
            classes=tuple(classes[k] for k in sorted(classes)),
        )
    if isinstance(a, PlotType) and isinstance(b, PlotType):
        return PlotType()
    if isinstance(a, StructType) and isinstance(b, StructType):
        names = dict.fromkeys((*a.fields, *b.fields))
        fields = {}
        for name in names:
            fa = a.fields.get(name, OptionalType(inner=UnknownType()))
            fb = b.fields.get(name, OptionalType(inner=UnknownType()))
            fields[name] = unify(fa, fb)
        return StructType(fields=fields)
    if isinstance(a, ListType) and isinstance(b, ListType):
        return ListType(item=unify(a.item, b.item))
    raise MixedTypesError(f"cannot merge {describe(a)} with {describe(b)}")
