"""The 2D Projection panel: defaults on the seed's tables, points vs scikit-learn, rows left out,
UMAP/t-SNE, colours, neighbours on click, search, the rasterised path, background runs."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pyarrow as pa
import pytest
from bokeh.document import Document
from bokeh.models import ColorBar, Legend
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from panels_builtin.projection import (
    MAX_CATEGORIES,
    RASTER_HEIGHT,
    RASTER_WIDTH,
    Projection2D,
    ProjectionConfig,
    ProjectionPlot,
    RasterLayer,
)
from panels_builtin.projection import panel as panel_module
from panels_core import projection as proj
from panels_core.data.table import Table
from panels_core.demo import digits_table, hello_table
from panels_core.panel_registry import registry
from panels_core.projection.worker import ProcessProjector
from panels_core.view import View

# seconds a test waits at most for a background projection: a bound for a busy machine
WAIT = 600


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> View:
    """The demo digits table (image, target, 64 pixels, embedding), scanned from Parquet."""
    path = tmp_path_factory.mktemp("digits") / "digits.parquet"
    digits_table().save(path)
    return View.of(Table.from_parquet(path))


@pytest.fixture(scope="module")
def digits_plot(digits: View) -> ProjectionPlot:
    """The default projection of the digits (PCA of the embedding, colour by target)."""
    plot = Projection2D(Projection2D.default_config(digits.type)).render(digits)
    assert isinstance(plot, ProjectionPlot) and plot.error is None, plot
    return plot


def blobs(n: int = 60, dim: int = 6, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows in three separated clusters and their cluster labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 12, size=(3, dim))
    labels = np.arange(n) % 3
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def embedding_table(values: np.ndarray, **columns: Any) -> Table:
    """A Table with ``values`` as an ``embedding`` column (all-NaN rows become nulls)."""
    null = np.isnan(values).all(axis=1)
    dense = np.where(null[:, None], 0, values).astype(np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(
        pa.array(dense.ravel()), values.shape[1], mask=pa.array(null) if null.any() else None
    )
    return Table.from_arrow(pa.table({"embedding": embedding, **columns}))


def assert_equal_up_to_sign(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    for j in range(a.shape[1]):
        sign = np.sign(np.dot(a[:, j], b[:, j])) or 1.0
        np.testing.assert_allclose(a[:, j], sign * b[:, j], atol=atol)


def points_of(plot: ProjectionPlot) -> np.ndarray:
    data = plot.source.data
    return np.column_stack([np.asarray(data["x"]), np.asarray(data["y"])])


# --------------------------------------------------------------------------- the seed's tables


def test_hello_world_is_offered_the_projection_of_all_five_columns() -> None:
    view = View.of(hello_table())
    matches = {m.kind: m for m in registry.compatible(view.type)}
    assert "projection" in matches
    config = matches["projection"].config
    assert config.columns == ["D1", "D2", "D3", "D4", "D5"]
    assert (config.method, config.colour_by, config.image) == ("pca", None, None)
    plot = Projection2D(config).render(view)
    assert plot.rows.tolist() == [0, 1, 2]
    X = hello_table().to_pandas().to_numpy(dtype=np.float32)
    scaled = StandardScaler().fit_transform(X.astype(np.float64))
    assert_equal_up_to_sign(points_of(plot), PCA(2).fit_transform(scaled), atol=1e-4)
    assert plot.caption == (
        "PCA of 5 numeric columns: 3 points; standardized the 5 input columns "
        "(mean 0, standard deviation 1)"
    )


def test_digits_defaults_colour_by_target_and_image_on_hover(digits: View) -> None:
    matches = {m.kind: m for m in registry.compatible(digits.type)}
    assert {"projection", "table", "histogram"} <= set(matches)
    config = matches["projection"].config
    assert (config.columns, config.colour_by, config.image) == (["embedding"], "target", "image")


def test_digits_without_an_embedding_use_the_64_pixel_columns() -> None:
    arrow = digits_table().to_arrow().drop_columns(["embedding"])
    view = View.of(Table.from_arrow(arrow))
    config = {m.kind: m for m in registry.compatible(view.type)}["projection"].config
    assert len(config.columns) == 64 and all(c.startswith("pixel_") for c in config.columns)
    assert (config.colour_by, config.image) == ("target", "image")
    plot = Projection2D(config).render(view)
    pixels = arrow.select(config.columns).to_pandas().to_numpy(dtype=np.float64)
    scaled = StandardScaler().fit_transform(pixels)  # constant pixels: scale 1, as ours
    assert_equal_up_to_sign(points_of(plot), PCA(2).fit_transform(scaled), atol=2e-3)
    unscaled = Projection2D(config.model_copy(update={"scale": "none"})).render(view)
    assert_equal_up_to_sign(points_of(unscaled), PCA(2).fit_transform(pixels), atol=2e-3)


def test_id_like_columns_are_not_projected_and_tables_without_two_numbers_are_not_offered() -> None:
    table = Table(
        dataframe=pd.DataFrame(
            {"id": [1, 2, 3, 4], "a": [0.1, 0.5, 0.2, 0.9], "b": [1.0, 0.0, 2.0, 3.0]}
        )
    )
    assert Projection2D.default_config(table.type).columns == ["a", "b"]
    one_number = Table(dataframe=pd.DataFrame({"a": [0.1, 0.2], "g": ["x", "y"]}))
    assert "projection" not in {m.kind for m in registry.compatible(one_number.type)}


# --------------------------------------------------------------------------- points and rows


def test_pca_points_match_sklearn_one_per_row(digits: View, digits_plot: ProjectionPlot) -> None:
    X = digits.column_numpy("embedding")
    plot_rows = np.asarray(digits_plot.source.data["row"])
    assert len(plot_rows) == len(X) == 1797
    np.testing.assert_array_equal(plot_rows, np.arange(1797))
    assert_equal_up_to_sign(points_of(digits_plot), PCA(2).fit_transform(X), atol=2e-3)
    assert digits_plot.figure.xaxis[0].axis_label.startswith("PC1 (")


def test_missing_and_nan_rows_are_left_out_and_counted() -> None:
    values, labels = blobs(40)
    values[[3, 7]] = np.nan  # null embeddings
    table = embedding_table(values, group=pa.array(labels.astype(str)))
    plot = Projection2D(columns=["embedding"]).render(View.of(table))
    assert plot.result.n_kept == 38 and len(plot.source.data["x"]) == 38
    assert 3 not in plot.rows and 7 not in plot.rows
    assert "2 rows without an embedding were left out" in plot.caption

    frame = pd.DataFrame(values[:, :3], columns=["a", "b", "c"])
    frame.loc[[0, 5, 9], "b"] = [np.nan, np.inf, np.nan]
    plot = Projection2D(columns=["a", "b", "c"]).render(View.of(Table(dataframe=frame)))
    assert plot.result.n_kept == 35  # rows 3 and 7 all-NaN, rows 0, 5, 9 one bad value
    assert set(plot.rows.tolist()).isdisjoint({0, 3, 5, 7, 9})
    assert "3 rows with missing, NaN or infinite values were left out" in plot.caption


def test_empty_view_and_bad_columns_give_messages(digits: View) -> None:
    empty = digits.with_query(filter='target == "nope"')
    shown = Projection2D(Projection2D.default_config(digits.type)).render(empty)
    assert isinstance(shown, pn.pane.Alert) and "No rows" in shown.object
    both = Projection2D(columns=["embedding", "pixel_0_1"]).render(digits)
    assert isinstance(both, pn.pane.Alert) and "not both" in both.object
    constant = Projection2D(columns=["pixel_0_0", "pixel_4_0"]).render(digits)
    assert isinstance(constant, ProjectionPlot) and "identical values" in constant.error


def test_config_builds_the_projection_spec_and_rejects_bad_params() -> None:
    config = ProjectionConfig(
        columns=["e"], method="umap", umap_n_neighbors=5, umap_metric="cosine", seed=7
    )
    assert config.spec(embedding=True) == proj.ProjectionSpec(
        method="umap", params={"n_neighbors": 5, "metric": "cosine"}, seed=7
    )
    assert (config.spec(embedding=True).scale, config.spec().scale) == ("none", "standard")
    unscaled = config.model_copy(update={"scale": "none"})
    assert unscaled.spec().scale == "none"
    assert ProjectionConfig(columns=["e"], pca_x=2, pca_y=3).spec().params.components == (2, 3)
    with pytest.raises(ValueError, match="two different components"):
        ProjectionConfig(columns=["e"], pca_x=2, pca_y=2)
    with pytest.raises(ValueError, match="must not exceed spread"):
        ProjectionConfig(columns=["e"], method="umap", umap_min_dist=0.9, umap_spread=0.5)


def test_gear_form_edits_method_params_and_colour(digits: View) -> None:
    from panels_core.forms import config_form

    form = config_form(Projection2D, digits.type)
    form.widgets["method"].value = "tsne"
    form.widgets["tsne_perplexity"].value = 12.0
    assert (form.config.method, form.config.tsne_perplexity) == ("tsne", 12.0)
    form.widgets["tsne_learning_rate"].value = "200"
    assert form.config.tsne_learning_rate == 200.0
    form.widgets["colour_by"].value = "pixel_3_3"
    assert form.config.colour_by == "pixel_3_3"
    form.widgets["pca_y"].value = 1  # equals pca_x: refused, last valid config kept
    assert any("pca_x / pca_y: " in text and "different" in text for text in form.errors.values())
    assert form.config.pca_y == 2


# --------------------------------------------------------------------------- UMAP and t-SNE


def _nonlinear_view() -> tuple[View, np.ndarray, np.ndarray]:
    values, labels = blobs(45, dim=5)
    return View.of(embedding_table(values, group=pa.array(labels.astype(str)))), values, labels


def _separated(points: np.ndarray, labels: np.ndarray) -> bool:
    """Every point is nearer its own cluster's centre than any other's."""
    centres = np.stack([points[labels == k].mean(axis=0) for k in range(3)])
    nearest = np.argmin(((points[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    return bool((nearest == labels).all())


@pytest.mark.parametrize(
    "method,extra",
    [("tsne", {"tsne_perplexity": 5.0, "tsne_n_iter": 250}), ("umap", {"umap_n_neighbors": 5})],
)
def test_umap_and_tsne_run_deterministic_with_a_seed(method: str, extra: dict) -> None:
    view, values, labels = _nonlinear_view()
    config = ProjectionConfig(columns=["embedding"], method=method, seed=11, **extra)
    plot = Projection2D(config).render(view)
    assert plot.error is None and plot.result.n_kept == 45
    assert plot.figure.xaxis[0].axis_label == ("UMAP 1" if method == "umap" else "t-SNE 1")
    assert _separated(points_of(plot), labels)
    # the same seed gives the same layout when computed again (no cache)
    again = proj.project(values, config.spec(embedding=True))  # an embedding: never scaled
    np.testing.assert_allclose(points_of(plot), again.points, atol=1e-4)
    # rendering the same config again is a cache hit: the very same result object
    assert Projection2D(config).render(view).result is plot.result


# --------------------------------------------------------------------------- colour, size, hover


def test_every_category_gets_its_colour_and_legend(digits_plot: ProjectionPlot) -> None:
    colouring = digits_plot.colouring
    assert colouring.kind == "category" and colouring.factors == [str(d) for d in range(10)]
    assert len(set(colouring.palette)) == 10
    colours = np.asarray(digits_plot.source.data["colour"])
    assert set(colours.tolist()) == set(colouring.factors)
    targets = digits_table().to_pandas()["target"].astype(str).to_numpy()
    np.testing.assert_array_equal(colours, targets)
    from bokeh.models import GlyphRenderer

    (renderer,) = digits_plot.figure.select({"type": GlyphRenderer, "name": "points"})
    transform = renderer.glyph.fill_color.transform
    assert list(transform.factors) == colouring.factors
    assert list(transform.palette) == colouring.palette
    (legend,) = digits_plot.figure.legend
    assert legend.title == "target" and legend.items[0].label.field == "colour"


def test_many_categories_fold_into_other_and_every_point_is_mapped() -> None:
    values, _ = blobs(120, dim=4)
    names = np.array([f"c{i:03d}" for i in range(60)])[np.arange(120) % 60]
    names[:30] = "c000"  # most frequent
    table = embedding_table(values, name=pa.array(names).dictionary_encode())
    plot = Projection2D(columns=["embedding"], colour_by="name").render(View.of(table))
    colouring = plot.colouring
    assert len(colouring.factors) == MAX_CATEGORIES and colouring.factors[-1] == "(other)"
    assert len(colouring.palette) == MAX_CATEGORIES
    drawn = np.asarray(plot.source.data["colour"])
    assert set(drawn.tolist()) <= set(colouring.factors)
    kept = set(colouring.factors[:-1])
    np.testing.assert_array_equal(drawn, np.where(np.isin(names, list(kept)), names, "(other)"))
    assert "c000" in kept and "coloured as (other)" in plot.caption


def test_number_colour_size_and_tooltip_columns(digits: View) -> None:
    config = Projection2D.default_config(digits.type).model_copy(
        update={"colour_by": "pixel_3_3", "size_by": "pixel_4_4", "tooltip": ["pixel_0_1"]}
    )
    plot = Projection2D(config).render(digits)
    data = plot.source.data
    np.testing.assert_array_equal(data["colour"], digits.column_numpy("pixel_3_3"))
    sizes = np.asarray(data["size"])
    size_src = digits.column_numpy("pixel_4_4")
    assert sizes[np.argmax(size_src)] == sizes.max() and sizes[np.argmin(size_src)] == sizes.min()
    from bokeh.models import ColorBar, HoverTool

    assert plot.figure.select({"type": ColorBar})[0].title == "pixel_3_3"
    (hover,) = plot.figure.select({"type": HoverTool})
    assert "pixel_0_1" in hover.tooltips and '<img src="@thumb"' in hover.tooltips
    column = [k for k in data if k.startswith("c") and k != "colour"]
    assert any(np.array_equal(data[k], digits.column_numpy("pixel_0_1")) for k in column)


def test_hover_thumbnails_are_the_rows_images(digits_plot: ProjectionPlot) -> None:
    import base64
    import io

    from PIL import Image as PILImage

    thumbs = digits_plot.source.data["thumb"]
    assert len(thumbs) == 1797 and all(t.startswith("data:image/png;base64,") for t in thumbs)
    image = PILImage.open(io.BytesIO(base64.b64decode(thumbs[5].split(",", 1)[1])))
    pixels = np.asarray(image.convert("L"), dtype=np.float64)
    expected = digits_table().to_pandas().iloc[5, 2:66].to_numpy(dtype=np.float64).reshape(8, 8)
    assert np.corrcoef(pixels.ravel(), expected.ravel())[0, 1] > 0.95
    # the rasterised path's hover shows the hovered row's image beside the plot: the same one
    text = digits_plot.show_hovered(5)
    assert text.startswith("<b>row 5</b>") and f'src="{thumbs[5]}"' in text
    assert digits_plot.hover_image.object == text and digits_plot.show_hovered(-1) == ""


# --------------------------------------------------------------------------- neighbours, search


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_neighbours_of_a_clicked_point_match_brute_force(digits: View, metric: str) -> None:
    config = Projection2D.default_config(digits.type).model_copy(
        update={"knn_k": 7, "knn_metric": metric}
    )
    plot = Projection2D(config).render(digits)
    X = digits.column_numpy("embedding").astype(np.float64)
    row = 42
    plot._on_tap("indices", [], [plot.point_of(row)])  # what a click does
    got = plot.neighbours
    if metric == "cosine":
        unit = X / np.linalg.norm(X, axis=1, keepdims=True)
        dist = 1 - unit @ unit[row]
    else:
        dist = np.linalg.norm(X - X[row], axis=1)
    dist[row] = np.inf
    order = np.lexsort((np.arange(len(X)), dist))[:7]
    np.testing.assert_array_equal(got["row"].to_numpy(), order)
    np.testing.assert_allclose(got["distance"].to_numpy(), dist[order], atol=1e-6)
    targets = digits_table().to_pandas()["target"].astype(str).to_numpy()
    assert got["target"].tolist() == targets[order].tolist()
    assert plot.neighbour_table.value.equals(got)
    assert plot.source.selected.indices[0] == plot.point_of(row)
    assert plot.neighbour_image.object.startswith('<img src="data:image/png;base64,')


def test_search_highlights_exactly_the_matching_rows() -> None:
    values, _ = blobs(30, dim=4)
    words = np.array(["Apple pie", "apple", "banana", "grape", None] * 6, dtype=object)
    table = embedding_table(values, word=pa.array(words.tolist(), pa.string()))
    view = View.of(table)
    plot = Projection2D(columns=["embedding"], label="word").render(view)
    matches = plot.search("APPLE")
    expected = np.array([w is not None and "apple" in w.lower() for w in words])
    np.testing.assert_array_equal(matches, expected)
    alpha = np.asarray(plot.source.data["alpha"])
    assert (alpha[expected] > 0.5).all() and (alpha[~expected] < 0.2).all()
    assert "12 of 30 points match" in plot.search_info.object
    plot.search_box.value = "grap"  # the search box drives the same search
    np.testing.assert_array_equal(plot.matches, words == "grape")
    plot.search("")
    assert plot.matches is None and (np.asarray(plot.source.data["alpha"]) > 0.5).all()
    saved = Projection2D(columns=["embedding"], label="word", search="nan").render(view)
    np.testing.assert_array_equal(saved.matches, words == "banana")


# --------------------------------------------------------------------------- > 50k points


@pytest.fixture(scope="module")
def big() -> tuple[View, pd.DataFrame]:
    """60,000 rows (over MAX_SCATTER_POINTS): three numbers, a category and a score."""
    rng = np.random.default_rng(5)
    n = 60_000
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame["kind"] = rng.choice(["x", "y", "z"], n)
    frame["score"] = rng.random(n)
    table = Table(dataframe=frame, dtypes={"kind": "category"})
    return View.of(table), frame


def test_more_than_50k_points_are_rasterised(big) -> None:
    view, frame = big
    n = len(frame)
    config = Projection2D.default_config(view.type)
    assert (config.columns, config.colour_by) == (["a", "b", "c", "score"], "kind")
    config = config.model_copy(update={"columns": ["a", "b", "c"]})
    plot = Projection2D(config).render(view)
    layer = plot.raster
    assert plot.source is None and isinstance(layer, RasterLayer)
    data = plot.raster_source.data
    assert data["image"][0].shape == data["row"][0].shape == (RASTER_HEIGHT, RASTER_WIDTH)
    # every point is counted once, in its own category
    assert layer.counts == {k: int((frame["kind"] == k).sum()) for k in ("x", "y", "z")}
    assert sum(layer.counts.values()) == n
    # the legend lists every category with its colour
    (legend,) = plot.figure.select(type=Legend)
    labels = [item.label["value"] for item in legend.items]
    assert labels == plot.colouring.factors == ["x", "y", "z"]
    colours = [item.renderers[0].data_source.data["fill"][item.index] for item in legend.items]
    assert colours == plot.colouring.palette
    # hover: each non-empty pixel holds the row of the last point drawn there, and its kind
    i, j = layer.pixel_of(plot.result.points)
    last = np.full(layer.grid.shape, -1)
    np.maximum.at(last, (i, j), np.arange(n))
    np.testing.assert_array_equal(layer.grid, last)
    rows = data["row"][0]
    filled = last >= 0
    np.testing.assert_array_equal(rows[filled], plot.rows[last[filled]])
    assert (rows[~filled] == -1).all() and filled.sum() > 1000
    kinds = np.asarray(plot.colouring.factors)[data["c0"][0][filled]]
    np.testing.assert_array_equal(kinds, frame["kind"].to_numpy()[plot.rows[last[filled]]])
    # a tap at a point's position selects the point drawn on top in that pixel
    target = 1234
    x, y = plot.result.points[target]
    assert layer.point_at(float(x), float(y)) == last[i[target], j[target]]
    assert "rasterised on the server" in plot.caption
    # search and neighbours mark their points over the raster
    assert plot.search("x").sum() == (frame["kind"] == "x").sum()
    assert len(plot.marks.data["row"]) == (frame["kind"] == "x").sum()
    neighbours = plot.select(10)
    X = frame[["a", "b", "c"]].to_numpy()
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    dist = 1 - unit @ unit[10]
    dist[10] = np.inf
    assert neighbours["row"].tolist() == np.argsort(dist, kind="stable")[:10].tolist()
    assert plot.marks.data["row"].tolist() == [10, *neighbours["row"].tolist()]


def test_zooming_the_raster_re_aggregates_the_window(big) -> None:
    view, frame = big
    config = ProjectionConfig(columns=["a", "b", "c"], colour_by="score")
    plot = Projection2D(config).render(view)
    layer = plot.raster
    assert layer.counts == {"count": len(frame)}
    (bar,) = plot.figure.select(type=ColorBar)
    assert (bar.color_mapper.low, bar.color_mapper.high) == pytest.approx(
        (frame["score"].min(), frame["score"].max())
    )
    points = plot.result.points
    window = ((-0.5, 0.5), (-0.25, 0.75))

    class Ranges:
        x0, x1 = window[0]
        y0, y1 = window[1]

    plot._on_ranges(Ranges())
    inside = (
        (points[:, 0] >= -0.5)
        & (points[:, 0] < 0.5)
        & (points[:, 1] >= -0.25)
        & (points[:, 1] < 0.75)
    )
    assert layer.window == window and layer.counts == {"count": int(inside.sum())}
    assert plot.raster_source.data["x"] == [-0.5] and plot.raster_source.data["dh"] == [1.0]
    # hover value: the score of the pixel's row
    grid = layer.grid
    filled = grid >= 0
    scores = plot.raster_source.data["c0"][0]
    np.testing.assert_allclose(
        scores[filled], frame["score"].to_numpy()[plot.rows[grid[filled]]], rtol=1e-6
    )
    plain = Projection2D(config.model_copy(update={"colour_by": None})).render(view)
    assert plain.raster.counts == {"count": len(frame)}
    assert not plain.figure.select(type=Legend) and not plain.figure.select(type=ColorBar)


def test_renders_over_one_view_reuse_the_fetched_inputs_until_its_data_changes(
    monkeypatch,
) -> None:
    values, labels = blobs(60, dim=4)
    kinds = pa.array([f"k{label}" for label in labels])
    view = View.of(embedding_table(values, kind=kinds))
    fetched: list[str] = []
    original = view.column_numpy
    monkeypatch.setattr(view, "column_numpy", lambda c: fetched.append(c) or original(c))
    first = Projection2D(columns=["embedding"], colour_by="kind").render(view)
    second = Projection2D(columns=["embedding"], colour_by=None).render(view)
    third = Projection2D(columns=["embedding"], colour_by="kind").render(view)
    assert fetched.count("embedding") == 1 and second.inputs is first.inputs
    assert third.colouring is first.colouring and third.colouring.factors == ["k0", "k1", "k2"]
    # other data under the same table name: fetched again
    view.engine.add_table("table", embedding_table(values * 2, kind=kinds))
    fourth = Projection2D(columns=["embedding"], colour_by="kind").render(view)
    assert fetched.count("embedding") == 2
    np.testing.assert_allclose(fourth.inputs.values, values * 2)
    assert fourth.result is not first.result


# --------------------------------------------------------------------------- background runs


class FakeCallback:
    """A periodic callback the test calls itself."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.running = fn, True

    def stop(self) -> None:
        self.running = False

    def run_until_stopped(self) -> None:
        """Call it until it stops (within ``WAIT``: a bound for a busy machine, not a timing)."""
        deadline = time.monotonic() + WAIT
        while self.running and time.monotonic() < deadline:
            self.fn()
            time.sleep(0.01)
        assert not self.running, f"still polling after {WAIT} s"


