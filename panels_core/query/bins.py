"""How many bins a histogram request makes, checked before any array is allocated.

Every histogram the engine computes (so every panel's) has at most ``MAX_BINS``
bins. A bin width that would cut its range into more bins, or a range whose
width overflows a float, gets a QueryError that says so and what to do, instead
of an allocation of millions of edges or an OverflowError.
"""

from __future__ import annotations

import math

from panels_core.query.errors import QueryError

__all__ = ["MAX_AUTO_BINS", "MAX_BINS", "bin_span", "width_bins"]

MAX_BINS = 1000
"""The most bins one histogram may have (a count asked for, or one a bin width makes)."""

MAX_AUTO_BINS = 200
"""``bins="auto"`` never gives more bins than this (nor fewer than 1)."""


def bin_span(lo: float, hi: float, what: str = "the range") -> float:
    """``hi - lo`` of two finite bounds; a QueryError when it overflows a float.

    ``what`` names the bounds in the message ("the range", "the range of `x`").
    """
    span = hi - lo
    if not math.isfinite(span):
        raise QueryError(
            f"{what} [{lo:g}, {hi:g}] is too wide to bin: its width overflows a float; "
            "use a narrower range"
        )
    return span


def _round_up(x: float) -> str:
    """``x`` rounded up to two significant digits, as text (a width that is enough)."""
    unit = 10.0 ** (math.floor(math.log10(x)) - 1) if x > 0 else 0.0
    if unit == 0:  # subnormal: too small to round
        return f"{x:g}"
    return f"{math.ceil(x / unit) * unit:.2g}"


def _count_text(count: float) -> str:
    if count < 1e15:
        return f"{math.ceil(count):,}"
    return f"{count:.3g}" if math.isfinite(count) else "more than 1e+308"


def width_bins(lo: float, hi: float, width: float, what: str = "the range") -> int:
    """How many bins of ``width`` cover ``lo .. hi`` (at least 1); a QueryError naming
    the count when it is more than ``MAX_BINS``."""
    span = bin_span(lo, hi, what)
    count = span / width
    if math.isfinite(count) and math.ceil(count) <= MAX_BINS:
        return max(1, math.ceil(count))
    raise QueryError(
        f"bin_width {width:g} over {what} [{lo:g}, {hi:g}] makes {_count_text(count)} bins; "
        f"the most is {MAX_BINS:,}: use a bin_width of at least {_round_up(span / MAX_BINS)} "
        "or a narrower range"
    )
