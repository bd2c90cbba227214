"""The Joined table panel: rows equal a pandas merge for inner/left/outer, unmatched rows
are counted, columns sit under their table's name, paging and sorting are the table's."""

from __future__ import annotations

import math

import pandas as pd
import panel as pn
import pytest

from panels_builtin.joined_table import JoinedTablePanel, join_counts, joined_view
from panels_builtin.table import PagedTable
from panels_core import View, registry
from panels_core.data.store import Store
from panels_core.data.table import JoinedTable, Table
from panels_core.demo import write_demo
from panels_core.query.engine import Engine
from panels_core.query.model import JoinSpec, Query

LEFT = pd.DataFrame(
    {"id": [1, 2, 3, 4, 5], "x": [10.0, 20.0, 30.0, 40.0, 50.0], "name": list("abcde")}
)
RIGHT = pd.DataFrame({"key": [3, 4, 4, 6, 7], "y": [0.3, 0.4, 0.41, 0.6, 0.7]})
HOWS = ["inner", "left", "outer"]


def normalized(rows) -> list[tuple]:
    """Rows as tuples with NaN as None, sorted with None last (order-free comparison)."""

    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        return v.item() if hasattr(v, "item") else v

    out = [tuple(cell(v) for v in row) for row in rows]
    return sorted(out, key=lambda r: tuple((v is None, v if v is not None else 0) for v in r))


def merged(how: str) -> pd.DataFrame:
    return pd.merge(LEFT, RIGHT, left_on="id", right_on="key", how=how)


@pytest.fixture
def pair_view() -> View:
    joined = JoinedTable(Table(dataframe=LEFT), Table(dataframe=RIGHT), ("id", "key"), ("L", "R"))
    return View.of(joined, name="pair")


@pytest.fixture
def spec_view() -> View:
    engine = Engine({"L": Table(dataframe=LEFT), "R": Table(dataframe=RIGHT)})
    return View(engine, Query(table="L", join=JoinSpec(table="R", on=("id", "key"))))


COLUMNS = ["L.id", "L.x", "L.name", "R.key", "R.y"]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("source", ["pair_view", "spec_view"])
def test_rows_equal_a_pandas_merge(how, source, request) -> None:
    view = request.getfixturevalue(source)
    paged = JoinedTablePanel(how=how).build(view)
    expected = merged(how)[["id", "x", "name", "key", "y"]]
    assert list(paged.frame.columns) == COLUMNS
    assert paged.total == len(expected) == {"inner": 3, "left": 6, "outer": 8}[how]
    got = normalized(paged.frame.itertuples(index=False))
    assert got == normalized(expected.itertuples(index=False))
    counts = paged.counts
    assert (counts.matched, counts.left_only, counts.right_only) == (3, 3, 2)
    assert counts.text() == "3 matched · 3 only in `L` · 2 only in `R`"


def test_columns_are_grouped_under_their_table(pair_view) -> None:
    paged = JoinedTablePanel().build(pair_view)
    assert paged.tabulator.groups == {"L": ["L.id", "L.x", "L.name"], "R": ["R.key", "R.y"]}
    assert paged.tabulator.titles["L.x"] == "x" and paged.tabulator.titles["R.y"] == "y"
    chosen = JoinedTablePanel(columns=["R.y", "L.name"]).build(pair_view)
    assert list(chosen.frame.columns) == ["R.y", "L.name"]
    assert chosen.tabulator.groups == {"R": ["R.y"], "L": ["L.name"]}


def test_filter_and_header_sort_go_through_the_join(pair_view) -> None:
    view = pair_view.with_query(filter="L.x > 15")
    paged = JoinedTablePanel(how="left").build(view)
    expected = merged("left")
    expected = expected[expected["x"] > 15]
    assert paged.total == len(expected) == 5
    paged.apply_sorters([{"field": "R.y", "dir": "desc"}])
    assert paged.view.query.sort[0].column == "R.y"
    order = expected.sort_values("y", ascending=False, na_position="last", kind="stable")
    assert paged.frame["L.name"].tolist() == order["name"].tolist()
    assert math.isnan(paged.frame["R.y"].iloc[-1])  # nulls last


def test_joined_view_keeps_the_query_and_changes_only_the_join(pair_view, spec_view) -> None:
    view = pair_view.with_query(filter="L.x > 15", sort=["-L.x"])
    outer = joined_view(view, "outer")
    assert outer.query.join.how == "outer" and outer.query.filter == view.query.filter
    assert outer.query.sort == view.query.sort
    assert joined_view(spec_view, "left").query.join.how == "left"
    assert joined_view(spec_view, "left").engine is spec_view.engine
    # the JoinedTable's sides are registered once, whatever the join type
    assert joined_view(pair_view, "inner").engine is joined_view(pair_view, "left").engine


# --------------------------------------------------------------------------- the demo's join


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    return Store(write_demo(tmp_path_factory.mktemp("demo"), log=None)["store"])


