"""What the built-in panels share about the linked selection (``view.selection``)."""

from __future__ import annotations

from typing import Any

__all__ = ["has_selection"]


def has_selection(view: Any) -> bool:
    """True when the view's table has a linked selection that brushes something."""
    selection = getattr(view, "selection", None)
    return selection is not None and bool(selection.brushes)
