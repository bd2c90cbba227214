"""Projection of a Parquet dataset on a Dask cluster (``panels_core.projection.distributed``).

A generated dataset of 40 Hive-partitioned files (several row groups each, null and NaN
vectors, a file without one of the numeric columns) is projected on the session's
LocalCluster of 2 worker processes (``dask_client``); every answer is checked against
the same rows read in this process with pyarrow, in the dataset's row order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panels_core.data.dataset import ParquetDataset, open_dataset
from panels_core.projection import ProjectionError, ProjectionSpec, nearest_neighbors
from panels_core.projection.distributed import (
    ClusterProjection,
    count_image,
    fit_on_cluster,
    points_extent,
)
from panels_core.projection.pieces import Moments, dataset_pieces, kept_rows, sample_plan
from panels_core.projection.rows import as_rows

SPLITS = ("test", "train")
SHARDS = 20
DIM = 6


def _file_rows(rng: np.random.Generator, split: str, shard: int) -> pa.Table:
    rows = int(rng.integers(150, 450))
    centre = rng.normal(scale=4, size=DIM)
    emb = (rng.normal(size=(rows, DIM)) + centre).astype(np.float32)
    emb[rng.random(rows) < 0.03, 2] = np.nan
    numbers = rng.normal(size=(rows, 3)) * (1, 10, 100)
    numbers[rng.random(rows) < 0.03, 1] = np.nan
    columns = {
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), DIM),
        "f1": pa.array(numbers[:, 0], mask=rng.random(rows) < 0.02),
        "f2": pa.array(numbers[:, 1]),
        "f3": pa.array(numbers[:, 2]),
    }
    if (split, shard) == ("train", 3):
        del columns["f3"]  # read as null here: those rows have no point on f1..f3
    table = pa.table(columns)
    missing = rng.random(rows) < 0.02  # rows without an embedding
    emb_column = pa.array(
        [None if m else v for m, v in zip(missing, table.column("emb").to_pylist(), strict=True)],
        pa.list_(pa.float32(), DIM),
    )
    return table.set_column(0, "emb", emb_column)


def write_dataset(folder: Path) -> None:
    rng = np.random.default_rng(15)
    for split in SPLITS:
        for shard in range(SHARDS):
            out = folder / f"split={split}" / f"shard={shard:02d}"
            out.mkdir(parents=True)
            pq.write_table(
                _file_rows(rng, split, shard), out / "part-0.parquet", row_group_size=128
            )


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParquetDataset]:
    """The dataset; afterwards its folder's listing and mtimes must be unchanged."""
    folder = tmp_path_factory.mktemp("cluster-proj") / "preds"
    write_dataset(folder)
    before = _listing(folder)
    yield open_dataset(folder)
    assert _listing(folder) == before, "something was written into the dataset's folder"


def _local(dataset: ParquetDataset, columns: list[str], cosine: bool = False):
    """Every row of ``columns`` read in this process, the kept mask, in dataset row order."""
    table = dataset.read()
    if columns == ["emb"]:
        rows = as_rows(table.column("emb"))
    else:
        rows = as_rows(table.select(columns).to_pandas())
    return rows.values, kept_rows(rows, cosine)


def _points(projection: ClusterProjection):
    frame = projection.points.compute()
    assert frame["row"].is_monotonic_increasing  # the pieces are in row order
    return frame


