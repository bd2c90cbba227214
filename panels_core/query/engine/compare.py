"""Comparison of two tables: the full outer join of ``compare_with`` as a relation.

``compare`` builds it (compared[T] structs, the ``present`` flags), by a hash
join, one join per key range (``splits``) or over sides already paired by a
merge (``merge.Merger``). The rest says what a query needs of a comparison.
"""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from panels_core.query.engine.connection import ROW
from panels_core.query.engine.failures import unknown_column
from panels_core.query.engine.relation import FAR, Pick, Rel, optional
from panels_core.query.engine.sources import Catalog, Source
from panels_core.query.errors import QueryError
from panels_core.query.expr import Binary, Col, walk
from panels_core.query.model import CompareWith, Query
from panels_core.query.sql import Params, quote_ident
from panels_core.types import (
    AnyType,
    BooleanType,
    ComparedType,
    MixedTypesError,
    TableType,
    unify,
)

__all__ = [
    "MAX_PARTS",
    "PART_ROWS",
    "beyond_required",
    "columns_read",
    "compare",
    "key_splits",
    "required_sources",
    "sorted_by_key",
]

# a comparison of two large key-ordered Parquet files joins parts of about this many rows
PART_ROWS = 1_000_000
MAX_PARTS = 64


def compare(
    a: Rel,
    b: Rel,
    spec: CompareWith,
    required: frozenset[int] = frozenset(),
    pick: Pick | None = None,
    splits: list[int] | None = None,
    params: Params | None = None,
    glued: str | None = None,
) -> Rel:
    """Full outer join of two tables; ``required`` sources (the filter demands
    ``N.present``) turn it into a left, right or inner join, which is faster.

    ``glued``: a view already holding both sides paired row by row, as
    columns named ``__tp_a.<column>`` and ``__tp_b.<column>`` (see
    ``merge.Merger.paired``); no join.

    With ``splits`` (integer key values, ascending) the join runs as one join
    per key range (and one for null keys), glued by UNION ALL: each range
    reads only its own row groups and its hash table is a fraction of the
    whole, so peak memory drops; the rows are the same.
    """
    names = tuple(spec.names)
    if len(set(names)) != len(names):
        raise QueryError(f"compare_with: the two sources need different names, got {names}")
    keys = _keys(spec)
    for rel, key, which in ((a, keys[0], "this table"), (b, keys[1], f"`{spec.table}`")):
        if key is not None and key not in rel.fields:
            raise unknown_column(key, rel.fields, f"compare_with key in {which}")
        if "present" in rel.fields:
            raise QueryError(
                f"compare_with: {which} has a column named `present`, the name of the "
                "flag saying which source holds each row; rename that column"
            )
    ref = _reference(glued)
    select, fields, types, compared = _columns(a, b, names, keys, ref)
    row_a, row_b = ref("__tp_a", ROW), ref("__tp_b", ROW)
    select.append(f"coalesce({row_a}, {FAR} + {row_b}) AS __tp_row0")
    select.append(f"{row_b} AS __tp_row1")
    if pick is not None:
        sql = f"SELECT {', '.join(select)} {pick.join(a.sql, b.sql)}"
    elif glued is not None:
        sql = f"SELECT {', '.join(select)} FROM {quote_ident(glued)}"
    else:
        sql = _joined(a, b, ", ".join(select), keys, required, splits, params)
    return Rel(
        sql,
        fields,
        TableType(columns=types),
        ("__tp_row0", "__tp_row1"),
        natural=False,
        compared=frozenset(compared),
        sources=names,
        plain=False,
    )


def _keys(spec: CompareWith) -> tuple[str | None, str | None]:
    """The compare key of each table (None, None: by row position)."""
    if isinstance(spec.on, str):
        return spec.on, spec.on
    if spec.on is None:
        return None, None
    return spec.on[0], spec.on[1]


def _reference(glued: str | None) -> Callable[[str, str], str]:
    """How a side's column is named: ``alias.column``, or the glued view's flat column."""

    def ref(alias: str, column: str) -> str:
        if glued is not None:
            return quote_ident(f"{alias}.{column}")
        return f"{alias}.{quote_ident(column)}"

    return ref


