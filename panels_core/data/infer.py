"""Infer a TableType from Arrow columns: the one Arrow -> DataType map.

The Arrow schema decides first; a bounded sample of values settles what the
schema cannot (string vs category by cardinality, list vs embedding by
lengths, image bytes by magic numbers); per-column overrides win. Nothing here
reads more than ``SAMPLE_ROWS`` rows, however long the table. Tables of other
sources (pandas, a Table) are typed by ``panels_core.data.table.infer_table_type``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from panels_core.data.media import image_type_of_field, is_image_bytes_column, is_image_field
from panels_core.data.media_files import is_media_field, media_type_of_field
from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    EmbeddingType,
    ImageType,
    ListType,
    MediaType,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TableType,
    TimestampType,
    UnknownType,
    describe,
    parse_type,
    strip_optional,
)

__all__ = [
    "CATEGORY_MAX",
    "SAMPLE_ROWS",
    "arrow_data_type",
    "infer_column_type",
    "infer_from_arrow",
    "is_list_type",
    "needs_sample",
    "sample_rows",
]

SAMPLE_ROWS = 2048
"""At most this many rows are read to settle a column's type."""
CATEGORY_MAX = 50
"""A string column with at most this many distinct values (and at most half the sample) is a category."""
_SAMPLE_BLOCKS = 8
KIND_KEY = b"typed_panels.kind"


def sample_rows(table: pa.Table, n: int = SAMPLE_ROWS) -> pa.Table:
    """Up to ``n`` rows from evenly spaced blocks of ``table`` (cost O(n), not O(rows))."""
    rows = table.num_rows
    if rows <= n:
        return table
    block = max(n // _SAMPLE_BLOCKS, 1)
    starts = [round(i * (rows - block) / (_SAMPLE_BLOCKS - 1)) for i in range(_SAMPLE_BLOCKS)]
    return pa.concat_tables([table.slice(start, block) for start in starts])


def _category_values(values: pa.Array | pa.ChunkedArray) -> tuple[Any, ...] | None:
    distinct = pc.unique(values.drop_null() if hasattr(values, "drop_null") else values)
    if len(distinct) > CATEGORY_MAX:
        return None
    return tuple(sorted(v for v in distinct.to_pylist() if v is not None))


def _string_type(sample: pa.Array | pa.ChunkedArray) -> Any:
    values = sample.drop_null()
    if len(values) == 0:
        return StringType()
    distinct = pc.count_distinct(values).as_py()
    if distinct <= CATEGORY_MAX and distinct <= max(2, len(values) // 2):
        return CategoryType(categories=_category_values(values))
    return StringType()


def _list_type(arrow_type: pa.DataType, sample: pa.Array | pa.ChunkedArray) -> Any:
    value_type = arrow_type.value_type
    if isinstance(sample, pa.ChunkedArray):
        sample = sample.combine_chunks() if sample.num_chunks else pa.array([], arrow_type)
    if pa.types.is_integer(value_type) or pa.types.is_floating(value_type):
        lengths = pc.list_value_length(sample).drop_null()
        distinct = pc.unique(lengths).to_pylist()
        if len(distinct) == 1 and distinct[0] > 0:
            return EmbeddingType(dim=int(distinct[0]))
        if not distinct:  # no non-null lists in the sample
            return EmbeddingType()
        return ListType(item=NumberType(integer=pa.types.is_integer(value_type)))
    item_field = pa.field("item", value_type)
    return ListType(item=strip_optional(infer_column_type(item_field, pc.list_flatten(sample))))


def _dictionary_categories(sample: pa.Array | pa.ChunkedArray | None) -> tuple[Any, ...] | None:
    dictionary_values = None
    if isinstance(sample, pa.ChunkedArray) and sample.num_chunks:
        dictionary_values = sample.chunk(0).dictionary
    elif isinstance(sample, pa.DictionaryArray):
        dictionary_values = sample.dictionary
    return _category_values(dictionary_values) if dictionary_values is not None else None


def _struct_type(t: pa.DataType, sample: pa.Array | pa.ChunkedArray | None) -> Any:
    fields = [t.field(i) for i in range(t.num_fields)]
    if sample is None:
        return StructType(fields={f.name: arrow_data_type(f.type) for f in fields})
    flat = sample.combine_chunks() if isinstance(sample, pa.ChunkedArray) else sample
    return StructType(
        fields={f.name: infer_column_type(f, flat.field(i)) for i, f in enumerate(fields)}
    )


def needs_sample(field: pa.Field, null_count: int | None) -> bool:
    """Whether a column's type needs a sample of its values: False when its Arrow type
    and its null count (from a footer's statistics) decide alone (booleans, numbers,
    timestamps, dates, numeric embeddings); True for strings (category or text?),
    lists, binary, structs, dictionaries, and any column whose null count is unknown."""
    t = field.type
    if null_count is None or is_image_field(field) or is_media_field(field):
        return True
    plain = (
        pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_date(t)
    )
    embedding = pa.types.is_fixed_size_list(t) and (
        pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)
    )
    return not (plain or embedding)


def is_list_type(t: pa.DataType | None) -> bool:
    """True for an Arrow list, large list or fixed-size list type."""
    return t is not None and (
        pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    )


def arrow_data_type(t: pa.DataType, sample: pa.Array | pa.ChunkedArray | None = None) -> Any:
    """The DataType of Arrow type ``t``: the one Arrow -> DataType map.

    With a ``sample`` of the values, they settle what the type cannot (string or
    category, embedding or list, image bytes, a dictionary's categories); without
    one (a field met inside a struct, a list or a map) the Arrow type alone decides.
    """
    if pa.types.is_boolean(t):
        return BooleanType()
    if pa.types.is_integer(t):
        return NumberType(integer=True)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return NumberType()
    if pa.types.is_dictionary(t):
        return CategoryType(categories=_dictionary_categories(sample))
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return StringType() if sample is None else _string_type(sample)
    if pa.types.is_timestamp(t):
        return TimestampType(unit=t.unit, tz=t.tz)
    if pa.types.is_date(t):
        return TimestampType(unit="s")
    if pa.types.is_fixed_size_list(t) and (
        pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)
    ):
        return EmbeddingType(dim=t.list_size)
    if is_list_type(t):
        return (
            ListType(item=arrow_data_type(t.value_type))
            if sample is None
            else _list_type(t, sample)
        )
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t)) and sample is not None:
        return ImageType() if is_image_bytes_column(sample.to_pylist()) else UnknownType()
    if pa.types.is_struct(t):
        return _struct_type(t, sample)
    return UnknownType()


