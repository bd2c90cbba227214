"""Relations: a plan's stages as SQL text plus what the next stage needs to know.

``base`` turns a registered table into a relation; ``join_rels`` joins two;
``group`` groups one; ``resolve`` and ``type_of`` name a column or dotted
path of one; ``rows`` selects a query's rows of one, sorted and cut.
"""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from panels_core.query.engine.connection import FILE, FILE_ROW, ROW
from panels_core.query.engine.failures import unknown_column
from panels_core.query.engine.sources import Source, struct_type
from panels_core.query.errors import QueryError
from panels_core.query.expr import Col
from panels_core.query.model import Query
from panels_core.query.sql import Params, Scope, compile_expr, quote_ident
from panels_core.types import (
    AnyType,
    ComparedType,
    ListType,
    NumberType,
    OptionalType,
    StructType,
    TableType,
    strip_optional,
)

__all__ = [
    "FAR",
    "FIRST",
    "Pick",
    "Rel",
    "base",
    "group_by",
    "join_rels",
    "list_agg",
    "optional",
    "order_by",
    "order_expr",
    "resolve",
    "scope",
    "select_rows",
    "type_of",
]

FIRST = "__tp_first"
"""The column that is true for the selected rows of a query sorted selected first."""
FAR = 1 << 40
"""Right-only rows of a comparison sort after every left row (their order is FAR + row)."""


@dataclass
class Rel:
    """A relation in the plan: SQL text plus what the next stage needs to know."""

    sql: str
    fields: dict[str, pa.Field]
    type: Any
    order: tuple[str, ...]
    natural: bool = True  # rows come out in row order without ORDER BY
    compared: frozenset[str] = frozenset()
    sources: tuple[str, ...] = ()
    plain: bool = True  # columns unchanged from one source (field metadata still true)
    keys: tuple[str, ...] = ()  # group keys (after group_by)
    pre: Rel | None = None  # the filtered rows before grouping
    pre_keys: tuple[str, ...] = ()  # the key expressions over ``pre``
    joined: bool = False
    # the query's sort is already the order of ``order`` (a merged comparison sorted by
    # its key): ORDER BY then names just ``order``
    presorted: bool = False
    # the rows carry FIRST, true for the selected rows, which sort before the others
    first: bool = False


class Pick:
    """Rows chosen by position (a page's first pass), to read again with every column.

    ``positions`` are the relation's order tuples: ``(row,)`` for one table;
    ``(left row, right row)`` for a join; for a comparison ``(left row or
    FAR + right row, right row)``.
    """

    def __init__(self, positions: list[tuple[Any, ...]], params: Params, compare: bool) -> None:
        self.positions = positions
        self.params = params
        self.compare = compare
        self._side: int | None = None

    def pairs(self) -> list[tuple[int | None, int | None]]:
        out = []
        for pos in self.positions:
            if len(pos) == 1:
                out.append((pos[0], None))
            elif self.compare:
                out.append((pos[0] if pos[0] < FAR else None, pos[1]))
            else:
                out.append((pos[0], pos[1]))
        return out

    def rows(self, side: int) -> list[int]:
        """The row numbers of one side (this pick's side when it is a side's view)."""
        which = side if self._side is None else self._side
        return sorted({p[which] for p in self.pairs() if p[which] is not None})

    def side(self, side: int) -> Pick:
        view = Pick(self.positions, self.params, self.compare)
        view._side = side
        return view

    def join(self, a_sql: str, b_sql: str) -> str:
        """A FROM clause pairing exactly the picked rows of two relations."""
        left = self.params.add([p[0] for p in self.pairs()], "BIGINT[]")
        right = self.params.add([p[1] for p in self.pairs()], "BIGINT[]")
        return (
            f"FROM (SELECT unnest({left}) AS __tp_l, unnest({right}) AS __tp_r) AS __tp_pairs "
            f"LEFT JOIN ({a_sql}) AS __tp_a ON __tp_a.{quote_ident(ROW)} = __tp_pairs.__tp_l "
            f"LEFT JOIN ({b_sql}) AS __tp_b ON __tp_b.{quote_ident(ROW)} = __tp_pairs.__tp_r"
        )


def base(source: Source, hidden: Mapping[str, Source], pick: Pick | None = None) -> Rel:
    """A registered table as a relation; ``pick`` keeps only some rows (a page)."""
    cols = ", ".join(quote_ident(c) for c in source.fields)
    if source.sides is not None:
        left, right = (hidden[v] for v in source.sides)
        table = source.table
        sides = (None, None) if pick is None else (pick.side(0), pick.side(1))
        return join_rels(
            base(left, hidden, sides[0]),
            base(right, hidden, sides[1]),
            table.left_key,
            table.right_key,
            source.how,
            (table.left_name, table.right_name),
            source.type,
            pick,
        )
    row = quote_ident(ROW)
    sql = f"SELECT {cols}, {row} FROM {quote_ident(source.view)}"
    if pick is not None:
        rows = pick.rows(0)
        sql += f" WHERE list_contains({pick.params.add(rows, 'BIGINT[]')}, {row})"
        if rows:  # lets a Parquet scan skip the row groups outside the picked rows
            low, high = pick.params.add(rows[0], "BIGINT"), pick.params.add(rows[-1], "BIGINT")
            sql += f" AND {row} BETWEEN {low} AND {high}"
        if rows and source.dataset is not None:  # lets a dataset's scan skip files, row groups
            files, within = source.dataset.locate(rows)
            names = pick.params.add([str(f) for f in files])
            sql += f" AND {quote_ident(FILE)} IN (SELECT unnest({names}))"
            sql += f" AND {quote_ident(FILE_ROW)} IN (SELECT unnest({pick.params.add(within)}))"
    return Rel(sql, dict(source.fields), source.type, (ROW,))


