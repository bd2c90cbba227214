"""What the built-in panels share about the linked selection (``view.selection``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from panels_core.query.errors import QueryError

__all__ = ["has_selection", "selection_answer"]

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
