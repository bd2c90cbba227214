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

# One engine per JoinedTable, holding its two sides as plain tables so the join type can
# change through Query.join (a JoinedTable source always joins as it was registered).
_SIDE_ENGINES: weakref.WeakKeyDictionary[Any, Engine] = weakref.WeakKeyDictionary()


class View:
    """The rows of ``query`` over the tables of ``engine``, and their derived type.

    Panels draw only through these calls (a page, bins, value counts, one
    column as numpy), so they work the same on ten rows and ten million.

    ``selection`` is the table's linked selection (``query.selection``); a panel
    that can select publishes its brush with ``select``, which goes to the
    ``select_sink`` the card attached (outside a workspace: nowhere).
    """

    def __init__(
        self,
        engine: Engine,
        query: Query,
        select_sink: Callable[[Any], None] | None = None,
    ) -> None:
        self.engine = engine
        self.query = query
        self.select_sink = select_sink

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
        return View(self.engine, Query.model_validate(data), self.select_sink)

    # -- linked selection --------------------------------------------------------------

    @property
    def selection(self) -> Selection | None:
        """The table's linked selection (None: nothing is selected)."""
        return self.query.selection

    def with_selection(self, selection: Selection | None) -> View:
        """This view carrying another selection (its own rows unchanged)."""
        query = self.query.model_copy(update={"selection": selection})
        return View(self.engine, query, self.select_sink)

    def with_select_sink(self, sink: Callable[[Any], None] | None) -> View:
        """This view with ``select`` sending brushes to ``sink`` (what a card attaches)."""
        return View(self.engine, self.query, sink)

    def select(self, brush: Any) -> None:
        """Publish this panel's brush (None clears it); a no-op outside a workspace."""
        if self.select_sink is not None:
            self.select_sink(brush)

    def selected(self) -> View:
        """The view narrowed to the selected rows (its filter AND the selection); the
        view itself when nothing is selected. Its counts, bins and pages are the
        selected rows' answers (ask ``histogram`` with the same bins to compare)."""
        from panels_core.query.expr import Binary

        chosen = None if self.selection is None else self.selection.as_filter()
        if chosen is None:
            return self
        own = self.query.filter
        narrowed = chosen if own is None else Binary(op="and", left=own, right=chosen)
        query = self.query.model_copy(update={"filter": narrowed, "selected_first": False})
        return View(self.engine, query, self.select_sink)

    def selected_first(self) -> View:
        """The same rows with the selected ones first, then the query's own sort."""
        query = self.query.model_copy(update={"selected_first": True})
        return View(self.engine, query, self.select_sink)

    def row_numbers(self) -> np.ndarray:
        """The table row numbers (int64) of the view's rows, in ``column_numpy``'s order."""
        return self.engine.row_numbers(self.query)

    def register_points(self, key: str, rows: Any, xy: Any) -> None:
        """Register a projection's points (row numbers and an (n, 2) float array) under
        ``key``, so a ``RegionBrush(points=key, ...)`` selects the rows inside its polygon.
        Registering ``key`` again replaces its points."""
        self.engine.register_points(key, rows, xy)

    def register_point_frame(self, key: str, frame: Any) -> None:
        """Register points that stay on the engine's Dask cluster (a Dask dataframe of
        ``row``, the table's row number, ``x`` and ``y``) under ``key``: a
        ``RegionBrush(points=key, ...)`` is then resolved on the workers."""
        self.engine.register_point_frame(key, frame)

    def count(self) -> int:
        """Rows (or groups) in the view."""
        return self.engine.count(self.query)

    def ungrouped(self) -> View:
        """The view's rows before grouping, unsorted (what they count without groups)."""
        query = self.query.model_copy(update={"group_by": (), "sort": (), "selected_first": False})
        return View(self.engine, query, self.select_sink)

    def page(self, offset: int = 0, limit: int = 50, columns: list[str] | None = None) -> pa.Table:
        """One page of rows as Arrow."""
        return self.engine.page(self.query, offset=offset, limit=limit, columns=columns)

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

    def notes(self) -> list[str]:
        """What the readers of the view's tables did to cells they read only in part
        (``Table.notes``: a W&B mask layer dropped on rows 2, 5, ...), each after its
        table's name when the view reads more than one table. Text from data: escape it."""
        query = self.query
        names = [query.table, *(t.table for t in (query.compare_with, query.join) if t)]
        known = self.engine.table_names()
        notes = []
        for name in dict.fromkeys(names):
            found = getattr(self.engine.table(name), "notes", ()) if name in known else ()
            notes.extend(f"`{name}`: {note}" if len(names) > 1 else note for note in found)
        return notes
