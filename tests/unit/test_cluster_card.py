"""The projection card on a Dask cluster (``panels_builtin.projection.on_cluster``).

The generated dataset of ``test_cluster_projection`` (40 Hive-partitioned files, several
row groups each, null and NaN vectors) is served by an engine on the session's
LocalCluster of 2 worker processes (``dask_client``); the card's points are checked
against ``fit_on_cluster``'s and against the rows read here with pyarrow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from panels_builtin.projection import Projection2D
from panels_builtin.projection.on_cluster import ClusterPlot
from panels_builtin.projection.raster import FrameRasterLayer
from panels_core.data.dataset import ParquetDataset, open_dataset
from panels_core.data.table import Table
from panels_core.escape import markdown_code
from panels_core.projection.distributed import POINTS_PER_PARTITION, drawable, fit_on_cluster
from panels_core.projection.pieces import kept_rows
from panels_core.projection.rows import as_rows
from panels_core.query.engine import Engine
from panels_core.query.errors import QueryError
from panels_core.query.model import Query
from panels_core.query.selection import RegionBrush, Selection
from panels_core.view import View
from tests.unit.test_cluster_projection import write_dataset

KINDS = np.array(["cat", "Dog", "<b>bird</b>", None], dtype=object)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``write_dataset``'s files, each with a string column ``kind`` (nulls and markup too)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path_factory.mktemp("cluster-card") / "preds"
    write_dataset(out)
    rng = np.random.default_rng(3)
    for path in sorted(out.rglob("*.parquet")):
        table = pq.read_table(path, partitioning=None)
        kind = pa.array(rng.choice(KINDS, size=table.num_rows).tolist(), pa.string())
        pq.write_table(table.append_column("kind", kind), path, row_group_size=128)
    return out


@pytest.fixture
def engine(dask_client, folder: Path) -> Iterator[Engine]:
    with closing(Engine({"preds": Table.from_parquet_dataset(folder)}, cluster=dask_client)) as e:
        yield e


def _card(view: View, method: str = "pca", **settings: Any) -> Any:
    config = {"columns": ["emb"], "method": method, **settings}
    return Projection2D(Projection2D.validate_config(config, view.type)).render(view)


def _local(dataset: ParquetDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row's embedding, the kept mask, and ``f1`` (NaN for null), read here."""
    table = dataset.read()
    rows = as_rows(table.column("emb"))
    f1 = table.column("f1").to_numpy(zero_copy_only=False).astype(np.float64)
    return rows.values, kept_rows(rows, cosine=False), f1


def _drawn(plot: ClusterPlot) -> Any:
    return plot.drawn.frame.compute().sort_values("row")


def test_the_card_draws_fit_on_clusters_points_from_the_workers(dask_client, engine) -> None:
    view = View(engine, Query(table="preds"))
    plot = _card(view)
    assert isinstance(plot, ClusterPlot) and plot.error is None
    # the layer aggregates the Dask frame on the workers; this process holds no point
    assert isinstance(plot.raster, FrameRasterLayer)
    assert type(plot.drawn.frame).__module__.startswith("dask")
    assert len(plot.raster.points) == 0 and plot.inputs is None
    pieces = len(plot.drawn.projection.pieces)  # kept in fewer, bigger partitions to draw
    assert pieces > 8 and plot.drawn.frame.npartitions == 8  # 4 per worker thread
    dataset = engine.table("preds").parquet_dataset
    spec = plot.config.spec(embedding=True)
    expected = fit_on_cluster(dask_client, dataset, ["emb"], spec).points.compute()
    drawn = _drawn(plot)
    assert drawn["row"].tolist() == expected["row"].tolist()
    np.testing.assert_allclose(drawn[["x", "y"]].to_numpy(), expected[["x", "y"]].to_numpy())
    _, kept, _ = _local(dataset)
    points = int(kept.sum())
    assert drawn["row"].tolist() == np.flatnonzero(kept).tolist()
    assert plot.raster.counts == {"count": points}
    assert plot.caption.startswith(f"PCA of `emb`: {points:,} points, drawn on the cluster; ")
    assert f"PCA fitted on a sample of {points:,} of {points:,} rows" in plot.caption
    assert "every row placed on the cluster's workers" in plot.caption
    left_out = dataset.num_rows - points
    assert f"{left_out:,} rows with missing, NaN or infinite values" in plot.caption