def test_sample_plan_is_seeded_proportional_and_spread(dataset: ParquetDataset) -> None:
    plan = sample_plan(dataset.rows, 2_000, seed=7)
    again = sample_plan(dataset.rows, 2_000, seed=7)
    other = sample_plan(dataset.rows, 2_000, seed=8)
    assert all(np.array_equal(a, b) for a, b in zip(plan, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(plan, other, strict=True))
    counts = np.array([len(p) for p in plan])
    assert len(plan) == len(dataset.files) == 40 and counts.sum() == 2_000
    share = np.array(dataset.rows) * 2_000 / dataset.num_rows
    assert np.all(np.abs(counts - share) < 1) and counts.min() > 0
    for rows, picks in zip(dataset.rows, plan, strict=True):
        assert len(np.unique(picks)) == len(picks) and picks.min() >= 0 and picks.max() < rows
    every = sample_plan([5, 3], 100, seed=0)
    assert [p.tolist() for p in every] == [[0, 1, 2, 3, 4], [0, 1, 2]]


def test_pieces_are_row_groups_in_row_order(dataset: ParquetDataset) -> None:
    pieces = dataset_pieces(dataset, ["f1", "f2", "f3"])
    assert len(pieces) > len(dataset.files)  # several row groups per file
    assert [p.first for p in pieces] == list(np.cumsum([0] + [p.rows for p in pieces])[:-1])
    assert sum(p.rows for p in pieces) == dataset.num_rows
    lacking = [p for p in pieces if "split=train/shard=03" in p.path]
    assert lacking and all(p.columns == ("f1", "f2") for p in lacking)


def test_same_seed_gives_the_same_sample_spread_over_every_file(dask_client, dataset) -> None:
    spec = ProjectionSpec(method="pca", seed=3)
    first = fit_on_cluster(dask_client, dataset, ["emb"], spec, sample=1_500)
    second = fit_on_cluster(dask_client, dataset, ["emb"], spec, sample=1_500)
    assert np.array_equal(first.sample_rows, second.sample_rows)
    assert np.array_equal(first.sample, second.sample)
    values, kept = _local(dataset, ["emb"])
    assert np.all(kept[first.sample_rows])  # only kept rows are fitted on
    assert np.array_equal(first.sample, values[first.sample_rows])
    files = np.searchsorted(np.array(dataset.offsets), first.sample_rows, side="right") - 1
    assert set(files.tolist()) == set(range(40))
    assert 1_400 < len(first.sample_rows) <= 1_500  # the sampled rows that were left out


def test_pca_points_of_every_row_equal_the_local_transform(dask_client, dataset) -> None:
    spec = ProjectionSpec(method="pca", seed=1, scale="standard")
    columns = ["f1", "f2", "f3"]
    projection = fit_on_cluster(dask_client, dataset, columns, spec, sample=3_000)
    values, kept = _local(dataset, columns)
    frame = _points(projection)
    rows = np.flatnonzero(kept)
    assert np.array_equal(frame["row"].to_numpy(), rows)
    assert projection.kept == len(rows) and projection.dropped == dataset.num_rows - len(rows)
    assert "left out" in projection.message
    # the standardization is that of every kept row, as the local pipeline's
    model = projection.model
    np.testing.assert_allclose(model.mean, values[kept].mean(axis=0, dtype=np.float64), rtol=1e-5)
    np.testing.assert_allclose(model.std, values[kept].std(axis=0, dtype=np.float64), rtol=1e-5)
    local = model.transform(values[kept], rows)
    points = frame[["x", "y"]].to_numpy()
    np.testing.assert_allclose(points, local, rtol=1e-5, atol=1e-5)
    assert model.axis_labels[0].startswith("PC1 (")


def test_moments_combine_as_one_pass() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(1_000, 3)) * 5 + 2
    parts = [Moments.of(values[a:b]) for a, b in ((0, 10), (10, 10), (10, 600), (600, 1_000))]
    total = sum(parts[1:], parts[0])
    assert total.count == 1_000
    np.testing.assert_allclose(total.mean, values.mean(axis=0))
    np.testing.assert_allclose(total.std, values.std(axis=0))


def test_datashader_counts_over_dask_equal_pandas(dask_client, dataset) -> None:
    spec = ProjectionSpec(method="pca", seed=0)
    projection = fit_on_cluster(dask_client, dataset, ["emb"], spec, sample=2_000)
    (x0, x1), (y0, y1) = points_extent(projection.points)
    frame = _points(projection)
    assert (x0, x1) == (frame["x"].min(), frame["x"].max())
    window = ((x0 - 1, x1 + 1), (y0 - 1, y1 + 1))
    on_workers = count_image(projection.points, *window, width=80, height=60)
    in_pandas = count_image(frame, *window, width=80, height=60)
    assert on_workers.values.dtype == in_pandas.values.dtype
    assert np.array_equal(on_workers.values, in_pandas.values)
    assert int(on_workers.values.sum()) == len(frame) == projection.kept


def test_umap_on_the_sample_places_every_row(dask_client, dataset) -> None:
    spec = ProjectionSpec(method="umap", seed=0, params={"n_neighbors": 10})
    projection = fit_on_cluster(dask_client, dataset, ["emb"], spec, sample=800)
    _, kept = _local(dataset, ["emb"])
    frame = _points(projection)
    assert np.array_equal(frame["row"].to_numpy(), np.flatnonzero(kept))
    points = frame[["x", "y"]].to_numpy()
    assert np.isfinite(points).all()
    fitted = np.isin(frame["row"].to_numpy(), projection.model.fitted_rows)
    assert fitted.sum() == len(projection.model.fitted_rows) == len(projection.sample_rows)
    assert 700 < fitted.sum() <= 800
    np.testing.assert_array_equal(points[fitted], projection.model.fitted_points)
    assert projection.model.axis_labels == ("UMAP 1", "UMAP 2")