def _columns(
    a: Rel,
    b: Rel,
    names: tuple[str, ...],
    keys: tuple[str | None, str | None],
    ref: Callable[[str, str], str],
) -> tuple[list[str], dict[str, pa.Field], dict[str, Any], set[str]]:
    """The comparison's columns: SELECT terms, Arrow fields, DataTypes and the compared ones.

    The key once, a column both tables hold as compared[T] (a struct per
    source), a column of one table as it is (optional), and ``present``."""
    left_key, right_key = keys
    ta, tb = a.type.columns, b.type.columns
    select, fields, types, compared = [], {}, {}, set()
    if left_key is not None:
        select.append(
            f"coalesce({ref('__tp_a', left_key)}, {ref('__tp_b', right_key)}) "
            f"AS {quote_ident(left_key)}"
        )
        fields[left_key] = a.fields[left_key]
        types[left_key] = ta[left_key]
    for col, f in a.fields.items():
        if col == left_key:
            continue
        if col in b.fields and col != right_key:
            packed = ", ".join(
                f"{quote_ident(n)} := {ref(alias, col)}"
                for n, alias in zip(names, ("__tp_a", "__tp_b"))
            )
            select.append(f"struct_pack({packed}) AS {quote_ident(col)}")
            fields[col] = pa.field(
                col, pa.struct([f.with_name(names[0]), b.fields[col].with_name(names[1])])
            )
            types[col] = ComparedType(item=_merge(ta[col], tb[col]), sources=names)
            compared.add(col)
        else:
            select.append(f"{ref('__tp_a', col)} AS {quote_ident(col)}")
            fields[col], types[col] = f, optional(ta[col])
    for col, f in b.fields.items():
        if col not in fields and col != right_key:
            select.append(f"{ref('__tp_b', col)} AS {quote_ident(col)}")
            fields[col], types[col] = f, optional(tb[col])
    present = ", ".join(
        f"{quote_ident(n)} := ({ref(alias, ROW)} IS NOT NULL)"
        for n, alias in zip(names, ("__tp_a", "__tp_b"))
    )
    select.append(f"struct_pack({present}) AS present")
    fields["present"] = pa.field("present", pa.struct([pa.field(n, pa.bool_()) for n in names]))
    types["present"] = ComparedType(item=BooleanType(), sources=names)
    compared.add("present")
    return select, fields, types, compared


def _joined(
    a: Rel,
    b: Rel,
    select: str,
    keys: tuple[str | None, str | None],
    required: frozenset[int],
    splits: list[int] | None,
    params: Params | None,
) -> str:
    """The SQL joining the two sides (in key ranges when ``splits`` are given)."""
    left_key, right_key = keys
    if left_key is None:
        on = f"__tp_a.{quote_ident(ROW)} = __tp_b.{quote_ident(ROW)}"
    else:
        on = f"__tp_a.{quote_ident(left_key)} = __tp_b.{quote_ident(right_key)}"
    how = {
        frozenset(): "FULL OUTER",
        frozenset({0}): "LEFT",
        frozenset({1}): "RIGHT",
    }.get(required, "INNER")
    if not (splits and params is not None and left_key is not None and right_key is not None):
        return f"SELECT {select} FROM ({a.sql}) AS __tp_a {how} JOIN ({b.sql}) AS __tp_b ON {on}"
    bounds = [None, *(params.add(int(v), "BIGINT") for v in splits), None]
    parts = []
    for lo, hi in [*itertools.pairwise(bounds), (None, None)]:
        # the last part (no bounds) holds the rows whose key is null
        side_a = _key_range(a.sql, quote_ident(left_key), lo, hi)
        side_b = _key_range(b.sql, quote_ident(right_key), lo, hi)
        parts.append(
            f"SELECT {select} FROM ({side_a}) AS __tp_a {how} JOIN ({side_b}) AS __tp_b ON {on}"
        )
    return "SELECT * FROM (" + " UNION ALL ".join(parts) + ") AS __tp_parts"


