"""What the built-in panels share about the linked selection (``view.selection``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from panels_core.query.errors import QueryError
from panels_core.query.selection import RowsBrush

__all__ = ["brushed_rows", "check_rows", "has_selection", "selection_answer"]

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


def check_rows(view: Any, checked: set[int], page_rows: Sequence[int], positions: Any) -> set[int]:
    """The checked rows after checking ``positions`` of a page whose rows are ``page_rows``
    (unchecking the page's others), published as the view's RowsBrush (None when none is
    checked)."""
    page = [int(r) for r in page_rows]
    chosen = {page[i] for i in positions if 0 <= i < len(page)}
    checked = (checked - set(page)) | chosen
    view.select(RowsBrush(rows=tuple(sorted(checked))) if checked else None)
    return checked
