"""Small helpers shared by the built-in panels: messages, captions, colours, column picks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from panels_core.types import NumberType, strip_optional

__all__ = [
    "OTHER",
    "category_palette",
    "format_count",
    "format_number",
    "left_out",
    "looks_like_id",
    "message",
    "prefer_measures",
]

OTHER = "(other)"
"""The label of the bar or series that collects values beyond the top N."""

_ID_NAME = re.compile(r"(^|_)(id|idx|index|key|uuid|row|rownum)$", re.IGNORECASE)


def message(text: str, kind: str = "info") -> Any:
    """A full-width ``pn.pane.Alert`` shown instead of a chart (empty view, no values...)."""
    import panel as pn

    return pn.pane.Alert(text, alert_type=kind, sizing_mode="stretch_width")


def format_count(n: int | float) -> str:
    """A count with thousands separators: ``12,345``."""
    return f"{int(n):,}"


def format_number(x: float) -> str:
    """A number short enough for an axis label or a caption (4 significant digits)."""
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e6 else f"{x:.3e}"


def left_out(parts: Mapping[str, int]) -> str:
    """``"12 nulls and 3 NaN/inf values left out"`` from {"null": 12, "NaN/inf value": 3}.

    Keys are singular nouns (an ``s`` is added when the count is not 1); zero
    counts are skipped; "" when nothing was left out.
    """
    words = [f"{format_count(n)} {noun}{'' if n == 1 else 's'}" for noun, n in parts.items() if n]
    if not words:
        return ""
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"{listed} left out"


def category_palette(n: int) -> list[str]:
    """``n`` distinct colours for categories or series (Category10, Category20, then Turbo)."""
    from bokeh.palettes import Category10, Category20, turbo

    if n <= 0:
        return []
    if n <= 10:
        return list(Category10[10][:n])
    if n <= 20:
        return list(Category20[20][:n])
    return list(turbo(n))


def looks_like_id(name: str, column_type: Any) -> bool:
    """True for an integer column named like a row id (``id``, ``image_id``, ``index``)."""
    inner = strip_optional(column_type)
    return isinstance(inner, NumberType) and inner.integer and bool(_ID_NAME.search(name))


def prefer_measures(candidates: Sequence[str], columns: Mapping[str, Any]) -> list[str]:
    """``candidates`` reordered so columns that look like row ids come last (order kept)."""
    return sorted(candidates, key=lambda c: looks_like_id(c, columns[c]))