def test_a_filter_applies_to_the_points_drawn(engine) -> None:
    view = View(engine, Query(table="preds"))
    whole = _drawn(_card(view)).set_index("row")
    plot = _card(view.with_query(filter="f1 > 0"))
    _, kept, f1 = _local(engine.table("preds").parquet_dataset)
    expected = np.flatnonzero(kept & (f1 > 0))  # a null f1 is NaN: not > 0
    drawn = _drawn(plot)
    assert drawn["row"].tolist() == expected.tolist()
    # the fit is the whole table's: the same rows are at the same places (to float32 rounding)
    np.testing.assert_allclose(
        drawn[["x", "y"]].to_numpy(), whole.loc[expected, ["x", "y"]].to_numpy(), rtol=1e-5
    )
    filtered = int((f1 > 0).sum())
    assert plot.caption.startswith(f"PCA of `emb`: {len(expected):,} points, drawn on the cluster")
    assert f"the filter keeps {filtered:,} rows" in plot.caption
    assert f"{filtered - len(expected):,} rows with missing" in plot.caption


def test_a_box_on_the_cluster_raster_selects_exactly_the_rows_inside(engine) -> None:
    from bokeh import events

    got: list[Any] = []
    view = View(engine, Query(table="preds", filter="f1 > 0")).with_select_sink(got.append)
    plot = _card(view)
    drawn = _drawn(plot)
    x, y = drawn["x"].to_numpy(np.float64), drawn["y"].to_numpy(np.float64)
    (x0, x1), (y0, y1) = np.quantile(x, [0.2, 0.7]), np.quantile(y, [0.3, 0.9])
    geometry = {"type": "rect", "x0": x0, "x1": x1, "y0": y0, "y1": y1}
    plot.figure._trigger_event(events.SelectionGeometry(plot.figure, geometry, final=True))
    (brush,) = got
    assert brush == RegionBrush(
        points=plot.points_key, polygon=((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    )
    inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    expected = drawn["row"].to_numpy()[inside]
    assert 100 < len(expected) < len(drawn)
    linked = view.with_selection(Selection().with_brush("projection", brush))
    # (DuckDB's semi-join over 40 files gives the rows in no set order)
    assert np.sort(linked.selected().row_numbers()).tolist() == expected.tolist()
    assert linked.selected().count() == len(expected)
    # the card drawn with that selection highlights exactly those points, aggregated on the workers
    again = _card(linked)
    assert again.points_key == plot.points_key
    assert again.chosen.tolist() == expected.tolist()
    assert int(again.raster.selected.sum()) == len(expected)


def test_a_click_lists_neighbours_among_the_sample_with_a_note(engine) -> None:
    plot = _card(View(engine, Query(table="preds")))
    values, kept, _ = _local(engine.table("preds").parquet_dataset)
    row = int(np.flatnonzero(kept)[123])
    neighbours = plot.select(row)
    assert len(neighbours) == 10 and row not in neighbours["row"].tolist()
    # the whole dataset is the sample here: its true nearest neighbours, in the original space
    rows = np.flatnonzero(kept)
    unit = values[rows] / np.linalg.norm(values[rows], axis=1, keepdims=True)
    distance = 1 - unit @ (values[row] / np.linalg.norm(values[row]))
    nearest = rows[np.argsort(distance, kind="stable")[1:11]]
    assert sorted(neighbours["row"].tolist()) == sorted(nearest.tolist())
    assert f"neighbours among the {len(rows):,} sampled rows" in plot.neighbour_title.object
    assert sorted(plot.marks.data["row"].tolist()) == sorted(nearest.tolist())
    dropped = int(np.flatnonzero(~kept)[0])
    assert plot.select(dropped) is None
    assert f"row {dropped} has no point" in plot.neighbour_title.object


def test_one_file_or_no_cluster_keeps_the_local_path(dask_client, folder: Path, tmp_path) -> None:
    dataset = open_dataset(folder)
    one = tmp_path / "one.parquet"
    import pyarrow.parquet as pq

    pq.write_table(dataset.read().select(["emb", "f1"]), one)
    for tables, cluster in (({"preds": Table.from_parquet(one)}, dask_client),
                            ({"preds": Table.from_parquet_dataset(folder)}, None)):  # fmt: skip
        with closing(Engine(tables, cluster=cluster)) as engine:
            plot = _card(View(engine, Query(table="preds")))
            assert not isinstance(plot, ClusterPlot) and plot.result is not None
            assert "drawn on the cluster" not in plot.caption


def test_a_lost_cluster_turns_the_card_into_the_engines_message(folder: Path) -> None:
    import distributed

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        client = distributed.Client(cluster)
        address = client.scheduler.address
        engine = Engine({"preds": Table.from_parquet_dataset(folder)}, cluster=client)
        view = View(engine, Query(table="preds"))
        view.count()  # answered (and kept) while the cluster runs
    # the scheduler is gone; the client is still there
    with closing(client), closing(engine):
        plot = _card(view)
        assert isinstance(plot, ClusterPlot)
        assert plot.error.startswith(f"the Dask cluster at {address} is not answering: ")
        assert plot.error.endswith("restart the cluster or serve without --cluster")
        # what runs in this process still answers (groups are counted here, not on the cluster)
        assert View(engine, Query(table="preds", group_by=["split"])).count() == 2


def test_points_frames_register_only_on_an_engine_with_a_cluster(folder: Path) -> None:
    engine = Engine({"preds": Table.from_parquet_dataset(folder)})
    with closing(engine), pytest.raises(QueryError, match="this engine has no Dask cluster; "):
        engine.register_point_frame("p", None)


def _labels(dataset: ParquetDataset, column: str) -> np.ndarray:
    """Every row's ``column`` as the points' labels, read here."""
    from panels_builtin.projection.labels import label_text

    return np.array([label_text(v) for v in dataset.read().column(column).to_pylist()], object)


@pytest.mark.parametrize("column", ["kind", "split"])  # in the files; a partition folder
def test_colour_by_a_category_counts_each_category_on_the_workers(engine, column: str) -> None:
    from panels_builtin.palette import category_palette

    plot = _card(View(engine, Query(table="preds")), colour_by=column)
    assert plot.error is None
    dataset = engine.table("preds").parquet_dataset
    _, kept, _ = _local(dataset)
    names, counts = np.unique(_labels(dataset, column)[kept].astype(str), return_counts=True)
    assert plot.raster.counts == dict(zip(names.tolist(), counts.tolist(), strict=True))
    colouring = plot.raster.colouring
    assert colouring.kind == "category" and colouring.factors == sorted(names.tolist())
    assert colouring.palette == category_palette(len(names))
    # the drawn frame carries the category of each point, as the rows read here
    drawn = _drawn(plot)
    expected = _labels(dataset, column)[drawn["row"].to_numpy()]
    assert drawn["colour"].astype(str).tolist() == expected.astype(str).tolist()
    legend = [item.label.value for item in plot.figure.legend[0].items]
    assert legend == colouring.factors


def test_colour_by_a_number_is_its_mean_per_pixel_with_the_columns_span(engine) -> None:
    import datashader as ds

    plot = _card(View(engine, Query(table="preds")), colour_by="f1")
    _, kept, f1 = _local(engine.table("preds").parquet_dataset)
    assert plot.raster.colouring.kind == "number"
    assert plot.raster.counts == {"count": int(kept.sum())}
    finite = f1[kept & np.isfinite(f1)]
    assert plot.raster.span == (finite.min(), finite.max())
    # each pixel's mean equals datashader's over the same points and values held here
    drawn = _drawn(plot).assign(colour=lambda d: f1[d["row"].to_numpy()])
    (x0, x1), (y0, y1) = plot.raster.window
    canvas = ds.Canvas(560, 420, x_range=(x0, x1), y_range=(y0, y1))
    expected = canvas.points(drawn, "x", "y", agg=ds.mean("colour")).values
    got = canvas.points(plot.raster.frame.compute(), "x_2d", "y_2d", agg=ds.mean("colour"))
    np.testing.assert_allclose(got.values, expected, rtol=1e-12, equal_nan=True)


def test_hover_shows_the_rows_values_fetched_through_the_engine_as_text(engine) -> None:
    view = View(engine, Query(table="preds"))
    plot = _card(view, colour_by="kind", tooltip=["f1", "split"])
    dataset = engine.table("preds").parquet_dataset
    _, kept, f1 = _local(dataset)
    kinds = _labels(dataset, "kind")
    row = int(np.flatnonzero(kept & (kinds == "<b>bird</b>") & np.isfinite(f1))[7])
    text = plot.show_hovered(row)
    number = f"{f1[row]:.3f}".rstrip("0").rstrip(".")
    split = _labels(dataset, "split")[row]
    assert text == (
        f"<b>row {row}</b><br>kind: &lt;b&gt;bird&lt;/b&gt;<br>f1: {number}<br>split: {split}"
    )
    assert plot.hover_image.object == text
    null = int(np.flatnonzero(kept & (kinds == "(null)"))[0])
    assert "<br>kind: (null)<br>" in plot.hovered_text(null)


@pytest.mark.parametrize("where", [None, "f1 > 0"])
def test_search_marks_exactly_the_rows_a_pandas_filter_finds(engine, where) -> None:
    import pandas as pd

    view = View(engine, Query(table="preds", filter=where))
    plot = _card(view, colour_by="kind")
    dataset = engine.table("preds").parquet_dataset
    _, kept, f1 = _local(dataset)
    frame = pd.DataFrame({"kind": dataset.read().column("kind").to_pylist(), "f1": f1})
    frame = frame[kept & ((frame["f1"] > 0) if where else True)]
    for text, expected in (
        (" DO ", frame.index[frame["kind"].str.lower().str.contains("do", na=False)]),
        ("(NUL", frame.index[frame["kind"].isna()]),
        ("bird</", frame.index[frame["kind"].str.contains("bird</", regex=False, na=False)]),
    ):
        found = plot.search(text)
        assert found.tolist() == expected.tolist()
        shown = f"{len(expected):,} of {len(frame):,} points match {markdown_code(text.strip())}"
        assert plot.search_info.object == shown + " in `kind`"
        # the matches are drawn on the workers as their own layer over the raster
        marked = plot.raster_source.data["found"][0]
        assert (marked > 0).any() == (len(expected) > 0)
    assert plot.search("") is None and plot.raster.found is None
    assert not plot.raster_source.data["found"][0].any()


def test_points_kept_for_drawing_join_consecutive_partitions(dask_client) -> None:
    """At least 4 partitions per worker thread, up to ``POINTS_PER_PARTITION`` points each,
    the rows in their order; a frame of few partitions is left as it is."""
    import dask.dataframe as dd
    import pandas as pd

    frame = dd.from_pandas(pd.DataFrame({"row": np.arange(1_000)}), npartitions=50)
    joined = drawable(dask_client, frame, 1_000)  # 2 single-threaded workers
    assert joined.npartitions == 8
    assert joined.compute()["row"].tolist() == list(range(1_000))
    assert drawable(dask_client, frame, 20 * POINTS_PER_PARTITION).npartitions == 20
    assert drawable(dask_client, frame.repartition(npartitions=5), 1_000).npartitions == 5
