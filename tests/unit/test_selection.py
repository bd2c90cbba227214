"""Linked selection in the query layer: brushes, their filter text, the engine's answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from panels_core.query.errors import FilterSyntaxError, QueryError, UnknownColumnError
from panels_core.query.model import Query
from panels_core.query.parse import parse_filter
from panels_core.query.selection import (
    RangeBrush,
    RegionBrush,
    RowsBrush,
    Selection,
    ValuesBrush,
)
from panels_core.view import View

N = 5000
BOX = ((0.1, 0.1), (0.6, 0.1), (0.6, 0.6), (0.1, 0.6))
# a concave lasso (a "C" shape), crossing itself nowhere
LASSO = (
    (0.1, 0.1),
    (0.9, 0.1),
    (0.9, 0.3),
    (0.3, 0.3),
    (0.3, 0.7),
    (0.9, 0.7),
    (0.9, 0.9),
    (0.1, 0.9),
)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    price = rng.normal(15, 6, N)
    price[::97] = np.nan
    label = rng.choice(np.array(["cat", "dog", "bird"], dtype=object), N)
    label[::101] = None
    return pd.DataFrame({"price": price, "label": label, "x": rng.random(N), "y": rng.random(N)})


@pytest.fixture
def view(frame: pd.DataFrame) -> View:
    view = View.of(frame, "t")
    view.register_points("proj", view.row_numbers(), frame[["x", "y"]].to_numpy())
    return view


def _reference_inside(points: np.ndarray, polygon: tuple) -> np.ndarray:
    """Point in polygon one point at a time (crossing number), independent of the engine's."""
    out = []
    for px, py in points:
        inside = False
        for i in range(len(polygon)):
            (ax, ay), (bx, by) = polygon[i], polygon[(i + 1) % len(polygon)]
            if (ay > py) != (by > py) and px < ax + (py - ay) * (bx - ax) / (by - ay):
                inside = not inside
        out.append(inside)
    return np.array(out)


