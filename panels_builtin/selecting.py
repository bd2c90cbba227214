"""What the built-in panels share about the linked selection (``view.selection``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from panels_core.query.errors import QueryError
from panels_core.query.expr import Binary
from panels_core.query.selection import RowsBrush

__all__ = [
    "brushed_rows",
    "check_rows",
    "has_selection",
    "rows_ticked_only",
    "selected_on_page",
    "selection_answer",
]

T = TypeVar("T")
_log = logging.getLogger(__name__)


def has_selection(view: Any) -> bool:
    """True when the view's table has a linked selection that brushes something."""
    selection = getattr(view, "selection", None)
    return selection is not None and bool(selection.brushes)


def selection_answer(view: Any, ask: Callable[[Any], T]) -> T | None:
    """``ask(view.selected())``; None when the view has no selection, or when the engine
    cannot evaluate it over this view (a region over points not registered yet, a column
    this view does not have): the panel then draws as it does without one, and the card
    says why (``panels_core.workspace.linking.selection_problem``)."""
    if not has_selection(view):
        return None
    try:
        return ask(view.selected())
    except QueryError as exc:
        _log.debug("the linked selection is left out of this card (it says so): %s", exc)
        return None


def brushed_rows(view: Any) -> set[int]:
    """The rows the view's selection names by number (checked in a table or a gallery)."""
    selection = getattr(view, "selection", None)
    brushes = selection.brushes if selection is not None else ()
    return {int(r) for _, b in brushes if isinstance(b, RowsBrush) for r in b.rows}


def check_rows(view: Any, holder: Any, page_rows: Sequence[int], positions: Any) -> set[int]:
    """Check ``positions`` of a page whose rows are ``page_rows`` (unchecking the page's
    others): ``holder.checked`` (row numbers, kept across pages) becomes the checked rows
    first, then they are published as ``view``'s RowsBrush (None when none is checked), so
    a card following the new selection at once already sees them checked."""
    page = [int(r) for r in page_rows]
    chosen = {page[i] for i in positions if 0 <= i < len(page)}
    checked = (holder.checked - set(page)) | chosen
    holder.checked = checked
    view.select(RowsBrush(rows=tuple(sorted(checked))) if checked else None)
    return checked


def selected_on_page(view: Any, page_rows: Sequence[int]) -> list[int]:
    """The positions in ``page_rows`` (table row numbers of a page) of the rows ``view``'s
    linked selection selects: asked of the engine for those rows only, so a large
    selection costs no more than a small one ([] without a selection)."""
    rows = [int(r) for r in page_rows]
    if not rows:
        return []

    def on_page(chosen: Any) -> Any:
        page = RowsBrush(rows=tuple(rows)).as_filter()
        own = chosen.query.filter
        narrowed = page if own is None else Binary(op="and", left=own, right=page)
        return chosen.with_query(filter=narrowed.to_text()).row_numbers()

    found = selection_answer(view, on_page)
    inside = set() if found is None else {int(r) for r in found}
    return [i for i, r in enumerate(rows) if r in inside]


def rows_ticked_only(before: Any, after: Any, checked: set[int]) -> bool:
    """Whether the selection went from ``before``'s to ``after``'s only by the rows ticked
    here (``checked``, what this card published last): every other brush and the AND/OR
    mode are the same, and the rows the selection names are the ticked ones."""

    def others(view: Any) -> tuple[Any, ...]:
        selection = getattr(view, "selection", None)
        if selection is None:
            return ("and", ())
        return (selection.mode, tuple(b for _, b in selection.brushes if not isinstance(b, RowsBrush)))

    return others(before) == others(after) and brushed_rows(after) == checked
