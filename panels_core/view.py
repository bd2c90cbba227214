"""A View: one Query bound to the Engine that answers it; what a Panel renders."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from panels_core.query.engine import Engine
    from panels_core.query.model import Query
    from panels_core.query.selection import Selection

__all__ = ["View"]

# The projected points registered per engine (stand-in for the engine's own registry):
# key -> (table row numbers, (n, 2) float array).
_POINTS: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any]]] = weakref.WeakKeyDictionary()

# One engine per JoinedTable, holding its two sides as plain tables so the join type can
# change through Query.join (a JoinedTable source always joins as it was registered).
_SIDE_ENGINES: weakref.WeakKeyDictionary[Any, Engine] = weakref.WeakKeyDictionary()


class View:
    """The rows of ``query`` over the tables of ``engine``, and their derived type.

    Panels draw only through these calls (a page, bins, value counts, one
    column as numpy), so they work the same on ten rows and ten million.
    """

    def __init__(self, engine: Engine, query: Query) -> None:
        self.engine = engine
        self.query = query
        self.sink: Callable[[Any], None] | None = None
        self.first = False  # selected rows first (``selected_first``)

    def derived(self, query: Query, *, first: bool = False) -> View:
        """A view of ``query`` on the same engine, keeping the select sink."""
        view = View(self.engine, query)
        view.sink, view.first = self.sink, first
        return view

    @classmethod
    def of(cls, table: Any, name: str = "table") -> View:
        """A view of every row of one Table (or JoinedTable, pandas or Arrow table)."""
        from panels_core.query.engine import Engine
        from panels_core.query.model import Query

        return cls(Engine({name: table}), Query(table=name))

    def of_table(self, name: str) -> View:
        """A view of every row of another table of the same engine."""
        from panels_core.query.model import Query

        return View(self.engine, Query(table=name))

    def joined_table(self) -> Any:
        """The JoinedTable the view's table is registered from; None when it is not one."""
        from panels_core.data.table import JoinedTable

        if self.query.table not in self.engine.table_names():
            return None
        table = self.engine.table(self.query.table)
        return table if isinstance(table, JoinedTable) else None

    def rejoined(self, how: str) -> View:
        """A view of a JoinedTable's two sides joined again with ``Query.join`` as ``how``
        says (inner, left or outer), this view's filter and sort kept.

        The sides live in an engine of their own, one per JoinedTable while it lives.
        ValueError when the view's table is not a JoinedTable."""
        from panels_core.query.engine import Engine
        from panels_core.query.model import JoinSpec

        joined = self.joined_table()
        if joined is None:
            raise ValueError(f"`{self.query.table}` is not a joined table")
        engine = _SIDE_ENGINES.get(joined)
        if engine is None:
            engine = Engine({joined.left_name: joined.left, joined.right_name: joined.right})
            _SIDE_ENGINES[joined] = engine
        spec = JoinSpec(
            table=joined.right_name,
            on=(joined.left_key, joined.right_key),
            how=how,
            names=(joined.left_name, joined.right_name),
        )
        return View(engine, self.query.model_copy(update={"table": joined.left_name, "join": spec}))

    @property
    def type(self) -> Any:
        """The derived type: a TableType (list[T] after grouping, compared[T] after comparing)."""
        return self.engine.result_type(self.query)

    def with_query(self, **changes: Any) -> View:
        """The same engine with some query fields changed (validated)."""
        from panels_core.query.model import Query

        data = self.query.model_dump()
        data.update(changes)
        return self.derived(Query.model_validate(data), first=self.first)

    def count(self) -> int:
        """Rows (or groups) in the view."""
        return self.engine.count(self.query)

    def ungrouped(self) -> View:
        """The view's rows before grouping, unsorted (what they count without groups)."""
        return View(self.engine, self.query.model_copy(update={"group_by": (), "sort": ()}))

    def page(self, offset: int = 0, limit: int = 50, columns: list[str] | None = None) -> pa.Table:
        """One page of rows as Arrow (the selected rows first after ``selected_first``)."""
        if not self.first or self.selection_filter() is None:
            return self.engine.page(self.query, offset=offset, limit=limit, columns=columns)
        import pyarrow as pa

        chosen = self.selected()
        n = chosen.count()
        head = chosen.page(offset, max(0, min(limit, n - offset)), columns) if offset < n else None
        rest = self.derived(self.query.model_copy(update={"filter": self.rest_filter()}))
        start = max(0, offset - n)
        tail = rest.page(start, limit - (0 if head is None else head.num_rows), columns)
        return tail if head is None else pa.concat_tables([head, tail])

    def histogram(self, column: str, **options: Any) -> Any:
        """Histogram bins and counts of a numeric column, computed by the engine."""
        return self.engine.histogram(self.query, column, **options)

    def value_counts(self, column: str | list[str], top: int = 20) -> Any:
        """The most frequent values of a column (or of a tuple of columns)."""
        return self.engine.value_counts(self.query, column, top=top)

    def column_numpy(self, column: str) -> np.ndarray:
        """One column as numpy (an embedding column as a 2-D float array)."""
        return self.engine.column_numpy(self.query, column)

    def grouped(self) -> pa.Table:
        """One row per group: keys plus per-group lists (or precomputed histograms)."""
        return self.engine.grouped(self.query)

    def join_counts(self) -> tuple[int, int, int]:
        """(matched rows, left-only rows, right-only rows) of the view's join, before filters."""
        return self.engine.join_counts(self.query)

    def compared(self) -> pa.Table:
        """The compared table: compared[T] values and a present-in flag per source."""
        return self.engine.compared(self.query)

    # -- linked selection (stand-in for sel-core's; replaced at merge) -------------------

    @property
    def selection(self) -> Selection | None:
        """The table's linked selection (it does not narrow this view's rows)."""
        return self.query.selection

    def with_selection(self, selection: Selection | None) -> View:
        """The same rows with another selection."""
        return self.derived(
            self.query.model_copy(update={"selection": selection}), first=self.first
        )

    def selection_filter(self) -> Any:
        """The selection as a filter expression, None when nothing is brushed."""
        from panels_core.query.engine import ROW
        from panels_core.query.selection import predicate

        if self.selection is None:
            return None
        return predicate(self.selection, self.region_rows, ROW)

    def selected(self) -> View:
        """The view narrowed to the selected rows (``self`` with no selection)."""
        from panels_core.query.expr import Binary

        chosen = self.selection_filter()
        if chosen is None:
            return self if not self.first else self.derived(self.query)
        current = self.query.filter
        combined = chosen if current is None else Binary(op="and", left=current, right=chosen)
        return self.derived(self.query.model_copy(update={"filter": combined}))

    def rest_filter(self) -> Any:
        """The filter of the view's rows the selection leaves out."""
        from panels_core.query.expr import Binary
        from panels_core.query.selection import outside

        rest = outside(self.selection_filter())
        current = self.query.filter
        return rest if current is None else Binary(op="and", left=current, right=rest)

    def selected_first(self) -> View:
        """The same rows, the selected ones first (then the query's own sort)."""
        return self.derived(self.query, first=True)

    def row_numbers(self) -> np.ndarray:
        """The table row numbers of the view's rows, in ``column_numpy``'s order."""
        import numpy as np

        from panels_core.query.engine import ROW

        return np.asarray(self.engine.column_numpy(self.query, ROW), dtype=np.int64)

    def register_points(self, key: str, rows: Any, xy: Any) -> None:
        """Register a projection's points (table row numbers and (n, 2) positions) under ``key``."""
        import numpy as np

        rows = np.asarray(rows, dtype=np.int64)
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(rows) != len(xy):
            raise ValueError(f"register_points: {len(rows)} rows but {len(xy)} points")
        _POINTS.setdefault(self.engine, {})[key] = (rows, xy)

    def region_rows(self, brush: Any) -> np.ndarray:
        """The row numbers of the registered points inside a RegionBrush's polygon."""
        from panels_core.query.errors import QueryError
        from panels_core.query.selection import inside_polygon

        found = _POINTS.get(self.engine, {}).get(brush.points)
        if found is None:
            raise QueryError(
                f"no projected points are registered as `{brush.points}`; "
                "draw the projection again, or clear its selection"
            )
        rows, xy = found
        return rows[inside_polygon(xy, brush.polygon)]

    def with_select_sink(self, sink: Callable[[Any], None] | None) -> View:
        """The same view, publishing ``select``'s brushes to ``sink``."""
        view = self.derived(self.query, first=self.first)
        view.sink = sink
        return view

    def select(self, brush: Any) -> None:
        """Publish this panel's brush (None clears it); a no-op without a sink."""
        if self.sink is not None:
            self.sink(brush)