def _masks(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    xy = frame[["x", "y"]].to_numpy()
    return {
        "range": ((frame.price >= 10) & (frame.price < 20)).to_numpy(),
        "values": (frame.label.isin(["cat"]) | frame.label.isna()).to_numpy(),
        "rows": np.isin(np.arange(N), [3, 17, 42, 4000, 4999]),
        "region": _reference_inside(xy, LASSO),
    }


BRUSHES = {
    "range": RangeBrush(column="price", low=10, high=20),
    "values": ValuesBrush(column="label", values=("cat", None)),
    "rows": RowsBrush(rows=(3, 17, 42, 4000, 4999)),
    "region": RegionBrush(points="proj", polygon=LASSO),
}


@pytest.mark.parametrize("kind", list(BRUSHES))
def test_each_brush_selects_the_rows_numpy_finds(view, frame, kind):
    selection = Selection().with_brush("card-1", BRUSHES[kind])
    expected = _masks(frame)[kind]
    selected = view.with_selection(selection).selected()
    assert selected.count() == int(expected.sum())
    assert np.array_equal(np.sort(selected.row_numbers()), np.flatnonzero(expected))
    # the filter text parses back to the same rows
    text = selection.as_filter_text()
    assert parse_filter(text) == selection.as_filter()
    assert view.with_query(filter=text).count() == int(expected.sum())


@pytest.mark.parametrize("mode", ["and", "or"])
def test_brushes_combine_with_and_or(view, frame, mode):
    selection = Selection(mode=mode)
    for source, kind in (("a", "range"), ("b", "values"), ("c", "region")):
        selection = selection.with_brush(source, BRUSHES[kind])
    masks = _masks(frame)
    combined = masks["range"] & masks["values"] & masks["region"]
    if mode == "or":
        combined = masks["range"] | masks["values"] | masks["region"]
    selected = view.with_selection(selection).selected()
    assert selected.count() == int(combined.sum())
    # histogram on the same bins as the whole view: counts of the selected rows
    whole = view.histogram("price", bins=12)
    part = selected.histogram("price", bins=12, range=(whole.edges[0], whole.edges[-1]))
    price = frame.price.to_numpy()[combined]
    expected, _ = np.histogram(price[~np.isnan(price)], bins=whole.edges)
    assert part.counts.tolist() == expected.tolist()
    counts = selected.value_counts("label")
    pairs = dict(zip(counts.values, counts.counts.tolist()))
    labels = frame.label[combined]
    assert pairs.get("cat", 0) == int((labels == "cat").sum())
    assert counts.nulls == int(labels.isna().sum())
    assert view.with_query(filter=selection.as_filter_text()).count() == int(combined.sum())


def test_a_box_region_equals_numpy_bounds(view, frame):
    selection = Selection().with_brush("p", RegionBrush(points="proj", polygon=BOX))
    expected = frame.x.between(0.1, 0.6) & frame.y.between(0.1, 0.6)
    assert view.with_selection(selection).selected().count() == int(expected.sum())


def test_no_selection_is_the_view_itself(view):
    assert view.selected() is view
    assert view.with_selection(Selection()).selected().count() == N


def test_the_selection_does_not_narrow_the_query(view):
    selection = Selection().with_brush("a", BRUSHES["range"])
    assert view.with_selection(selection).count() == N
    assert view.with_selection(selection).page(0, 3).num_rows == 3


def test_selected_first_then_sort(view, frame):
    brush = RowsBrush(rows=(10, 20, 30))
    first = view.with_query(sort=["-price"]).with_selection(Selection().with_brush("t", brush))
    rows = first.selected_first().row_numbers()
    by_price = frame.price.iloc[[10, 20, 30]].sort_values(ascending=False).index.tolist()
    assert rows[:3].tolist() == by_price
    rest = frame.drop(index=[10, 20, 30]).sort_values("price", ascending=False, na_position="last")
    assert rows[3:8].tolist() == rest.index[:5].tolist()
    page = first.selected_first().page(0, 3, columns=["price"])
    assert page["price"].to_pylist() == frame.price.iloc[by_price].tolist()
    # a new selection is never answered from the last one's kept pages
    other = first.with_selection(Selection().with_brush("t", RowsBrush(rows=(5,))))
    assert other.selected_first().row_numbers()[0] == 5


def test_row_numbers_follow_column_numpy_order(view, frame):
    sorted_view = view.with_query(filter="price > 20", sort=["price"])
    rows = sorted_view.row_numbers()
    assert np.array_equal(sorted_view.column_numpy("price"), frame.price.to_numpy()[rows])


def test_reregistered_points_are_never_stale(view, frame):
    selection = Selection().with_brush("p", RegionBrush(points="proj", polygon=BOX))
    before = view.with_selection(selection).selected().count()
    moved = frame[["x", "y"]].to_numpy() + 10.0  # every point leaves the box
    view.register_points("proj", view.row_numbers(), moved)
    assert before > 0
    assert view.with_selection(selection).selected().count() == 0


def test_unknown_brush_column_gets_the_filter_message(view):
    selection = Selection().with_brush("a", RangeBrush(column="prise", low=1, high=2))
    with pytest.raises(UnknownColumnError, match="unknown column `prise`: did you mean `price`"):
        view.with_selection(selection).selected().count()


def test_unregistered_points_are_named(view):
    selection = Selection().with_brush("p", RegionBrush(points="umap", polygon=BOX))
    with pytest.raises(
        QueryError, match=r"no points are registered as `umap` \(registered: `proj`\)"
    ):
        view.with_selection(selection).selected().count()


def test_bad_points_shape_is_refused(view):
    with pytest.raises(QueryError, match=r"xy must be an \(n, 2\) array for the 3 rows"):
        view.register_points("bad", [0, 1, 2], np.zeros((3, 3)))


def test_in_selection_text_errors_say_how_to_write_it():
    with pytest.raises(FilterSyntaxError, match="needs at least 3 corners, got 2"):
        parse_filter('in_selection("p", (0, 0), (1, 1))')
    with pytest.raises(FilterSyntaxError, match="names its points first, as a string"):
        parse_filter("in_selection(p, (0, 0), (1, 1), (1, 0))")
    with pytest.raises(FilterSyntaxError, match="`row_number` takes no arguments"):
        parse_filter("row_number(3) in (1, 2)")


def test_negative_and_exponent_corners_round_trip():
    brush = RegionBrush(points="a b", polygon=((-1.5, 2e-07), (3.0, -4.25), (1e20, 0.0)))
    text = Selection().with_brush("p", brush).as_filter_text()
    assert text == 'in_selection("a b", (-1.5, 2e-07), (3.0, -4.25), (1e+20, 0.0))'
    assert parse_filter(text) == brush.as_filter()


def test_row_number_needs_one_table(frame):
    other = frame.assign(k=np.arange(N))
    view = View.of(other, "a")
    view.engine.add_table("b", other)
    joined = view.with_query(join={"table": "b", "on": "k"})
    with pytest.raises(QueryError, match="row_number\\(\\) works on the rows of one table"):
        joined.with_query(filter="row_number() < 3").count()


def test_selection_is_saved_with_the_query():
    selection = Selection(mode="or").with_brush("c1", RangeBrush(column="t", low="2024-01-01"))
    query = Query(table="t", selection=selection)
    again = Query.model_validate_json(query.model_dump_json())
    assert again.selection == selection
    assert selection.with_brush("c1", RowsBrush(rows=(1,))).brushes == (
        ("c1", RowsBrush(rows=(1,))),
    )
    assert selection.without("c1").is_empty


def test_timestamp_range(frame):
    times = pd.date_range("2024-01-01", periods=N, freq="h")
    view = View.of(frame.assign(when=times), "t")
    brush = RangeBrush(column="when", low="2024-01-02T00:00:00", high="2024-01-03T00:00:00")
    selection = Selection().with_brush("c", brush)
    assert view.with_selection(selection).selected().count() == 24
    assert view.with_query(filter=selection.as_filter_text()).count() == 24


def test_empty_brushes_select_nothing(view):
    for brush in (RowsBrush(rows=()), ValuesBrush(column="label", values=())):
        selection = Selection().with_brush("c", brush)
        assert view.with_selection(selection).selected().count() == 0
        assert view.with_query(filter=selection.as_filter_text()).count() == 0


def test_select_is_a_no_op_without_a_sink_and_reaches_the_sink(view):
    view.select(BRUSHES["range"])  # a notebook: nothing happens
    got = []
    linked = view.with_select_sink(got.append)
    linked.with_query(filter="price > 1").select(BRUSHES["range"])
    linked.select(None)
    assert got == [BRUSHES["range"], None]