def key_splits(catalog: Catalog, a: Source, b: Source, spec: CompareWith) -> list[int] | None:
    """Key values splitting a comparison of two large Parquet files into parts.

    Only when both files keep an integer key in row groups of ascending key
    ranges (their statistics say so): then each part's range filter reads a
    few row groups of each file. Parts start at row-group starts of this
    table and hold at least ``PART_ROWS`` of its rows. None: one join.
    """
    if not (a.parquet and b.parquet) or spec.on is None:
        return None
    left_key, right_key = (spec.on, spec.on) if isinstance(spec.on, str) else spec.on
    for source, key in ((a, left_key), (b, right_key)):
        field = source.fields.get(key)
        if field is None or not pa.types.is_integer(field.type):
            return None
    if a.length + b.length < 2 * PART_ROWS:
        return None
    groups = catalog.key_ranges(a, left_key)
    if groups is None or catalog.key_ranges(b, right_key) is None:
        return None
    splits, rows = [], 0
    for low, _, n in groups:
        if rows >= PART_ROWS and (not splits or low > splits[-1]):
            splits.append(low)
            rows = 0
        rows += n
    if len(splits) + 1 > MAX_PARTS:
        step = math.ceil(len(splits) / (MAX_PARTS - 1))
        splits = splits[step - 1 :: step]
    return splits or None


def required_sources(expr: Any, names: Sequence[str]) -> frozenset[int]:
    """Sources whose ``present`` flag is a top-level conjunct of the filter."""
    if expr is None:
        return frozenset()
    if isinstance(expr, Binary) and expr.op == "and":
        return required_sources(expr.left, names) | required_sources(expr.right, names)
    if isinstance(expr, Col) and expr.path[0] == "present":
        if expr.source is not None and len(expr.path) == 1:
            return frozenset({expr.source})
        if expr.source is None and len(expr.path) == 2 and expr.path[1] in names:
            return frozenset({list(names).index(expr.path[1])})
    return frozenset()


def beyond_required(expr: Any, names: Sequence[str]) -> Any:
    """The filter without its top-level ``present`` conjuncts (``required_sources``):
    the join (left, right or inner; the merge's pairs) already keeps only the rows those
    sources hold, so DuckDB need not test them on every row. None: nothing is left."""
    if isinstance(expr, Binary) and expr.op == "and":
        left, right = beyond_required(expr.left, names), beyond_required(expr.right, names)
        if left is None or right is None:
            return right if left is None else left
        return expr.model_copy(update={"left": left, "right": right})
    return None if expr is None or required_sources(expr, names) else expr


def sorted_by_key(query: Query, spec: CompareWith, required: frozenset[int]) -> bool:
    """Whether a merged comparison's pair order already is the query's sort.

    The merge gives its pairs in key order, ties in (row of 0, row of 1) order:
    exactly ``ORDER BY key, row of 0, row of 1`` when every row has a row of
    source 0 (the filter requires it: no row of 1 alone to slot in) and the
    sort is the key ascending. Then the key need not be gathered nor sorted.
    """
    if spec.on is None or len(query.sort) != 1 or 0 not in required:
        return False
    key = spec.on if isinstance(spec.on, str) else spec.on[0]
    return query.sort[0].column == key and not query.sort[0].descending


def columns_read(
    query: Query, fields: Mapping[str, Any], needs: Sequence[str], sort: bool = True
) -> set[str]:
    """The top-level columns a query (filter, ``sort`` unless False, group keys) and
    ``needs`` read."""
    heads = set()
    sorted_by = [key.column for key in query.sort] if sort else []
    for name in [*sorted_by, *query.group_by, *needs]:
        if name in fields:
            heads.add(name)
            continue
        parts = name.split(".")
        if len(parts) > 1 and parts[0].isdigit():
            parts = parts[1:]
        heads.add(parts[0])
    if query.filter is not None:
        heads |= {node.path[0] for node in walk(query.filter) if isinstance(node, Col)}
    return heads


def _key_range(rel_sql: str, key: str, lo: str | None, hi: str | None) -> str:
    """The rows of ``rel_sql`` whose key is in [lo, hi) (no bound: open); null keys
    when neither bound is set."""
    if lo is None and hi is None:
        where = f"{key} IS NULL"
    elif lo is None:
        where = f"{key} < {hi}"
    elif hi is None:
        where = f"{key} >= {lo}"
    else:
        where = f"{key} >= {lo} AND {key} < {hi}"
    return f"SELECT * FROM ({rel_sql}) AS __tp_s WHERE {where}"


def _merge(a: Any, b: Any) -> Any:
    try:
        return unify(a, b)
    except MixedTypesError:
        return AnyType()