def join_rels(
    a: Rel,
    b: Rel,
    left_key: str,
    right_key: str,
    how: str,
    names: tuple[str, str],
    joined_type: Any,
    pick: Pick | None = None,
) -> Rel:
    """Two relations joined on their keys, each side's columns packed in a struct named for it."""
    for rel, key, side in ((a, left_key, names[0]), (b, right_key, names[1])):
        if key not in rel.fields:
            raise unknown_column(key, rel.fields, f"join key of `{side}`")
    sql_how = {"inner": "INNER", "left": "LEFT", "outer": "FULL OUTER"}[how]
    parts = []
    for alias, rel, name in (("__tp_a", a, names[0]), ("__tp_b", b, names[1])):
        packed = ", ".join(f"{quote_ident(c)} := {alias}.{quote_ident(c)}" for c in rel.fields)
        parts.append(
            f"CASE WHEN {alias}.{quote_ident(ROW)} IS NULL THEN NULL "
            f"ELSE struct_pack({packed}) END AS {quote_ident(name)}"
        )
    sql = (
        f"SELECT {', '.join(parts)}, __tp_a.{quote_ident(ROW)} AS __tp_row0, "
        f"__tp_b.{quote_ident(ROW)} AS __tp_row1 "
        + (
            pick.join(a.sql, b.sql)
            if pick is not None
            else f"FROM ({a.sql}) AS __tp_a {sql_how} JOIN ({b.sql}) AS __tp_b "
            f"ON __tp_a.{quote_ident(left_key)} = __tp_b.{quote_ident(right_key)}"
        )
    )
    fields = {
        names[0]: pa.field(names[0], struct_type(a.fields)),
        names[1]: pa.field(names[1], struct_type(b.fields)),
    }
    return Rel(
        sql,
        fields,
        joined_type,
        ("__tp_row0", "__tp_row1"),
        natural=False,
        plain=False,
        joined=True,
    )


def scope(rel: Rel) -> Scope:
    """What the filter compiler may name in ``rel``."""
    return Scope(
        fields=dict(rel.fields),
        compared=rel.compared,
        sources=rel.sources,
        row=ROW if rel.order == (ROW,) else None,
    )


def resolve(rel: Rel, name: str, params: Params, what: str) -> tuple[str, pa.DataType]:
    """SQL and Arrow type of a column name, or a dotted path (``0.score``, ``left.id``)."""
    if name in rel.fields:
        return quote_ident(name), rel.fields[name].type
    if name == ROW and rel.order == (ROW,):  # one table's row number, as a page column
        return quote_ident(ROW), pa.int64()
    parts = name.split(".")
    source = None
    if len(parts) > 1 and parts[0].isdigit() and rel.compared:
        source, parts = int(parts[0]), parts[1:]
    if parts[0] not in rel.fields:
        raise unknown_column(name, rel.fields, what)
    compiled = compile_expr(Col(path=tuple(parts), source=source), scope(rel), params)
    return compiled.sql, compiled.type


def group_by(
    rel: Rel,
    keys: Sequence[str],
    params: Params,
    sample: int | None,
    only: Sequence[str] | None = None,
) -> Rel:
    """One row per group: keys, ``count``, and each other column as a list.

    With ``sample`` set, non-numeric lists keep their first ``sample`` values;
    with ``only`` set, just those other columns are aggregated (cheaper).
    """
    if rel.joined:
        raise QueryError(
            "group_by on a joined table is not supported; group one of the tables instead"
        )
    key_sql, fields, types = [], {}, {}
    for key in keys:
        sql, arrow_type = resolve(rel, key, params, "group_by column")
        key_sql.append(sql)
        fields[key] = pa.field(key, arrow_type)
        types[key] = type_of(rel, key)
    if "count" in rel.fields and "count" not in keys:
        raise QueryError(
            "group_by: the table has a column named `count`, the name of the group size "
            "column; rename that column or group by it"
        )
    order = order_expr(rel.order)
    select = [f"{s} AS {quote_ident(k)}" for s, k in zip(key_sql, keys)]
    select.append('count(*) AS "count"')
    fields["count"] = pa.field("count", pa.int64())
    types["count"] = NumberType(integer=True)
    for col in rel.fields:
        if col in keys or (only is not None and col not in only):
            continue
        select.append(_listed(rel, col, order, sample, fields, types))
    select += [f"min({quote_ident(o)}) AS {quote_ident(o)}" for o in rel.order]
    sql = f"SELECT {', '.join(select)} FROM ({rel.sql}) AS __tp_g GROUP BY {', '.join(key_sql)}"
    return Rel(
        sql,
        fields,
        TableType(columns=types),
        rel.order,
        natural=False,
        compared=rel.compared - set(keys),
        sources=rel.sources,
        plain=False,
        keys=tuple(keys),
        pre=rel,
        pre_keys=tuple(key_sql),
    )