def periodic_callbacks(monkeypatch) -> list[FakeCallback]:
    """Renders run their projection in the background, as under a server; the periodic
    callbacks they add are collected (and called by the test)."""
    callbacks: list[FakeCallback] = []

    def add_periodic_callback(fn: Any, period: int = 0, **_: Any) -> FakeCallback:
        callbacks.append(FakeCallback(fn))
        return callbacks[-1]

    monkeypatch.setattr(panel_module, "must_wait", lambda: False)
    monkeypatch.setattr(pn.state, "add_periodic_callback", add_periodic_callback)
    return callbacks


def test_under_a_server_the_projection_runs_in_the_background(monkeypatch) -> None:
    callbacks = periodic_callbacks(monkeypatch)
    # a projector on threads of this process (the shared one may be a worker process)
    projector = proj.Projector(max_workers=1)
    monkeypatch.setattr(proj, "shared_projector", lambda: projector)
    values, _ = blobs(50, dim=8, seed=9)
    view = View.of(embedding_table(values))
    plot = Projection2D(columns=["embedding"], pca_y=3).render(view)
    assert plot.result is None and plot.progress in list(plot.layout.objects)
    (callback,) = callbacks
    callback.run_until_stopped()
    assert plot.result is not None
    expected = PCA(3).fit_transform(values)[:, [0, 2]]
    assert_equal_up_to_sign(points_of(plot), expected, atol=2e-3)
    # the result is now cached: the next render draws at once, with no background job
    again = Projection2D(columns=["embedding"], pca_y=3).render(view)
    assert again.result is plot.result and len(callbacks) == 1
    projector.shutdown()


