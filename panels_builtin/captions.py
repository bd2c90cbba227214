"""The words the built-in panels show: formatted numbers and counts, what was left out,
and the alert shown instead of a chart when there is nothing to draw."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from panels_core.escape import markdown_text
from panels_core.query.errors import QueryError

__all__ = [
    "EMPTY_VIEW",
    "OTHER",
    "NothingToShow",
    "captioned_chart",
    "format_count",
    "format_number",
    "left_out",
    "message",
    "other_label",
    "problem_message",
    "values_left_out",
]

OTHER = "(other)"
"""The label of the bar or series that collects values beyond the top N."""


def other_label(names: Collection[str]) -> str:
    """``OTHER``, or ``"(other) rest"`` when a value is itself named ``(other)``."""
    return OTHER if OTHER not in names else f"{OTHER} rest"


EMPTY_VIEW = "No rows to show: the view is empty (check the filter)."


class NothingToShow(Exception):
    """The view has nothing to draw (no rows, or only missing values); the message says why."""


def message(text: str, kind: str = "info") -> Any:
    """A full-width ``pn.pane.Alert`` shown instead of a chart (empty view, no values...).

    ``text`` is Markdown: escape data in it with panels_core.escape."""
    import panel as pn

    return pn.pane.Alert(text, alert_type=kind, sizing_mode="stretch_width")


def problem_message(exc: NothingToShow | QueryError, what: str) -> Any:
    """The alert shown instead of a chart: why there is nothing to draw (info), or the
    query's error headed ``what`` (Markdown, e.g. "Histogram of `x`") in red."""
    if isinstance(exc, NothingToShow):
        return message(markdown_text(exc), "info")
    return message(f"{what}: {markdown_text(exc)}", "danger")


def captioned_chart(caption: str, fig: Any) -> Any:
    """A Markdown caption over a full-width Bokeh figure."""
    import panel as pn

    return pn.Column(
        pn.pane.Markdown(caption, margin=(0, 10)),
        pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
        sizing_mode="stretch_width",
    )


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


def values_left_out(nulls: int, nonfinite: int, outside: int) -> str:
    """``left_out`` of a histogram's nulls, NaN/inf values and values outside its range."""
    return left_out({"null": nulls, "NaN/inf value": nonfinite, "out-of-range value": outside})
