"""The Multi-histogram panel: series per compared source, per group and per category,
on shared engine bins, checked against numpy on the demo data and hand-made tables."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import panel as pn
import pyarrow as pa
import pytest
from bokeh.models import LogScale

from panels_builtin.captions import OTHER
from panels_builtin.multi_histogram import MultiHistogram
from panels_core.data.store import Store
from panels_core.data.table import Table
from panels_core.demo import write_demo
from panels_core.panel_registry import registry
from panels_core.query.engine import Engine
from panels_core.query.model import CompareWith, Query
from panels_core.view import View


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Any]:
    paths = write_demo(tmp_path_factory.mktemp("demo"), log=None)
    store = Store(paths["store"])
    return {
        "digits": View.of(Table.from_parquet(paths["digits"])),
        "v0": store.get("predictions:v0"),
        "v1": store.get("predictions:v1"),
    }


@pytest.fixture(scope="module")
def compared(demo) -> View:
    """predictions:v0 compared with the first 1,500 rows of predictions:v1 on `id`."""
    part = Table.from_arrow(demo["v1"].to_arrow().slice(0, 1500))
    engine = Engine({"v0": demo["v0"], "v1": demo["v1"], "v1_part": part})
    return View(engine, Query(table="v0", compare_with=CompareWith(table="v1_part", on="id")))


def figure_of(obj: Any) -> Any:
    assert isinstance(obj, pn.Column), obj
    (pane,) = [o for o in obj if isinstance(o, pn.pane.Bokeh)]
    return pane.object


def series_of(obj: Any) -> dict[str, dict[str, np.ndarray]]:
    """Series name -> its ColumnDataSource columns, in drawing order."""
    sources = [r.data_source for r in figure_of(obj).renderers]
    return {
        s.name.removeprefix("series:"): {k: np.asarray(v) for k, v in s.data.items()}
        for s in sources
        if s.name and s.name.startswith("series:")
    }


def edges_of(series: dict[str, np.ndarray]) -> np.ndarray:
    return np.append(series["left"], series["right"][-1])


def alert_text(obj: Any) -> str:
    assert isinstance(obj, pn.pane.Alert), f"expected an Alert, got {obj!r}"
    return html.unescape(obj.object)  # data in messages is escaped for Markdown


# --------------------------------------------------------------------------- compared sources


def test_demo_versions_give_one_series_per_source(demo) -> None:
    engine = Engine({"v0": demo["v0"], "v1": demo["v1"]})
    view = View(engine, Query(table="v0", compare_with=CompareWith(table="v1", on="id")))
    obj = MultiHistogram(column="score").render(view)
    series = series_of(obj)
    assert list(series) == ["0", "1"]
    present = view.compared().column("present").combine_chunks()
    for name, table in (("0", demo["v0"]), ("1", demo["v1"])):
        in_source = int(np.sum(present.field(name).to_numpy(zero_copy_only=False)))
        assert series[name]["count"].sum() == in_source == 2000
        values = table.to_pandas()["score"].to_numpy()
        expected, _ = np.histogram(values, bins=edges_of(series[name]))
        np.testing.assert_array_equal(series[name]["count"], expected)
    np.testing.assert_array_equal(edges_of(series["0"]), edges_of(series["1"]))
    legend = [item.label.value for item in figure_of(obj).legend[0].items]
    assert legend == ["0", "1"]


def test_sources_with_different_rows_count_only_their_present_rows(demo, compared) -> None:
    drawn = MultiHistogram(column="loss").data(compared)
    assert drawn.split == "source" and drawn.names == ["0", "1"]
    np.testing.assert_array_equal(drawn.counts.sum(axis=1), [2000, 1500])
    part = demo["v1"].to_pandas()["loss"].to_numpy()[:1500]
    np.testing.assert_array_equal(drawn.counts[1], np.histogram(part, bins=drawn.edges)[0])
    only_both = compared.with_query(filter="0.present and 1.present")
    assert MultiHistogram(column="loss").data(only_both).counts.sum(axis=1).tolist() == [
        1500,
        1500,
    ]


def test_compared_then_grouped_sums_groups_per_source(compared) -> None:
    plain = MultiHistogram(column="score", bins=8).data(compared)
    grouped_view = compared.with_query(group_by=["0.split"])
    assert grouped_view.type.columns["score"].kind == "compared"
    grouped = MultiHistogram(column="score", bins=8).data(grouped_view)
    assert grouped.names == ["0", "1"]
    np.testing.assert_array_equal(grouped.edges, plain.edges)
    np.testing.assert_array_equal(grouped.counts, plain.counts)


def test_by_is_refused_for_a_compared_column(compared) -> None:
    obj = MultiHistogram(column="score", by="id").render(compared)
    assert "clear `by`" in alert_text(obj)


# --------------------------------------------------------------------------- groups and categories


def test_split_by_category_matches_numpy_per_group(demo) -> None:
    digits = demo["digits"]
    obj = MultiHistogram(column="pixel_2_3", by="target").render(digits)
    series = series_of(obj)
    assert list(series) == [str(d) for d in range(10)]
    values = digits.column_numpy("pixel_2_3")
    target = digits.column_numpy("target")
    for name, data in series.items():
        expected, _ = np.histogram(values[target == name], bins=edges_of(data))
        np.testing.assert_array_equal(data["count"], expected)
    assert sum(d["count"].sum() for d in series.values()) == 1797


def test_grouped_number_column_gives_one_series_per_group(demo) -> None:
    digits = demo["digits"]
    grouped = digits.with_query(group_by=["target"])
    drawn = MultiHistogram(column="pixel_2_3").data(grouped)
    by = MultiHistogram(column="pixel_2_3", by="target").data(digits)
    assert drawn.split == "group" and drawn.names == by.names
    np.testing.assert_array_equal(drawn.edges, by.edges)
    np.testing.assert_array_equal(drawn.counts, by.counts)
    filtered = grouped.with_query(filter='target in ("1", "7")')
    assert MultiHistogram(column="pixel_2_3").data(filtered).names == ["1", "7"]


def test_more_groups_than_max_series_merge_into_other() -> None:
    rng = np.random.default_rng(0)
    kind = rng.choice(list("abcdef"), size=600, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05])
    x = rng.normal(size=600)
    view = View.of(
        Table(columns=["x", "kind"], data=list(zip(x, kind)), dtypes={"kind": "category"})
    )
    drawn = MultiHistogram(column="x", by="kind", max_series=3).data(view)
    sizes = {k: int((kind == k).sum()) for k in "abcdef"}
    assert drawn.names == ["a", "b", OTHER] and drawn.merged == 4
    np.testing.assert_array_equal(
        drawn.counts.sum(axis=1), [sizes["a"], sizes["b"], 600 - sizes["a"] - sizes["b"]]
    )
    rest = np.isin(kind, list("cdef"))
    np.testing.assert_array_equal(drawn.counts[2], np.histogram(x[rest], bins=drawn.edges)[0])


# --------------------------------------------------------------------------- overlay, stack, density, log


def _two_groups() -> tuple[View, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, 300), rng.normal(1, 2, 100)
    table = pa.table(
        {
            "x": np.concatenate([a, b]),
            "g": pa.array(["a"] * 300 + ["b"] * 100).dictionary_encode(),
        }
    )
    return View.of(table), a, b


def test_stack_piles_series_and_overlay_does_not() -> None:
    view, a, b = _two_groups()
    stacked = series_of(MultiHistogram(column="x", by="g", bins=10, mode="stack").render(view))
    edges = edges_of(stacked["a"])
    ca, cb = np.histogram(a, bins=edges)[0], np.histogram(b, bins=edges)[0]
    np.testing.assert_array_equal(stacked["a"]["bottom"], 0)
    np.testing.assert_array_equal(stacked["a"]["top"], ca)
    np.testing.assert_array_equal(stacked["b"]["bottom"], ca)
    np.testing.assert_array_equal(stacked["b"]["top"], ca + cb)

    overlaid = series_of(MultiHistogram(column="x", by="g", bins=10).render(view))
    np.testing.assert_array_equal(overlaid["b"]["bottom"], 0)
    np.testing.assert_array_equal(overlaid["b"]["top"], cb)


def test_density_per_series_when_overlaid_and_for_the_stack_when_stacked() -> None:
    view, a, b = _two_groups()
    overlay = MultiHistogram(column="x", by="g", bins=10, density=True).data(view)
    widths = np.diff(overlay.edges)
    for row, values in zip(overlay.values, (a, b)):
        np.testing.assert_allclose(row, np.histogram(values, bins=overlay.edges, density=True)[0])
        assert math.isclose(float((row * widths).sum()), 1.0)
    stack = MultiHistogram(column="x", by="g", bins=10, density=True, mode="stack").data(view)
    assert math.isclose(float((stack.tops[-1] * widths).sum()), 1.0)
    both = np.histogram(np.concatenate([a, b]), bins=stack.edges, density=True)[0]
    np.testing.assert_allclose(stack.tops[-1], both)


def test_log_axis_keeps_bars_above_zero() -> None:
    view, a, _ = _two_groups()
    obj = MultiHistogram(column="x", by="g", bins=10, log_y=True).render(view)
    assert isinstance(figure_of(obj).y_scale, LogScale)
    series = series_of(obj)
    expected = np.histogram(a, bins=edges_of(series["a"]))[0]
    assert all((s["bottom"] > 0).all() for s in series.values())
    filled = expected > 0
    np.testing.assert_array_equal(series["a"]["top"][filled], expected[filled])


# --------------------------------------------------------------------------- nothing to draw


def test_empty_view_all_null_and_missing_split_messages(demo) -> None:
    digits = demo["digits"]
    empty = digits.with_query(filter='target == "eleven"')
    assert "view is empty" in alert_text(
        MultiHistogram(column="pixel_0_2", by="target").render(empty)
    )
    nulls = View.of(
        pa.table(
            {
                "x": pa.array([None, None, float("nan")], pa.float64()),
                "g": pa.array(["a", "b", "a"]).dictionary_encode(),
            }
        )
    )
    text = alert_text(MultiHistogram(column="x", by="g").render(nulls))
    assert "no finite values" in text and "2 nulls and 1 NaN/inf value left out" in text
    single = MultiHistogram(column="pixel_0_2").render(digits)
    assert "choose a `by` column" in single[0].object


# --------------------------------------------------------------------------- ranking


def test_ranks_above_the_histogram_only_for_compared_columns(demo, compared) -> None:
    kinds = [m.kind for m in registry.compatible(compared.type)]
    assert kinds.index("multi_histogram") < kinds.index("histogram")
    config = registry.compatible(compared.type)[kinds.index("multi_histogram")].config
    assert config.column == "score" and config.by is None

    digits = demo["digits"]
    kinds = [m.kind for m in registry.compatible(digits.type)]
    assert kinds.index("histogram") < kinds.index("multi_histogram")
    config = MultiHistogram.default_config(digits.type)
    assert config.by == "target" and config.column.startswith("pixel_")

    grouped = digits.with_query(group_by=["target"])
    kinds = [m.kind for m in registry.compatible(grouped.type)]
    assert kinds.index("histogram") < kinds.index("multi_histogram")
    assert MultiHistogram.default_config(grouped.type).by is None

    numbers_only = View.of(pa.table({"a": [1.0, 2.0], "b": [3.0, 4.0]}))
    assert "multi_histogram" not in {m.kind for m in registry.compatible(numbers_only.type)}


def test_the_histogram_points_compared_columns_here(compared) -> None:
    from panels_builtin.histogram import Histogram

    obj = Histogram(column="score").render(compared)
    assert obj.alert_type == "danger"
    assert "compared[number]" in alert_text(obj) and "Multi-histogram" in alert_text(obj)
