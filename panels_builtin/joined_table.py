"""The Joined table panel: two tables matched on a key, side by side.

Fits a joined view (a ``JoinedTable``, or a Query with ``join=``) and a
comparison of two tables (``compare_with``). Rows are matched on the key,
each side's columns sit under its table's name, the join type
(inner/left/outer) is a config field, and the rows each side has without a
match are counted by the engine. Paging, typed cells and header sorting are
the table panel's ``PagedTable``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import Field

from panels_builtin.captions import format_count, message
from panels_builtin.cells import CellColumn, cell_style
from panels_builtin.pager import PagedTable
from panels_builtin.table import TableConfig, TablePanel
from panels_core.escape import markdown_code
from panels_core.panel import specificity
from panels_core.query.errors import QueryError
from panels_core.query.expr import Binary, Col
from panels_core.types import BooleanType, ComparedType, JoinedTableType, TableType, strip_optional

__all__ = ["JoinCounts", "JoinedTableConfig", "JoinedTablePanel", "join_counts", "joined_view"]

How = Literal["inner", "left", "outer"]
COMPARE_SCORE = 3.0
"""The score on a comparison of two tables: above the plain table (0), below panels made
for the compared values themselves (a multi-histogram of compared numbers scores 4)."""


class JoinedTableConfig(TableConfig):
    """The table panel's fields, plus the join type."""

    how: How = Field(
        "inner",
        description="inner: matched rows only; left: every row of the left table; "
        "outer: every row of both tables",
    )


@dataclasses.dataclass(frozen=True)
class JoinCounts:
    """Rows of a join before filters: matched pairs and each side's rows without a match."""

    left_name: str
    right_name: str
    matched: int
    left_only: int
    right_only: int

    def text(self) -> str:
        """``"1,990 matched · 10 only in `a` · 3 only in `b`"`` (Markdown, names as code)."""
        return (
            f"{format_count(self.matched)} matched · {format_count(self.left_only)} only in "
            f"{markdown_code(self.left_name)} · {format_count(self.right_only)} only in "
            f"{markdown_code(self.right_name)}"
        )


# --------------------------------------------------------------------------- views


def _is_comparison(view_type: Any) -> bool:
    if not isinstance(view_type, TableType):
        return False
    present = strip_optional(view_type.columns.get("present"))
    return isinstance(present, ComparedType) and isinstance(present.item, BooleanType)


def _present(source: int) -> Col:
    return Col(path=("present",), source=source)


def _and(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return Binary(op="and", left=a, right=b)


def joined_view(view: Any, how: How) -> Any:
    """The view with its rows joined as ``how`` says, filter and sort kept.

    - a Query with ``join=``: its JoinSpec gets ``how``;
    - a JoinedTable: its two sides joined again with ``Query.join`` (in an engine of
      their own, cached per JoinedTable);
    - a comparison: ``inner`` keeps rows present in both sources, ``left`` rows of the
      first source, ``outer`` every row.
    """
    query = view.query
    if query.join is not None:
        return view.with_query(join=query.join.model_copy(update={"how": how}).model_dump())
    if query.compare_with is not None:
        keep = {
            "inner": _and(_present(0), _present(1)),
            "left": _present(0),
            "outer": None,
        }[how]
        combined = _and(keep, query.filter)
        return view.with_query(filter=combined)
    if view.joined_table() is None:
        raise QueryError("the joined table panel needs a joined table, a join or a comparison")
    return view.rejoined(how)


def join_counts(view: Any) -> JoinCounts:
    """Matched rows and each side's unmatched rows of a joined or compared view (before
    its filter), from the engine."""
    query = view.query
    if query.compare_with is not None:
        names = query.compare_with.names
        plain = view.with_query(filter=None, sort=(), limit=None, offset=0)
        counts = plain.value_counts(["0.present", "1.present"], top=4)
        found = {tuple(bool(x) for x in v): int(n) for v, n in zip(counts.values, counts.counts)}
        return JoinCounts(
            names[0],
            names[1],
            found.get((True, True), 0),
            found.get((True, False), 0),
            found.get((False, True), 0),
        )
    view_type = view.type
    matched, left_only, right_only = view.join_counts()
    return JoinCounts(view_type.left_name, view_type.right_name, matched, left_only, right_only)


def _comparison_columns(view: Any, names: list[str] | None) -> list[CellColumn]:
    """A comparison's columns with each compared column split per source (``0.score``)."""
    query = view.query
    view_type = view.type
    sources = query.compare_with.names
    sides = [view.of_table(t).type.columns for t in (query.table, query.compare_with.table)]
    keys = query.compare_with.on
    key_names = {keys} if isinstance(keys, str) else set(keys or ())
    out: list[CellColumn] = []
    split: list[list[CellColumn]] = [[], []]
    for name in names or list(view_type.columns):
        if name not in view_type.columns:
            raise QueryError(f"unknown column `{name}` in this comparison")
        if name == "present":
            continue
        t = strip_optional(view_type.columns[name])
        if isinstance(t, ComparedType):
            item = strip_optional(t.item)
            for i, source in enumerate(sources):
                split[i].append(CellColumn(f"{i}.{name}", name, source, item, cell_style(item)))
        elif name in key_names:
            out.append(CellColumn(name, name, None, t, cell_style(t)))
        else:
            side = 0 if name in sides[0] else 1
            split[side].append(CellColumn(name, name, sources[side], t, cell_style(t)))
    return out + split[0] + split[1]


# --------------------------------------------------------------------------- the Panel


class JoinedTablePanel(TablePanel):
    """Rows of two tables matched on a key; each side's columns under its name."""

    kind = "joined_table"
    title = "Joined table"
    description = "Two tables matched on a key: inner/left/outer, unmatched rows counted."
    config_model = JoinedTableConfig

    @classmethod
    def match(cls, view_type: Any) -> float | None:
        """A joined table scores as one (10); a comparison of two tables scores 3."""
        if isinstance(view_type, JoinedTableType):
            return specificity(view_type)
        if _is_comparison(view_type):
            return COMPARE_SCORE
        return None

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        """A joined table's rows lead its cards on a new workspace."""
        return 0 if isinstance(table_type, JoinedTableType) else None

    def build(self, view: Any) -> PagedTable:
        """The pager over the re-joined view, with the join's counts in its header row."""
        import panel as pn

        config = self.config
        view = joined_view(view, config.how)
        columns: Any = list(config.columns)
        if view.query.compare_with is not None:
            columns = _comparison_columns(view, columns or None)
        paged = PagedTable(view, columns, config.page_size, self.cells())
        paged.add_layer_toggles()
        paged.counts = join_counts(view)
        paged.extra.insert(0, pn.pane.Markdown(paged.counts.text(), margin=(0, 8)))
        return paged

    def render(self, view: Any) -> Any:
        """A Column: pager row with the join's counts, message line and the Tabulator."""
        if not self.match(view.type):
            return message(
                "The joined table panel shows a joined table or a comparison of two tables.",
                "warning",
            )
        return self.build(view).layout