def test_a_served_pca_card_shows_the_pca_of_column_numpy_without_the_worker(monkeypatch) -> None:
    callbacks = periodic_callbacks(monkeypatch)
    projector = ProcessProjector(cache=proj.ProjectionCache(), warm_up=False)  # served default
    monkeypatch.setattr(proj, "shared_projector", lambda: projector)
    values, _ = blobs(3000, dim=16, seed=11)
    view = View.of(embedding_table(values))
    panel = Projection2D(columns=["embedding"])
    try:
        plot = panel.render(view)
        (callback,) = callbacks
        callback.run_until_stopped()
        matrix = view.column_numpy("embedding")
        assert matrix.dtype == np.float32 and matrix.flags.writeable
        np.testing.assert_array_equal(matrix, values)
        want = proj.project(matrix, panel.config.spec(embedding=True))
        np.testing.assert_array_equal(plot.result.points, want.points)
        exact = PCA(2, svd_solver="full").fit_transform(values.astype(np.float64))
        assert_equal_up_to_sign(points_of(plot), exact, atol=1e-4 * np.abs(exact).max())
        # computed on the projector's thread here: no worker, no copy into shared memory
        assert projector.jobs_sent == 0 and projector.worker_pid is None
    finally:
        projector.shutdown()


class ServedDocument(Document):
    """A Document as under a server: it has a session, and the test can end it."""

    # what Bokeh's server sets (Panel reads the request's arguments)
    session_context = SimpleNamespace(
        id="a-session", request=SimpleNamespace(arguments={}, cookies={}, headers={})
    )

    def end_session(self) -> None:
        """What the server does when the page is closed."""
        for callback in list(self.session_destroyed_callbacks):
            callback(self.session_context)