def infer_column_type(
    field: pa.Field, sample: pa.Array | pa.ChunkedArray, null_count: int | None = None
) -> Any:
    """The DataType of one Arrow column, from its field and a sample of its values.

    ``null_count`` is the column's null count over all rows when known (Arrow
    keeps it; Parquet statistics give it); otherwise the sample's nulls decide.
    """
    metadata = field.metadata or {}
    if metadata.get(KIND_KEY) == b"any":
        return AnyType()
    if is_image_field(field):
        inner: Any = image_type_of_field(field)
    elif is_media_field(field):
        inner = media_type_of_field(field)
    elif pa.types.is_null(field.type):
        return OptionalType(inner=UnknownType())
    else:
        inner = arrow_data_type(field.type, sample)
    nulls = null_count if null_count is not None else sample.null_count
    return OptionalType(inner=inner) if nulls else inner


def _apply_override(name: str, inferred: Any, override: Any, sample: Any, arrow_type: Any) -> Any:
    """The user's type for a column, checked against what the column can hold."""
    wanted = override if hasattr(override, "kind") else parse_type(override)
    kind = strip_optional(wanted).kind
    numeric = pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)
    fits = {
        "number": numeric,
        "boolean": pa.types.is_boolean(arrow_type),
        "embedding": isinstance(strip_optional(inferred), EmbeddingType | ListType),
        "image": isinstance(strip_optional(inferred), ImageType),
        "timestamp": isinstance(strip_optional(inferred), TimestampType),
    }.get(kind, True)
    if isinstance(strip_optional(wanted), MediaType) or isinstance(
        strip_optional(inferred), MediaType
    ):  # a media column is only ever its own kind
        fits = strip_optional(inferred).kind == kind
    if not fits:
        raise TypeError(
            f"column `{name}`: cannot treat {describe(inferred)} values as {kind}; "
            f"drop the override for `{name}` or convert the column first"
        )
    if kind == "category" and getattr(strip_optional(wanted), "categories", None) is None:
        values = sample.dictionary_decode() if pa.types.is_dictionary(arrow_type) else sample
        try:
            wanted = CategoryType(categories=_category_values(values))
        except (pa.ArrowNotImplementedError, TypeError):
            wanted = CategoryType()
    if isinstance(inferred, OptionalType) and not isinstance(wanted, OptionalType):
        wanted = OptionalType(inner=wanted)
    return wanted


def infer_from_arrow(
    schema: pa.Schema,
    sample: pa.Table,
    null_counts: Mapping[str, int | None] | None = None,
    dtypes: Mapping[str, Any] | None = None,
) -> TableType:
    """A TableType from a schema, a bounded sample of rows and per-column null counts."""
    dtypes = dict(dtypes or {})
    unknown = set(dtypes) - set(schema.names)
    if unknown:
        raise KeyError(
            f"dtypes names {sorted(unknown)} which are not columns; the columns are {schema.names}"
        )
    columns: dict[str, Any] = {}
    for field in schema:
        values = sample.column(field.name)
        null_count = (null_counts or {}).get(field.name)
        inferred = infer_column_type(field, values, null_count)
        if field.name in dtypes:
            inferred = _apply_override(field.name, inferred, dtypes[field.name], values, field.type)
        columns[field.name] = inferred
    return TableType(columns=columns)
