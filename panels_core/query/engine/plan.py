"""Plans: a Query as a relation, in the order compare_with -> join -> filter -> group_by.

``Planner.session`` opens a call's cursor and plans the query on it; the
sort and offset/limit come last (``relation.rows``).
"""

# SQL here is built only from quote_ident() names checked against the schema and $n
# placeholders bound to literals, never from user text:
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from panels_core.query.check import check_filter
from panels_core.query.engine.compare import (
    beyond_required,
    columns_read,
    compare,
    key_splits,
    required_sources,
    sorted_by_key,
)
from panels_core.query.engine.execute import Runner
from panels_core.query.engine.failures import first_line, unknown_column
from panels_core.query.engine.merge import Merger
from panels_core.query.engine.relation import (
    FIRST,
    Pick,
    Rel,
    base,
    group_by,
    join_rels,
    resolve,
    scope,
)
from panels_core.query.engine.sources import Catalog, Source
from panels_core.query.errors import QueryError
from panels_core.query.expr import Call, InSelection, Lit, walk
from panels_core.query.model import CompareWith, JoinSpec, Query
from panels_core.query.sql import Params, compile_expr, quote_ident
from panels_core.types import JoinedTableType, StructType, TableType

__all__ = ["Planner"]


class Planner:
    """Plans queries over a catalog's tables (a merge for large sorted comparisons)."""

    def __init__(self, catalog: Catalog, runner: Runner, merger: Merger) -> None:
        self.catalog = catalog
        self.runner = runner
        self.merger = merger

    @contextmanager
    def session(self, query: Query, what: str, **plan: Any) -> Iterator[tuple[Any, Params, Rel]]:
        """A call's cursor, the query's bound parameters and its plan (``plan`` options)."""
        if not isinstance(query, Query):
            raise TypeError(f"Engine.{what} needs a Query, not {type(query).__name__}")
        with self.catalog.cursor() as cur:
            params = Params()
            try:
                rel = self.plan(query, params, cur, **plan)
            except duckdb.Error as exc:
                raise self.runner.error(exc, what) from None
            yield cur, params, rel

    def plan(
        self,
        query: Query,
        params: Params,
        cur: Any,
        sample: int | None = None,
        group: bool = True,
        pick: Pick | None = None,
        needs: Sequence[str] | None = None,
    ) -> Rel:
        """The relation of ``query`` before sort and offset/limit.

        With ``pick`` (rows chosen by a first pass) the tables are read at
        those row positions only, and the filter is not applied again.
        ``needs``: the only columns the caller reads besides the query's own
        (filter, sort, group keys); then a comparison of two tables sorted by
        an integer key may pair rows by a merge (``_paired``) and carry just
        those columns. None: every column stays readable.
        """
        source = self.catalog.source(query.table)
        two = query.compare_with is not None or query.join is not None
        rel = base(source, self.catalog.hidden, pick if not two or pick is None else pick.side(0))
        if query.compare_with is not None:
            rel = self.compare_spec(query, source, rel, params, cur, group, pick, needs)
        if query.join is not None:
            rel = self.join_spec(query, source, rel, pick)
        if query.filter is not None and pick is None:
            rel = self.filter(rel, query.filter, params, cur, query.compare_with)
        chosen = query.selection.as_filter() if query.selection is not None else None
        if query.selected_first and chosen is not None and pick is None:
            rel = self.selected_first(rel, chosen, params, cur)
        if query.group_by and group:
            rel = group_by(rel, query.group_by, params, sample)
        if group or not query.group_by:
            for key in query.sort:  # checked here, even by calls that need no order
                resolve(rel, key.column, Params(), "sort column")
        return rel

    def compare_spec(
        self,
        query: Query,
        source: Source,
        rel: Rel,
        params: Params,
        cur: Any,
        group: bool,
        pick: Pick | None,
        needs: Sequence[str] | None,
    ) -> Rel:
        """The query's ``compare_with`` of another table against ``rel`` (see ``plan``)."""
        spec: CompareWith = query.compare_with  # type: ignore[assignment]
        if source.sides is not None or query.join is not None:
            raise QueryError("compare_with cannot be combined with a join; compare plain tables")
        other = self.catalog.source(spec.table)
        if other.sides is not None:
            raise QueryError(
                f"compare_with: `{other.name}` is a joined table; compare plain tables"
            )
        required = required_sources(query.filter, spec.names)
        other_rel = base(other, self.catalog.hidden, None if pick is None else pick.side(1))
        grouping = bool(query.group_by) and group
        whole = compare(rel, other_rel, spec, required, pick)  # checks, fields, types
        paired = None
        by_key = sorted_by_key(query, spec, required)
        if pick is None and needs is not None and not grouping:
            heads = columns_read(query, whole.fields, needs, sort=not by_key)
            paired = self.merger.paired(cur, source, other, spec, required, heads)
        if paired is not None:
            a_side, b_side, glue, view = paired
            glued = compare(a_side, b_side, glue, required, glued=view)
            rel = dataclasses.replace(whole, sql=glued.sql, presorted=by_key)
        elif pick is not None:
            rel = whole
        else:
            splits = key_splits(self.catalog, source, other, spec)
            rel = compare(rel, other_rel, spec, required, None, splits, params)
        return rel

    def join_spec(self, query: Query, source: Source, rel: Rel, pick: Pick | None = None) -> Rel:
        """The query's ``join`` of another table onto ``rel``."""
        spec: JoinSpec = query.join  # type: ignore[assignment]
        if source.sides is not None:
            raise QueryError(f"`{source.name}` is already a joined table; join plain tables")
        other = self.catalog.source(spec.table)
        if other.sides is not None:
            raise QueryError(f"join: `{other.name}` is a joined table; join plain tables")
        left_key, right_key = (spec.on, spec.on) if isinstance(spec.on, str) else spec.on
        names = spec.names or (query.table, spec.table)
        if names[0] == names[1]:
            names = ("left", "right")
        for src, key in ((source, left_key), (other, right_key)):
            if key not in src.fields:
                raise unknown_column(key, src.fields, f"join key of `{src.name}`")
        joined_type = JoinedTableType(
            left=source.type,
            right=other.type,
            left_key=left_key,
            right_key=right_key,
            left_name=names[0],
            right_name=names[1],
        )
        return join_rels(
            rel,
            base(other, self.catalog.hidden, None if pick is None else pick.side(1)),
            left_key,
            right_key,
            spec.how,
            names,
            joined_type,
            pick,
        )

    def filter(
        self, rel: Rel, expr: Any, params: Params, cur: Any, spec: CompareWith | None = None
    ) -> Rel:
        """``rel``'s rows that pass the filter (checked first); over a comparison
        (``spec``) its ``present`` conjuncts the join already keeps are not run."""
        if spec is not None:
            self.check(rel, expr)
            expr = beyond_required(expr, spec.names)
            if expr is None:
                return rel
        compiled = self.predicate(rel, expr, params, cur)
        sql = f"SELECT * FROM ({rel.sql}) AS __tp_f WHERE {compiled}"
        # a region is a semi-join on the row number, which DuckDB does not keep in row order
        regions = any(isinstance(node, InSelection) for node in walk(expr))
        return Rel(**{**rel.__dict__, "sql": sql, "natural": rel.natural and not regions})

    def selected_first(self, rel: Rel, expr: Any, params: Params, cur: Any) -> Rel:
        """``rel``'s rows with ``FIRST`` true for those the selection ``expr`` holds."""
        compiled = self.predicate(rel, expr, params, cur)
        sql = (
            f"SELECT *, coalesce(({compiled}), false) AS {quote_ident(FIRST)} "
            f"FROM ({rel.sql}) AS __tp_s"
        )
        return Rel(**{**rel.__dict__, "sql": sql, "first": True})

    def predicate(self, rel: Rel, expr: Any, params: Params, cur: Any) -> str:
        """The SQL of a filter over ``rel`` (checked first; ``in_selection`` resolved)."""
        self.check(rel, expr)
        self.check_patterns(expr, cur)
        names = scope(rel)
        names.regions = lambda key, polygon: self.catalog.points.sql(key, polygon, cur)
        return compile_expr(expr, names, params).sql

    def check(self, rel: Rel, expr: Any) -> None:
        """Type-check the filter (did-you-mean, type errors)."""
        table_type = rel.type
        if isinstance(table_type, JoinedTableType):
            table_type = TableType(
                columns={
                    table_type.left_name: StructType(fields=dict(table_type.left.columns)),
                    table_type.right_name: StructType(fields=dict(table_type.right.columns)),
                }
            )
        schema = pa.schema(list(rel.fields.values()))
        check_filter(expr, table_type, schema)

    def check_patterns(self, expr: Any, cur: Any) -> None:
        """Reject an invalid regular expression in ``matches`` before the query runs."""
        for node in walk(expr):
            if isinstance(node, Call) and node.fn == "matches" and len(node.args) == 2:
                pattern = node.args[1]
                if isinstance(pattern, Lit) and isinstance(pattern.value, str):
                    try:
                        cur.execute(
                            "SELECT regexp_matches('', $p)", {"p": pattern.value}
                        ).fetchall()
                    except duckdb.Error as exc:
                        reason = first_line(exc).split(":", 1)[-1].strip()
                        raise QueryError(
                            f"matches(): invalid regular expression {pattern.value!r}: {reason}; "
                            "fix the pattern (RE2 syntax, no look-around or back-references)"
                        ) from None