def _listed(
    rel: Rel,
    col: str,
    order: str,
    sample: int | None,
    fields: dict[str, pa.Field],
    types: dict[str, Any],
) -> str:
    """The SELECT term of a grouped column as a list (a list per source when compared);
    its Arrow field and DataType go into ``fields`` and ``types``."""
    f = rel.fields[col]
    if col not in rel.compared:
        fields[col] = pa.field(col, pa.list_(f.type))
        types[col] = ListType(item=rel.type.columns[col])
        return f"{list_agg(quote_ident(col), order, sample)} AS {quote_ident(col)}"
    parts = []
    for source in rel.sources:
        value = f"{quote_ident(col)}.{quote_ident(source)}"
        parts.append(f"{quote_ident(source)} := {list_agg(value, order, sample)}")
    fields[col] = pa.field(
        col, pa.struct([pa.field(s, pa.list_(f.type.field(s).type)) for s in rel.sources])
    )
    item = rel.type.columns[col]
    types[col] = ComparedType(item=ListType(item=item.item), sources=item.sources)
    return f"struct_pack({', '.join(parts)}) AS {quote_ident(col)}"


def type_of(rel: Rel, name: str) -> Any:
    """The DataType of a column or dotted path (AnyType when the type model has no answer)."""
    if isinstance(rel.type, TableType) and name in rel.type.columns:
        return rel.type.columns[name]
    parts = name.split(".")
    t: Any = rel.type
    if parts[0].isdigit() and rel.compared:
        parts = parts[1:]
        column = rel.type.columns.get(parts[0])
        t = TableType(
            columns={parts[0]: column.item if isinstance(column, ComparedType) else column}
        )
    nullable = False
    for part in parts:
        nullable = nullable or isinstance(t, OptionalType)
        t = strip_optional(t)
        if isinstance(t, TableType | StructType):
            t = (t.columns if isinstance(t, TableType) else t.fields).get(part, AnyType())
        else:
            return AnyType()
    return optional(t) if nullable else t


def order_by(rel: Rel, query: Query, params: Params) -> str:
    """The ORDER BY terms of the query's sort over ``rel``, then its row order."""
    terms = [f"{quote_ident(FIRST)} DESC"] if rel.first else []
    for key in () if rel.presorted else query.sort:
        sql, _ = resolve(rel, key.column, params, "sort column")
        terms.append(f"{sql} {'DESC' if key.descending else 'ASC'} NULLS LAST")
    terms += [f"{quote_ident(o)} ASC NULLS LAST" for o in rel.order]
    return ", ".join(terms)


def select_rows(
    rel: Rel,
    query: Query,
    params: Params,
    select: str = "*",
    offset: int = 0,
    limit: int | None = None,
    ordered: bool = False,
) -> str:
    """``SELECT select`` over the query's rows: sorted, then offset/limit (query's + extra)."""
    start = query.offset + offset
    if query.limit is not None:
        stop = query.offset + query.limit
        limit = stop - start if limit is None else min(limit, stop - start)
        limit = max(limit, 0)
    need_order = ordered or start > 0 or limit is not None
    sql = f"SELECT {select} FROM ({rel.sql}) AS __tp_q"
    if need_order and ((query.sort and not rel.presorted) or not rel.natural or rel.first):
        sql += f" ORDER BY {order_by(rel, query, params)}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if start:
        sql += f" OFFSET {int(start)}"
    return sql


def list_agg(value: str, order: str, sample: int | None) -> str:
    """A list aggregate of ``value`` in row order; the first ``sample`` values when set."""
    if sample is None:
        return f"list({value} ORDER BY {order})"
    # min_by skips null arguments; wrapping the value in a struct keeps nulls in the sample
    return (
        f"list_transform(min_by({{'v': {value}}}, {order}, {int(sample)}), lambda __tp_s: __tp_s.v)"
    )


def order_expr(order: Sequence[str]) -> str:
    """One SQL value ordering rows as the order columns do."""
    if len(order) == 1:
        return quote_ident(order[0])
    return "struct_pack(" + ", ".join(quote_ident(o) for o in order) + ")"


def optional(t: Any) -> Any:
    """``t`` that may be missing (unchanged when it already may)."""
    return t if isinstance(t, OptionalType | AnyType) else OptionalType(inner=t)
