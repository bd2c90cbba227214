"""The Histogram panel: engine bins and value-count bars, checked against numpy and pandas."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pyarrow as pa
import pytest
from bokeh.models import ColumnDataSource, HoverTool, LogScale
from pydantic import ValidationError

from panels_builtin.captions import OTHER
from panels_builtin.histogram import Bars, BinnedValues, Histogram
from panels_core.data.table import JoinedTable, Table
from panels_core.demo import digits_table
from panels_core.panel_registry import registry
from panels_core.types import TableType
from panels_core.view import View


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> View:
    """The demo digits table, scanned from Parquet as a large table would be."""
    path = tmp_path_factory.mktemp("digits") / "digits.parquet"
    digits_table().save(path)
    return View.of(Table.from_parquet(path))


def figure_of(obj: Any) -> Any:
    """The Bokeh figure inside a rendered panel."""
    assert isinstance(obj, pn.Column), obj
    (pane,) = [o for o in obj if isinstance(o, pn.pane.Bokeh)]
    return pane.object


def source_of(obj: Any, name: str) -> dict[str, np.ndarray]:
    (source,) = figure_of(obj).select({"type": ColumnDataSource, "name": name})
    return {k: np.asarray(v) for k, v in source.data.items()}


def caption_of(obj: Any) -> str:
    return next(o for o in obj if isinstance(o, pn.pane.Markdown)).object


def alert_text(obj: Any) -> str:
    assert isinstance(obj, pn.pane.Alert), f"expected an Alert, got {obj!r}"
    return html.unescape(obj.object)  # data in messages is escaped for Markdown


# --------------------------------------------------------------------------- number bins


def test_filtered_counts_sum_to_count_and_match_numpy(digits: View) -> None:
    view = digits.with_query(filter='target == "3"')
    obj = Histogram(column="pixel_3_4").render(view)
    data = source_of(obj, "bins")
    values = view.column_numpy("pixel_3_4")
    edges = np.append(data["left"], data["right"][-1])
    assert data["count"].sum() == view.count() == len(values) == 183
    np.testing.assert_array_equal(data["count"], np.histogram(values, bins=edges)[0])
    np.testing.assert_array_equal(data["top"], data["count"])
    assert edges[0] == values.min() and edges[-1] == values.max()
    assert caption_of(obj).startswith("183 values of `pixel_3_4` in ")


def test_bin_count_width_and_range(digits: View) -> None:
    values = digits.column_numpy("pixel_2_2")
    seven = Histogram(column="pixel_2_2", bins=7).data(digits)
    assert len(seven.counts) == 7
    np.testing.assert_array_equal(seven.counts, np.histogram(values, bins=7)[0])

    wide = Histogram(column="pixel_2_2", bin_width=2.5, bins=3).data(digits)  # width wins
    np.testing.assert_allclose(np.diff(wide.edges), 2.5)
    np.testing.assert_array_equal(wide.counts, np.histogram(values, bins=wide.edges)[0])

    ranged = Histogram(column="pixel_2_2", bins=4, range=(2.0, 10.0)).render(digits)
    data = source_of(ranged, "bins")
    np.testing.assert_array_equal(data["left"], [2.0, 4.0, 6.0, 8.0])
    expected, _ = np.histogram(values, bins=4, range=(2.0, 10.0))
    np.testing.assert_array_equal(data["count"], expected)
    outside = int(((values < 2) | (values > 10)).sum())
    assert f"{outside:,} out-of-range values left out" in caption_of(ranged)


def test_integer_column_gets_one_bin_per_integer() -> None:
    view = View.of(pa.table({"n": pa.array([1, 1, 2, 5, 5, 5], pa.int64())}))
    drawn = Histogram(column="n").data(view)
    np.testing.assert_array_equal(drawn.edges, [0.5, 1.5, 2.5, 3.5, 4.5, 5.5])
    np.testing.assert_array_equal(drawn.counts, [2, 1, 0, 0, 3])
    # a wide integer range falls back to the engine's automatic bins
    wide = View.of(pa.table({"n": pa.array([0, 10_000, 5, 7], pa.int64())}))
    assert len(Histogram(column="n").data(wide).counts) < 200


def test_density_integrates_to_one_and_matches_numpy(digits: View) -> None:
    values = digits.column_numpy("pixel_4_4")
    obj = Histogram(column="pixel_4_4", bins=12, density=True).render(digits)
    data = source_of(obj, "bins")
    edges = np.append(data["left"], data["right"][-1])
    np.testing.assert_allclose(data["top"], np.histogram(values, bins=edges, density=True)[0])
    assert math.isclose(float((data["top"] * np.diff(edges)).sum()), 1.0)
    np.testing.assert_array_equal(data["count"], np.histogram(values, bins=edges)[0])
    assert figure_of(obj).yaxis[0].axis_label == "density"


def test_log_y_uses_a_log_axis_and_keeps_counts() -> None:
    x = np.concatenate([np.zeros(1000), np.full(3, 5.0), [9.0]])
    view = View.of(pa.table({"x": x}))
    obj = Histogram(column="x", bins=10, log_y=True).render(view)
    fig = figure_of(obj)
    assert isinstance(fig.y_scale, LogScale)
    data = source_of(obj, "bins")
    expected, _ = np.histogram(x, bins=10)
    np.testing.assert_array_equal(data["count"], expected)
    filled = expected > 0
    np.testing.assert_array_equal(data["top"][filled], expected[filled])
    assert (data["bottom"] > 0).all() and (data["bottom"] < 1).all()
    np.testing.assert_array_equal(data["top"][~filled], data["bottom"][~filled])
    linear = source_of(Histogram(column="x", bins=10).render(view), "bins")
    assert (linear["bottom"] == 0).all()


def test_hover_shows_range_and_count(digits: View) -> None:
    fig = figure_of(Histogram(column="pixel_1_1").render(digits))
    (hover,) = fig.select(HoverTool)
    labels = [label for label, _ in hover.tooltips]
    assert labels[:2] == ["range", "count"]


def test_nulls_and_nonfinite_are_counted_in_the_caption() -> None:
    x = pa.array([1.0, None, float("nan"), float("inf"), -float("inf"), 2.0, 3.0, None])
    view = View.of(pa.table({"x": x}))
    obj = Histogram(column="x", bins=2).render(view)
    data = source_of(obj, "bins")
    np.testing.assert_array_equal(data["count"], [1, 2])
    assert "2 nulls and 3 NaN/inf values left out" in caption_of(obj)


# --------------------------------------------------------------------------- grouped views


def test_grouped_view_shows_all_groups_together_or_one(digits: View) -> None:
    grouped = digits.with_query(group_by=["target"])
    values = digits.column_numpy("pixel_0_3")
    together = Histogram(column="pixel_0_3").render(grouped)
    data = source_of(together, "bins")
    edges = np.append(data["left"], data["right"][-1])
    np.testing.assert_array_equal(data["count"], np.histogram(values, bins=edges)[0])
    assert data["count"].sum() == 1797
    assert "all 10 groups together" in caption_of(together)

    one = Histogram(column="pixel_0_3", group="7").data(grouped)
    sevens = digits.with_query(filter='target == "7"').column_numpy("pixel_0_3")
    np.testing.assert_array_equal(one.counts, np.histogram(sevens, bins=one.edges)[0])
    assert one.counts.sum() == 179

    missing = Histogram(column="pixel_0_3", group="eleven").render(grouped)
    assert "No group `eleven`" in alert_text(missing) and "`7`" in alert_text(missing)


# --------------------------------------------------------------------------- bars


def test_category_bars_match_pandas_value_counts(digits: View) -> None:
    obj = Histogram(column="target", top=4).render(digits)
    data = source_of(obj, "bars")
    expected = digits_table().to_pandas()["target"].astype(str).value_counts()
    top = expected.sort_values(ascending=False, kind="stable").iloc[:4]
    assert list(data["label"][:4]) == [str(v) for v in top.index]
    np.testing.assert_array_equal(data["count"][:4], top.to_numpy())
    assert data["label"][-1] == OTHER
    assert data["count"][-1] == expected.sum() - top.sum()
    assert data["count"].sum() == 1797


def test_string_bars_with_filter_nulls_and_density() -> None:
    rng = np.random.default_rng(3)
    words = rng.choice([f"w{i}" for i in range(60)], size=2000).astype(object)
    words[::50] = None
    score = rng.random(2000)
    view = View.of(Table(dataframe=pd.DataFrame({"word": words, "score": score})))
    assert view.type.columns["word"].kind in ("optional", "string")
    kept = view.with_query(filter="score > 0.5")
    drawn = Histogram(column="word", top=5).data(kept)
    assert isinstance(drawn, Bars)
    frame = pd.DataFrame({"word": words, "score": score})
    frame = frame[frame.score > 0.5]
    counts = frame.word.value_counts()
    assert drawn.counts[:5].sum() == counts.sort_values(ascending=False).iloc[:5].sum()
    for label, n in zip(drawn.labels[:5], drawn.counts[:5]):
        assert counts[label] == n
    assert drawn.nulls == frame.word.isna().sum()
    assert drawn.counts.sum() == frame.word.notna().sum()

    shares = source_of(Histogram(column="word", top=5, density=True).render(kept), "bars")
    assert math.isclose(float(shares["top"].sum()), 1.0)
    np.testing.assert_allclose(shares["top"], shares["count"] / shares["count"].sum())
    assert f"{drawn.nulls} nulls left out" in caption_of(
        Histogram(column="word", top=5).render(kept)
    )


def test_boolean_bars_and_log_axis() -> None:
    view = View.of(pa.table({"ok": pa.array([True] * 900 + [False] * 9)}))
    obj = Histogram(column="ok", log_y=True).render(view)
    data = source_of(obj, "bars")
    assert dict(zip(data["label"], data["count"])) == {"true": 900, "false": 9}
    assert isinstance(figure_of(obj).y_scale, LogScale)
    assert (data["bottom"] > 0).all()


# --------------------------------------------------------------------------- nothing to draw


def test_empty_view_and_all_null_columns_render_messages(digits: View) -> None:
    empty = digits.with_query(filter='target == "eleven"')
    assert "view is empty" in alert_text(Histogram(column="pixel_0_2").render(empty))
    assert "view is empty" in alert_text(Histogram(column="target").render(empty))

    nulls = View.of(
        pa.table(
            {
                "x": pa.array([None, None, None], pa.float64()),
                "c": pa.array([None, None, None], pa.string()),
                "nan": pa.array([float("nan")] * 3),
            }
        )
    )
    assert "3 nulls left out" in alert_text(Histogram(column="x").render(nulls))
    assert "no values to count: 3 nulls" in alert_text(Histogram(column="c").render(nulls))
    assert "3 NaN/inf values left out" in alert_text(Histogram(column="nan").render(nulls))
    outside = Histogram(column="pixel_0_2", range=(100.0, 200.0)).render(digits)
    assert "No values of `pixel_0_2` fall in the range [100, 200]" in alert_text(outside)


# --------------------------------------------------------------------------- config and registry


def test_config_is_checked() -> None:
    for bad in (
        {"bins": 0},
        {"bins": True},
        {"bins": "many"},
        {"bin_width": -1.0},
        {"range": (3.0, 1.0)},
        {"range": (0.0, float("inf"))},
        {"top": 0},
    ):
        with pytest.raises(ValidationError):
            Histogram(column="x", **bad)
    with pytest.raises(ValidationError, match="image"):
        Histogram.validate_config(
            {"column": "image"}, TableType.model_validate({"columns": {"image": {"kind": "image"}}})
        )


def test_registry_offers_the_histogram_with_sensible_defaults(digits: View) -> None:
    found = {m.kind: m for m in registry.compatible(digits.type)}
    assert found["histogram"].config.column.startswith("pixel_")
    kinds = [m.kind for m in registry.compatible(digits.type)]
    assert kinds.index("histogram") < kinds.index("multi_histogram")

    ids = View.of(pa.table({"id": pa.array([1, 2, 3]), "score": [0.1, 0.5, 0.9]}))
    assert registry.default(ids.type) is not None
    assert Histogram.default_config(ids.type).column == "score"

    labels_only = View.of(
        Table(dataframe=pd.DataFrame({"c": list("aab")}), dtypes={"c": "category"})
    )
    offered = {m.kind: m for m in registry.compatible(labels_only.type)}
    assert offered["histogram"].config.column == "c"
    assert "multi_histogram" not in offered

    images = TableType.model_validate({"columns": {"img": {"kind": "image"}}})
    assert "histogram" not in {m.kind for m in registry.compatible(images)}

    grouped = digits.with_query(group_by=["target"])
    config = Histogram.default_config(grouped.type)
    assert grouped.type.columns[config.column].kind == "list"


def test_registry_renders_the_panel_by_kind(digits: View) -> None:
    obj = registry.render_object("histogram", digits, {"column": "pixel_5_5", "bins": 5})
    data = source_of(obj, "bins")
    assert len(data["count"]) == 5 and data["count"].sum() == 1797
    drawn = Histogram(column="pixel_5_5", bins=5).data(digits)
    assert isinstance(drawn, BinnedValues)
    np.testing.assert_array_equal(drawn.counts, data["count"])


def test_joined_table_columns_by_side() -> None:
    left = Table(columns=["id", "score"], data=[[i, i / 10] for i in range(10)])
    right = Table(
        columns=["id", "label"],
        data=[[i, "even" if i % 2 == 0 else "odd"] for i in range(0, 14, 2)],
        dtypes={"label": "category"},
    )
    view = View.of(JoinedTable(left, right, "id", names=("pred", "truth")))
    config = Histogram.default_config(view.type)
    assert config.column == "pred.score"  # not the `pred.id` key
    drawn = Histogram(column="pred.score", bins=5).data(view)
    matched = np.array([0, 2, 4, 6, 8]) / 10  # ids present on both sides
    np.testing.assert_array_equal(drawn.counts, np.histogram(matched, bins=drawn.edges)[0])
    bars = Histogram(column="truth.label").data(view)
    assert dict(zip(bars.labels, bars.counts.tolist())) == {"even": 5}


def test_gear_form_edits_bins_range_and_column(digits: View) -> None:
    from panels_core.forms import config_form

    form = config_form(Histogram, digits.type)
    form.widgets["bins"].value = "12"
    form.widgets["range"].value = "[2, 10]"
    assert (form.config.bins, form.config.range) == (12, (2.0, 10.0))
    form.widgets["bins"].value = "auto"
    assert form.config.bins == "auto"
    form.widgets["range"].value = "[10, 2]"
    assert "min < max" in form.errors["range"] and form.config.range == (2.0, 10.0)
    form.widgets["range"].value = ""
    form.widgets["column"].value = "target"
    assert form.config.column == "target" and form.config.range is None
