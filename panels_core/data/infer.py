"""Infer a TableType from Arrow (or pandas) columns.

The Arrow schema decides first; a bounded sample of values settles what the
schema cannot (string vs category by cardinality, list vs embedding by
lengths, image bytes by magic numbers); per-column overrides win. Nothing here
reads more than ``SAMPLE_ROWS`` rows, however long the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from panels_core.data.media import image_type_of_field, is_image_bytes_column, is_image_field
from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    EmbeddingType,
    ImageType,
    ListType,
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
    "infer_column_type",
    "infer_from_arrow",
    "infer_table_type",
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


def infer_column_type(
    field: pa.Field, sample: pa.Array | pa.ChunkedArray, null_count: int | None = None
) -> Any:
    """The DataType of one Arrow column, from its field and a sample of its values.

    ``null_count`` is the column's null count over all rows when known (Arrow
    keeps it; Parquet statistics give it); otherwise the sample's nulls decide.
    """
    t = field.type
    metadata = field.metadata or {}
    if metadata.get(KIND_KEY) == b"any":
        return AnyType()
    if is_image_field(field):
        inner: Any = image_type_of_field(field)
    elif pa.types.is_null(t):
        return OptionalType(inner=UnknownType())
    elif pa.types.is_boolean(t):
        inner = BooleanType()
    elif pa.types.is_integer(t):
        inner = NumberType(integer=True)
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        inner = NumberType()
    elif pa.types.is_dictionary(t):
        dictionary_values = None
        if isinstance(sample, pa.ChunkedArray) and sample.num_chunks:
            dictionary_values = sample.chunk(0).dictionary
        elif isinstance(sample, pa.DictionaryArray):
            dictionary_values = sample.dictionary
        cats = _category_values(dictionary_values) if dictionary_values is not None else None
        inner = CategoryType(categories=cats)
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        inner = _string_type(sample)
    elif pa.types.is_timestamp(t):
        inner = TimestampType(unit=t.unit, tz=t.tz)
    elif pa.types.is_date(t):
        inner = TimestampType(unit="s")
    elif pa.types.is_fixed_size_list(t) and (
        pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)
    ):
        inner = EmbeddingType(dim=t.list_size)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _list_type(t, sample)
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        inner = ImageType() if is_image_bytes_column(sample.to_pylist()) else UnknownType()
    elif pa.types.is_struct(t):
        flat = sample.combine_chunks() if isinstance(sample, pa.ChunkedArray) else sample
        inner = StructType(
            fields={
                t.field(i).name: infer_column_type(t.field(i), flat.field(i))
                for i in range(t.num_fields)
            }
        )
    else:
        inner = UnknownType()
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


def infer_table_type(source: Any, dtypes: Mapping[str, Any] | None = None) -> TableType:
    """The TableType of an Arrow table, a pandas DataFrame or a Table.

    Reads the schema, the null counts Arrow already keeps, and at most
    ``SAMPLE_ROWS`` rows.
    """
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        null_counts = {name: source.column(name).null_count for name in source.column_names}
        return infer_from_arrow(source.schema, sample_rows(source), null_counts, dtypes)
    from panels_core.data.table import Table

    if not isinstance(source, Table):
        source = Table(dataframe=source, dtypes=dtypes)
        return source.type
    return source.type if not dtypes else source.with_dtypes(dtypes).type