def test_closing_the_page_cancels_its_projection(monkeypatch) -> None:
    callbacks = periodic_callbacks(monkeypatch)
    started = threading.Event()

    def held(rows: Any, spec: Any, *, progress: Any = None, cancel: Any = None) -> Any:
        started.set()
        assert cancel.wait(WAIT)  # a projection that runs until it is cancelled
        raise proj.ProjectionCancelled("stopped")

    projector = proj.Projector(max_workers=1, cache=proj.ProjectionCache(), compute=held)
    monkeypatch.setattr(proj, "shared_projector", lambda: projector)
    document = ServedDocument()
    monkeypatch.setattr(pn.state, "curdoc", document)
    values, _ = blobs(50, dim=8, seed=10)
    plot = Projection2D(columns=["embedding"]).render(View.of(embedding_table(values)))
    assert started.wait(WAIT)
    document.end_session()
    (callback,) = callbacks
    callback.run_until_stopped()  # under a server it stops with the session: here, to look
    assert plot.result is None
    assert plot.error == "This projection was stopped (cancelled by its caller)."
    assert projector.cancel_all() == []  # nothing left running for the next projection
    projector.shutdown()


def test_boolean_colour_and_values_only_on_left_out_rows() -> None:
    values, _ = blobs(12, dim=3)
    values[0] = np.nan  # the only "gone" row is left out
    kinds = ["gone"] + ["a", "b", None] * 3 + ["a", "b"]
    flags = [True, False] * 6
    table = embedding_table(values, kind=pa.array(kinds), flag=pa.array(flags))
    view = View.of(table)
    plot = Projection2D(columns=["embedding"], colour_by="kind").render(view)
    assert plot.colouring.factors == ["(null)", "a", "b"]
    expected = ["(null)" if k is None else k for k in kinds[1:]]
    assert np.asarray(plot.source.data["colour"]).tolist() == expected
    plot = Projection2D(columns=["embedding"], colour_by="flag").render(view)
    assert plot.colouring.factors == ["false", "true"]
    assert np.asarray(plot.source.data["colour"]).tolist() == [str(f).lower() for f in flags[1:]]


