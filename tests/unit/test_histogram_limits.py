"""No histogram request can exhaust the server: a bin width, a bin count or a range that
would make more than MAX_BINS bins (or overflow a float) gets a clear message, computed
before any array of edges is allocated."""

from __future__ import annotations

import html
import tracemalloc

import numpy as np
import panel as pn
import pyarrow as pa
import pytest
from pydantic import ValidationError

from panels_builtin.histogram import Histogram
from panels_builtin.multi_histogram import MultiHistogram
from panels_core.panel_registry import registry
from panels_core.query.bins import MAX_BINS
from panels_core.query.engine import Engine
from panels_core.query.errors import QueryError
from panels_core.query.model import Query
from panels_core.view import View

TOO_MANY = (
    "bin_width 1e-07 over the range of `x` [0, 1] makes 10,000,000 bins; the most is 1,000: "
    "use a bin_width of at least 0.001 or a narrower range"
)
TOO_WIDE = (
    "the range [-1e+308, 1e+308] is too wide to bin: its width overflows a float; "
    "use a narrower range"
)


@pytest.fixture
def unit() -> View:
    """``x`` from 0 to 1 (both ends present), ``g`` two groups."""
    x = np.linspace(0.0, 1.0, 101)
    return View.of(pa.table({"x": x, "g": np.where(np.arange(101) % 2 == 0, "even", "odd")}))


def alert_text(obj: object) -> str:
    assert isinstance(obj, pn.pane.Alert), f"expected an Alert, got {obj!r}"
    return html.unescape(obj.object)  # escaped Markdown: read it as shown


def test_the_cap_is_the_one_the_config_allows() -> None:
    assert MAX_BINS == 1000
    assert Histogram(column="x", bins=MAX_BINS).config.bins == MAX_BINS
    with pytest.raises(ValidationError, match="less than or equal to 1000"):
        Histogram(column="x", bins=MAX_BINS + 1)
    engine = Engine({"t": pa.table({"x": [0.0, 1.0]})})
    with pytest.raises(QueryError, match="1,001 bins asked for; the most is 1,000"):
        engine.histogram(Query(table="t"), "x", bins=MAX_BINS + 1)


def test_a_tiny_bin_width_over_the_data_gives_the_message_in_the_card(unit: View) -> None:
    card = Histogram(column="x", bin_width=1e-7).render(unit)
    assert alert_text(card) == f"Histogram of `x`: {TOO_MANY}"
    assert card.alert_type == "danger"
    multi = MultiHistogram(column="x", by="g", bin_width=1e-7).render(unit)
    assert alert_text(multi) == f"Multi-histogram of `x`: {TOO_MANY}"
    # exactly the cap is fine, and the bins are the ones asked for
    drawn = Histogram(column="x", bin_width=0.001).data(unit)
    assert len(drawn.counts) == MAX_BINS and drawn.counts.sum() == 101
    np.testing.assert_allclose(np.diff(drawn.edges), 0.001)


def test_no_array_of_edges_is_allocated_for_a_refused_width(unit: View) -> None:
    Histogram(column="x", bins=4).data(unit)  # the engine's bounds are cached: only binning left
    tracemalloc.start()
    try:
        card = Histogram(column="x", bin_width=1e-8).render(unit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "makes 100,000,000 bins; the most is 1,000" in alert_text(card)
    assert peak < 20 << 20  # 100 million edges would be 800 MB


def test_a_subnormal_bin_width_names_the_count(unit: View) -> None:
    text = alert_text(Histogram(column="x", bin_width=1e-300).render(unit))
    assert "bin_width 1e-300 over the range of `x` [0, 1] makes 1e+300 bins" in text
    huge = View.of(pa.table({"x": [0.0, 1e10]}))
    text = alert_text(Histogram(column="x", bin_width=1e-300).render(huge))
    assert "[0, 1e+10] makes more than 1e+308 bins; the most is 1,000" in text


def test_a_width_and_range_making_too_many_bins_are_refused_in_the_config() -> None:
    with pytest.raises(ValidationError) as caught:
        Histogram(column="x", bin_width=1e-7, range=(0.0, 1.0))
    assert TOO_MANY.replace("the range of `x`", "the range") in str(caught.value)
    with pytest.raises(ValidationError, match="makes 10,000,000 bins"):
        MultiHistogram(column="x", bin_width=1e-7, range=(0.0, 1.0))
    assert Histogram(column="x", bin_width=0.01, range=(0.0, 1.0)).config.bin_width == 0.01


def test_a_range_too_wide_for_a_float_is_refused(unit: View) -> None:
    with pytest.raises(ValidationError) as caught:
        Histogram(column="x", range=(-1e308, 1e308))
    assert TOO_WIDE in str(caught.value)
    # a workspace card (JSON lists) gets an error card naming the field
    card = registry.render_object("histogram", unit, {"column": "x", "range": [-1e308, 1e308]})
    assert "invalid config" in alert_text(card) and TOO_WIDE in alert_text(card)
    with pytest.raises(QueryError, match="is too wide to bin"):
        unit.engine.histogram(unit.query, "x", range=(-1e308, 1e308))


def test_data_too_wide_for_a_float_gets_a_message_not_nan_edges() -> None:
    wide = View.of(pa.table({"x": [-1e308, 0.0, 1e308]}))
    for config in ({"bins": 10}, {}, {"bin_width": 1e306}):
        text = alert_text(Histogram(column="x", **config).render(wide))
        assert text == (
            "Histogram of `x`: the range of `x` [-1e+308, 1e+308] is too wide to bin: "
            "its width overflows a float; use a narrower range"
        ), config
    # with a range that fits, the same column bins (the extremes are out of range)
    drawn = Histogram(column="x", bins=2, range=(-1.0, 1.0)).data(wide)
    assert drawn.counts.tolist() == [0, 1] and drawn.outside == 2


@pytest.mark.parametrize(
    "bad",
    [(1.0, 0.0), (0.0, float("nan")), (float("-inf"), 0.0)],
)
def test_inverted_and_non_finite_ranges_are_refused(bad: tuple[float, float]) -> None:
    with pytest.raises(ValidationError, match="range must be two finite numbers"):
        Histogram(column="x", range=bad)
    engine = Engine({"t": pa.table({"x": [0.0, 1.0]})})
    with pytest.raises(QueryError, match="range must be two finite numbers"):
        engine.histogram(Query(table="t"), "x", range=bad)


def test_non_finite_widths_are_refused() -> None:
    engine = Engine({"t": pa.table({"x": [0.0, 1.0]})})
    for width in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(QueryError, match="width must be a finite number > 0"):
            engine.histogram(Query(table="t"), "x", width=width)
        with pytest.raises(ValidationError):
            Histogram(column="x", bin_width=width)