SCALARS = ["id", "image_id", "split", "label", "predicted", "score", "loss"]


def test_demo_join_matches_pandas_and_pages(demo_store) -> None:
    joined = demo_store.get("joined:v0")
    left = demo_store.get("predictions:v1").to_pandas()[SCALARS]
    right = demo_store.get("ground_truth:v0").to_pandas()[["id", "image_id", "label"]]
    columns = [f"predictions.{c}" for c in SCALARS] + [
        "ground_truth.id",
        "ground_truth.image_id",
        "ground_truth.label",
    ]
    expected = pd.merge(left, right, on="id", how="inner", suffixes=("", "_gt"))
    expected = expected[[*SCALARS, "id", "image_id_gt", "label_gt"]]
    for how in HOWS:
        paged = JoinedTablePanel(how=how, columns=columns).build(View.of(joined))
        assert paged.total == 2000
        assert (paged.counts.matched, paged.counts.left_only, paged.counts.right_only) == (
            2000,
            0,
            0,
        )
    paged.next()
    assert paged.status == "rows 51-100 of 2,000"
    page = paged.frame.astype(object).values.tolist()
    assert page == expected.iloc[50:100].astype(object).values.tolist()


def test_demo_join_images_of_both_sides_are_thumbnails(demo_store) -> None:
    view = View.of(demo_store.get("joined:v0"))
    paged = JoinedTablePanel(page_size=2).build(view)
    cell = paged.frame["predictions.image"][0]
    assert cell.count("<rect ") == 2 and "data:image/png;base64," in cell
    assert paged.frame["ground_truth.image"][0].count("<rect ") == 1
    toggles = [w.label for w in paged.extra if hasattr(w, "options")]
    assert toggles == ["box layers"]


def test_registry_ranks_the_joined_table_first_for_a_join(demo_store, pair_view) -> None:
    matches = registry.compatible(View.of(demo_store.get("joined:v0")).type)
    assert matches[0].kind == "joined_table" and matches[0].score == 10.0
    assert matches[-1].kind == "table"
    assert matches[0].config.model_dump()["how"] == "inner"
    assert registry.compatible(pair_view.type)[0].kind == "joined_table"
    plain = View.of(Table(dataframe=LEFT))
    assert "joined_table" not in [m.kind for m in registry.compatible(plain.type)]
    obj = registry.render_object("joined_table", pair_view, {"how": "outer"})
    assert isinstance(obj, pn.Column)
    texts = [m.object for m in obj.select(pn.pane.Markdown)]
    assert "3 matched · 3 only in `L` · 2 only in `R`" in texts
    assert "rows 1-8 of 8" in texts
    refused = JoinedTablePanel().render(plain)
    assert isinstance(refused, pn.pane.Alert)


# --------------------------------------------------------------------------- comparisons


def versions() -> View:
    a = pd.DataFrame({"id": [1, 2, 3, 4], "score": [0.5, 1.0, 2.0, 4.0], "only_a": list("pqrs")})
    b = pd.DataFrame({"id": [1, 2, 3, 5], "score": [1.0, 0.5, 4.0, 8.0]})
    engine = Engine({"a": Table(dataframe=a), "b": Table(dataframe=b)})
    return View(engine, Query(table="a", compare_with={"table": "b", "on": "id"}))


@pytest.mark.parametrize(
    ("how", "ids"), [("inner", [1, 2, 3]), ("left", [1, 2, 3, 4]), ("outer", [1, 2, 3, 4, 5])]
)
def test_a_comparison_on_a_key_is_a_join(how, ids) -> None:
    view = versions()
    paged = JoinedTablePanel(how=how).build(view)
    assert list(paged.frame.columns) == ["id", "0.score", "only_a", "1.score"]
    assert paged.tabulator.groups == {"0": ["0.score", "only_a"], "1": ["1.score"]}
    assert paged.frame["id"].tolist() == ids
    a = {1: 0.5, 2: 1.0, 3: 2.0, 4: 4.0}
    b = {1: 1.0, 2: 0.5, 3: 4.0, 5: 8.0}
    got = [None if math.isnan(v) else v for v in paged.frame["0.score"]]
    assert got == [a.get(i) for i in ids]
    got = [None if math.isnan(v) else v for v in paged.frame["1.score"]]
    assert got == [b.get(i) for i in ids]
    counts = join_counts(view)
    assert (counts.matched, counts.left_only, counts.right_only) == (3, 1, 1)


def test_a_comparison_ranks_the_joined_table_above_the_plain_table() -> None:
    kinds = [m.kind for m in registry.compatible(versions().type)]
    assert kinds.index("joined_table") < kinds.index("table")
    assert JoinedTablePanel.match(versions().type) == 3.0


def test_the_pager_is_the_table_panels() -> None:
    assert isinstance(JoinedTablePanel().build(versions()), PagedTable)