# --------------------------------------------------------------------------- scale


def two_scales_table(n: int = 2000) -> Table:
    """Independent random columns on scales 1 and 10,000."""
    rng = np.random.default_rng(17)
    frame = pd.DataFrame({"small": rng.normal(0, 1, n), "large": rng.normal(0, 10_000, n)})
    return Table(dataframe=frame)


def pc1_loadings(points: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """The absolute unit loadings of PC1 on ``inputs`` (PC1 is linear in the centred inputs)."""
    centred = inputs - inputs.mean(axis=0)
    weights = np.linalg.lstsq(centred, points[:, 0] - points[:, 0].mean(), rcond=None)[0]
    return np.abs(weights / np.linalg.norm(weights))


def test_numeric_columns_on_different_scales_are_standardized_by_default() -> None:
    table = two_scales_table()
    view = View.of(table)
    config = Projection2D.default_config(view.type)
    assert (config.columns, config.scale) == (["small", "large"], "standard")
    X = table.to_pandas().to_numpy(dtype=np.float64)
    plot = Projection2D(config).render(view)
    assert plot.result.spec.scale == "standard"
    loadings = pc1_loadings(points_of(plot), (X - X.mean(axis=0)) / X.std(axis=0))
    assert loadings.max() < 0.9  # balanced: about 0.707 each
    assert plot.caption == (
        "PCA of 2 numeric columns: 2,000 points; standardized the 2 input columns "
        "(mean 0, standard deviation 1)"
    )
    raw = Projection2D(config.model_copy(update={"scale": "none"})).render(view)
    assert raw.result.spec.scale == "none" and raw.result is not plot.result  # not the cached one
    assert pc1_loadings(points_of(raw), X)[1] > 0.99  # PC1 is just the large-unit column
    assert raw.caption == "PCA of 2 numeric columns: 2,000 points"


def test_an_embedding_column_is_never_standardized(digits: View, digits_plot) -> None:
    assert digits_plot.config.scale == "standard"  # the default, yet an embedding is not scaled
    before = proj.project(digits.column_numpy("embedding"), {"method": "pca", "seed": 0})
    assert digits_plot.result.spec.scale == "none"
    np.testing.assert_array_equal(points_of(digits_plot), before.points)
    assert "standardized" not in digits_plot.caption


def test_the_gear_shows_scale_and_saved_workspaces_keep_it(tmp_path) -> None:
    from panels_core.forms import config_form
    from panels_core.query.model import Query
    from panels_core.workspace import CardSpec
    from panels_core.workspace.app import Workspace

    table = two_scales_table(200)
    form = config_form(Projection2D, table.type)
    assert list(form.widgets["scale"].options) == ["standard", "none"]
    form.widgets["scale"].value = "none"
    assert form.config.scale == "none"

    table.save(tmp_path / "t.parquet")
    old = {"columns": ["small", "large"], "method": "pca"}  # saved before `scale` existed
    cards = [
        CardSpec(kind="projection", input=Query(table="t"), config=old),
        CardSpec(kind="projection", input=Query(table="t"), config={**old, "scale": "none"}),
    ]
    ws = Workspace({"t": Table.from_parquet(tmp_path / "t.parquet")}, cards)
    path = ws.save(tmp_path / "ws.json")
    again = Workspace.from_spec(path)
    assert again.to_spec() == ws.to_spec()
    assert [c.spec.config.get("scale") for c in again.cards] == [None, "none"]
    configs = [Projection2D.validate_config(c.spec.config, table.type) for c in again.cards]
    assert [c.scale for c in configs] == ["standard", "none"]
    captions = [card.body[0].objects[0].object for card in again.cards]  # the cards rendered
    assert ["standardized" in text for text in captions] == [True, False], captions