def test_neighbours_come_from_the_sample(dask_client, dataset) -> None:
    spec = ProjectionSpec(method="pca", seed=0)
    projection = fit_on_cluster(dask_client, dataset, ["emb"], spec, sample=1_000)
    values, kept = _local(dataset, ["emb"])
    inside = int(projection.sample_rows[10])
    outside = int(np.setdiff1d(np.flatnonzero(kept), projection.sample_rows)[5])
    for row in (inside, outside):
        found, distances, note = projection.neighbours(dask_client, row, k=5, metric="euclidean")
        assert note == f"neighbours among the {len(projection.sample_rows):,} sampled rows"
        candidates = projection.sample_rows[projection.sample_rows != row]
        pool = np.vstack([values[candidates], values[row][None, :]])
        expect, expect_d = nearest_neighbors(pool, len(candidates), k=5, metric="euclidean")
        assert found.tolist() == candidates[expect].tolist()
        np.testing.assert_allclose(distances, expect_d)
    dropped = int(np.flatnonzero(~kept)[0])
    with pytest.raises(ProjectionError, match=f"row {dropped} has no point"):
        projection.neighbours(dask_client, dropped)


def test_unknown_column_is_refused_by_name(dask_client, dataset) -> None:
    with pytest.raises(ProjectionError, match="has no column `embedding` to project; choose"):
        fit_on_cluster(dask_client, dataset, ["embedding"], ProjectionSpec())


def test_a_lost_cluster_is_a_clear_error(dataset) -> None:
    import distributed

    from panels_core.query.cluster import local_cluster

    with local_cluster(1, processes=False) as cluster:
        client = distributed.Client(cluster, set_as_default=False)
    client.close()
    with pytest.raises(
        ProjectionError, match=r"the Dask cluster at .* is not answering: the connection is closed"
    ):
        fit_on_cluster(client, dataset, ["emb"], ProjectionSpec(), sample=100)


def test_raster_layer_draws_a_dask_frame(dask_client, dataset) -> None:
    from panels_builtin.projection.raster import RASTER_HEIGHT, RASTER_WIDTH, FrameRasterLayer

    spec = ProjectionSpec(method="pca", seed=0)
    projection = fit_on_cluster(dask_client, dataset, ["emb"], spec, sample=2_000)
    layer = FrameRasterLayer(projection.points)
    data = layer.draw()
    frame = _points(projection)
    assert layer.counts == {"count": len(frame)}
    rows = data["row"][0]
    assert rows.shape == (RASTER_HEIGHT, RASTER_WIDTH)
    # each drawn pixel shows the last (highest) row number among its points
    i, j = layer.pixel_of(frame[["x", "y"]].to_numpy())
    top = np.full((RASTER_HEIGHT, RASTER_WIDTH), -1)
    np.maximum.at(top, (i, j), frame["row"].to_numpy())
    assert np.array_equal(rows, top)
    first = frame.iloc[0]
    assert layer.point_at(float(first["x"]), float(first["y"])) == top[i[0], j[0]]
    (_, right), (bottom, _) = layer.window
    assert layer.point_at(right + 1, bottom) is None


def test_a_clicked_point_is_the_engines_row(dask_client, dataset) -> None:
    """The row number a raster pixel gives is the row the engine pages at that number."""
    from contextlib import closing

    from panels_builtin.projection.raster import FrameRasterLayer
    from panels_core.data.table import Table
    from panels_core.query.engine import Engine
    from panels_core.query.model import Query
    from panels_core.view import View

    projection = fit_on_cluster(dask_client, dataset, ["emb"], ProjectionSpec(), sample=1_000)
    layer = FrameRasterLayer(projection.points)
    layer.draw()
    frame = _points(projection)
    last = frame.iloc[-1]
    row = layer.point_at(float(last["x"]), float(last["y"]))
    assert row is not None and row in set(frame["row"])
    values, _ = _local(dataset, ["emb"])
    with closing(Engine({"preds": Table.from_parquet_dataset(dataset)})) as engine:
        page = View(engine, Query(table="preds")).page(offset=row, limit=1, columns=["emb"])
    assert np.array_equal(np.array(page.column("emb")[0].as_py(), np.float32), values[row])
