"""The projection card on a Dask cluster: a Parquet dataset served with ``--cluster`` is fitted
on a seeded sample and every row placed on the workers (``fit_on_cluster``); the points stay
there, drawn by ``FrameRasterLayer`` (datashader over the Dask dataframe of points).

``on_cluster(view, config)`` says when a card goes this way: the view's engine has a cluster
client, the view reads one Parquet dataset (``Table.parquet_dataset``) without a comparison,
a join or groups, and the projected columns are in its files. Anything else (one file, no
cluster) takes the local path, unchanged.

``ClusterPlot`` is ``ProjectionPlot`` over such points: the fit is kept per dataset, columns
and spec (``fitted``), so a new filter or a re-render only places and draws again; a filter
applies to the points drawn (the rows it keeps are placed, the fit stays that of the whole
table); box and lasso select are resolved on the workers (``View.register_point_frame``);
a click lists neighbours among the fitted sample, with a note saying so.

As on one machine, the points are coloured by ``colour_by`` (its values read on the workers
beside the points, ``colour_frame``: a category's labels counted and factored there, a
number's mean per pixel), the hover shows the pixel's row and then that row's values
(``hovered_text``: the one row fetched through the engine), and the search marks the
points whose label contains the text (``search``: the engine finds the rows, the workers
draw their points as a layer over the raster).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from panels_builtin.captions import format_count
from panels_builtin.projection.brushing import points_key
from panels_builtin.projection.config import ProjectionConfig, is_number
from panels_builtin.projection.inputs import is_embedding
from panels_builtin.projection.labels import (
    NULL_LABEL,
    Colouring,
    category_colouring,
    label_text,
)
from panels_builtin.projection.plot import Progress, ProjectionPlot
from panels_builtin.projection.raster import FrameRasterLayer
from panels_builtin.projection.session import on_document
from panels_builtin.selecting import selection_answer
from panels_core import projection as proj
from panels_core.escape import html_text, markdown_code, markdown_text
from panels_core.projection.distributed import (
    ClusterProjection,
    drawable,
    fit_on_cluster,
    lost_as_projection_error,
    piece_extras,
    points_extent_and_count,
)
from panels_core.projection.progress import Stages
from panels_core.query.expr import Binary, Call, Col, IsNull, Lit, RowNumber

__all__ = [
    "FITS_KEPT",
    "ClusterInput",
    "ClusterPlot",
    "Drawn",
    "colour_frame",
    "factor_part",
    "finite_part",
    "fitted",
    "forget_fits",
    "hover_number",
    "label_part",
    "on_cluster",
]

FITS_KEPT = 2
"""Cluster fits kept (each holds its sample: up to 200,000 rows of the input)."""

_fits: OrderedDict[tuple[Any, ...], ClusterProjection] = OrderedDict()
_fits_lock = threading.Lock()


@dataclass(frozen=True)
class ClusterInput:
    """What a card projects on a cluster: the client, the dataset, its columns, and the rows
    the view keeps (sorted table row numbers; None: every row), and the column the points
    are coloured by (read on the workers beside them; None: by count)."""

    client: Any
    dataset: Any
    columns: tuple[str, ...]
    embedding: bool
    rows: np.ndarray | None
    colour: str | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """The dataset's files and rows and the columns (a fit's key, with the spec)."""
        files = tuple(str(f) for f in self.dataset.files)
        return ("dataset", files, tuple(self.dataset.rows), self.columns)


def on_cluster(view: Any, config: ProjectionConfig) -> ClusterInput | None:
    """The card's input on the engine's cluster, or None for the local path."""
    engine = view.engine
    client = getattr(engine, "cluster_client", None)
    query = view.query
    if client is None or query.compare_with is not None or query.join is not None:
        return None
    if query.group_by:
        return None
    dataset = getattr(engine.table(query.table), "parquet_dataset", None)
    if dataset is None or any(c not in dataset.file_columns for c in config.columns):
        return None
    embedding = is_embedding(view, config)
    whole = query.filter is None and not query.offset and query.limit is None
    rows = None if whole else np.sort(np.asarray(view.row_numbers(), dtype=np.int64))
    columns = tuple(config.columns)
    return ClusterInput(client, dataset, columns, embedding, rows, config.colour_by)


def fitted(source: ClusterInput, spec: proj.ProjectionSpec, stages: Stages) -> ClusterProjection:
    """``fit_on_cluster`` of ``source``'s whole dataset, kept (the last ``FITS_KEPT``)."""
    key = (source.client.id, source.key, spec.model_dump_json())
    with _fits_lock:
        found = _fits.get(key)
        if found is not None:
            _fits.move_to_end(key)
            return found
    projection = fit_on_cluster(source.client, source.dataset, source.columns, spec, stages=stages)
    with _fits_lock:
        _fits[key] = projection
        while len(_fits) > FITS_KEPT:
            _fits.popitem(last=False)
    return projection


def forget_fits() -> None:
    """Drop the kept cluster fits (the next card fits again)."""
    with _fits_lock:
        _fits.clear()


@dataclass(frozen=True, eq=False)
class Drawn:
    """A projection on the cluster, ready to show: the fit, the drawn points (persisted on
    the workers), their raster layer and its first draw, and how many points it holds."""

    projection: ClusterProjection
    frame: Any
    layer: FrameRasterLayer
    data: dict[str, Any]
    count: int


class ClusterPlot(ProjectionPlot):
    """``ProjectionPlot`` of a dataset projected on a Dask cluster (see the module docstring).

    After ``show``: ``drawn`` (``Drawn``), ``raster`` (its ``FrameRasterLayer``), ``caption``,
    ``points_key``; ``chosen`` is the sorted row numbers of the linked selection (None
    without one); ``select(row)`` lists neighbours among the fitted sample."""

    def __init__(self, config: ProjectionConfig, view: Any, source: ClusterInput) -> None:
        super().__init__(config, view, inputs=None)  # type: ignore[arg-type]
        self.source = source
        self.drawn: Drawn | None = None

    def compute(self, spec: proj.ProjectionSpec, stages: Stages | None = None) -> Drawn:
        """Fit (or find the kept fit), place the view's rows on the workers and keep their
        points there, and draw them once (the slow part, off the event loop)."""
        source, stages = self.source, stages or Stages(None, None)
        stages(0.0, "reading every row group on the cluster's workers")
        projection = fitted(source, spec, stages)
        stages(0.8, "placing every row on the cluster's workers")
        client = source.client
        colour = (source.colour,) if source.colour is not None else ()
        dataset, pieces = source.dataset, projection.pieces
        extras = piece_extras(dataset, pieces, {"colour": colour[0]}) if colour else ()
        frame = projection.points
        if source.rows is not None or colour:
            frame = projection.points_among(client, source.rows, extras)
        held = len(source.rows) if source.rows is not None else sum(p.rows for p in pieces)
        frame = lost_as_projection_error(
            client, lambda: client.persist(drawable(client, frame, held))
        )
        extent, count = lost_as_projection_error(client, lambda: points_extent_and_count(frame))
        if not count:
            raise proj.ProjectionError(
                f"none of the view's rows has a point ({projection.message or 'no rows'}); "
                "change the filter or the columns"
            )
        if colour:
            stages(0.85, "colouring the points on the cluster's workers")
            number = is_number(self.view.type, colour[0])
            frame, colouring, span = lost_as_projection_error(
                client, lambda: colour_frame(client, frame, colour[0], number)
            )
            layer = FrameRasterLayer(frame, extent, colouring, span)
        else:
            layer = FrameRasterLayer(frame, extent)
        layer.chosen = self._chosen(self.view)
        stages(0.9, "drawing the points on the cluster's workers")
        data = lost_as_projection_error(client, layer.draw)
        return Drawn(projection, frame, layer, data, count)

    def run_in_background(self, spec: proj.ProjectionSpec) -> None:
        """Compute on a thread of this process (the work runs on the cluster) and poll it
        from the event loop until done."""
        progress = Progress()
        future: Future[Drawn] = Future()

        def job() -> None:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(self.compute(spec, Stages(progress.report, None)))
            except BaseException as error:  # shown on the card by ``watch``
                future.set_exception(error)

        threading.Thread(target=job, name="panels-projection-cluster", daemon=True).start()
        self.watch(future, spec, self.rows_projected(), progress)

    def rows_projected(self) -> int:
        """The rows the card projects (the view's, or the dataset's)."""
        rows = self.source.rows
        return len(rows) if rows is not None else int(self.source.dataset.num_rows)

    def show(self, drawn: Drawn) -> None:  # type: ignore[override]
        """Register the drawn points for box and lasso select, and draw the raster, its
        caption and the neighbour list."""
        self.drawn = self.result = drawn  # type: ignore[assignment]
        view, projection = self.view, drawn.projection
        spec = self.config.spec(self.source.embedding)
        self.points_key = points_key(view, self.source.key, spec)
        view.register_point_frame(self.points_key, drawn.frame)
        self.chosen = drawn.layer.chosen
        self.caption = self.cluster_caption(drawn)
        self.colouring = drawn.layer.colouring
        column = self.search_column = self.config.search_column(view.type)
        labels = projection.model.axis_labels
        # thumbs: under a server the hovered row is reported to ``show_hovered``
        figure = self.raster_figure(drawn.layer, drawn.data, labels, [], thumbs=True)
        self.layout.objects = self._widgets(figure, column)
        if self.config.search:
            self.search(self.config.search)

    def cluster_caption(self, drawn: Drawn) -> str:
        """What was drawn and where: the points, the sample the fit saw, the workers."""
        projection = drawn.projection
        name = self.inputs_text().split(" ")[0]
        notes = list(projection.notes)
        notes[0] = f"{name} {notes[0]}"  # "fitted on a sample of N of M rows"
        notes.append("every row placed on the cluster's workers")
        if self.source.rows is not None:
            notes.append(f"the filter keeps {format_count(len(self.source.rows))} rows")
        rows = self.source.rows
        left_out = len(rows) if rows is not None else projection.kept + projection.dropped
        message = replace(projection, dropped=left_out - drawn.count).message
        if message:
            notes.append(message)
        notes.extend(self.colouring_notes(drawn.layer.colouring))
        notes.append(f"neighbours among the {len(projection.sample_rows):,} sampled rows")
        head = f"{self.inputs_text()}: {format_count(drawn.count)} points, drawn on the cluster"
        return head + "; " + "; ".join(notes)

    def _chosen(self, view: Any) -> np.ndarray | None:
        """The sorted row numbers of the linked selection (None without one)."""
        selected = selection_answer(view, lambda chosen: chosen.row_numbers())
        return None if selected is None else np.sort(np.asarray(selected, dtype=np.int64))

    def select(self, row: int) -> Any:
        """List the ``knn_k`` nearest neighbours of table row ``row`` among the sampled rows
        (in the original space) and mark those of them drawn."""
        import pandas as pd

        cfg, drawn = self.config, self.drawn
        assert drawn is not None
        projection = drawn.projection
        try:
            found, distances, note = projection.neighbours(
                self.source.client, row, k=cfg.knn_k, metric=cfg.knn_metric
            )
        except proj.ProjectionError as error:
            self.neighbour_title.object = f"**Row {row}**: {markdown_text(error)}"
            return None
        self.neighbours = pd.DataFrame(
            {"rank": np.arange(1, len(found) + 1), "row": found, "distance": distances}
        )
        self.selected = row
        self.neighbour_title.object = (
            f"**Row {row}**: its {len(found)} nearest neighbours ({cfg.knn_metric}, original "
            f"space; {note})"
        )
        self.neighbour_table.value = self.neighbours
        self.neighbour_table.visible = True
        at = np.searchsorted(projection.sample_rows, found)
        points = projection.model.transform(projection.sample[at], found)
        marks, data = self.marks, {"x": points[:, 0], "y": points[:, 1], "row": found}
        on_document(lambda: setattr(marks, "data", data))
        return self.neighbours

    def show_hovered(self, row: int) -> str:
        """Show the hovered row's values beside the raster (``hovered_text``)."""
        if row < 0:
            return ""
        text = self.hovered_text(row)
        self.hover_image.object = text
        return text

    def hovered_text(self, row: int) -> str:
        """Table row ``row`` and its values of the hover columns (label, colour, size and
        tooltip columns), as HTML whose every name and value is escaped text; the one row
        is fetched through the engine (a ``row_number()`` filter)."""
        names = self._hover_columns()
        text = f"<b>row {row}</b>"
        if not names:
            return text
        one = self.view.with_query(
            filter=Binary(op="==", left=RowNumber(), right=Lit(value=int(row))),
            sort=[], offset=0, limit=None, selected_first=False,
        ).page(0, 1, columns=names)  # fmt: skip
        if not one.num_rows:
            return text + " (not in the view)"
        for name in names:
            value = one.column(name)[0].as_py()
            shown = hover_number(value) if is_number(self.view.type, name) else label_text(value)
            text += f"<br>{html_text(name)}: {html_text(shown)}"
        return text

    def search(self, text: str) -> np.ndarray | None:
        """Mark the points whose label contains ``text`` (case-insensitive; "" clears), as the
        local card's search does: the engine finds the view's matching rows and the workers
        draw their points over the raster. Returns the sorted row numbers of the matching
        points (None without a search)."""
        column, layer, drawn = self.search_column, self.raster, self.drawn
        if column is None or layer is None or drawn is None:
            return None
        needle = text.strip().lower()
        if not needle:
            self.matches = layer.found = None
            self.search_info.object = ""
        else:
            found = self.view.with_query(filter=self.matching(column, needle)).row_numbers()
            rows, client = np.sort(np.asarray(found, dtype=np.int64)), self.source.client
            points = lost_as_projection_error(client, lambda: layer.among(rows)["row"].compute())
            self.matches = layer.found = np.sort(np.asarray(points, dtype=np.int64))
            self.search_info.object = (
                f"{format_count(len(self.matches))} of {format_count(drawn.count)} points match "
                f"{markdown_code(text.strip())} in {markdown_code(column)}"
            )
        self.redraw_raster()
        return self.matches

    def matching(self, column: str, needle: str) -> Any:
        """The view's filter and "``column``'s label contains ``needle``" (lower case): its
        text, lower-cased, contains it, or it is null and ``(null)`` contains it."""
        found: Any = Call(
            fn="contains", args=(Call(fn="lower", args=(Col(path=(column,)),)), Lit(value=needle))
        )
        if needle in NULL_LABEL:
            found = Binary(op="or", left=found, right=IsNull(operand=Col(path=(column,))))
        own = self.view.query.filter
        return found if own is None else Binary(op="and", left=own, right=found)


def hover_number(value: Any) -> str:
    """A number as the local card's hover shows it (up to 3 decimals); null as ``(null)``."""
    if value is None:
        return NULL_LABEL
    if isinstance(value, int):
        return str(value)
    number = float(value)
    return f"{number:.3f}".rstrip("0").rstrip(".") if np.isfinite(number) else str(number)


def colour_frame(
    client: Any, frame: Any, column: str, number: bool
) -> tuple[Any, Colouring, tuple[float, float]]:
    """``frame`` (points with ``column``'s values as ``colour``, persisted) with ``colour``
    made what the raster aggregates, persisted on the workers, its ``Colouring`` and the
    span of a number colouring. A category's labels are counted on the workers and factored
    as the local card does (``category_colouring``); a number's non-finite values read NaN."""
    import dask
    import pandas as pd

    if number:
        values = frame["colour"].map_partitions(finite_part, meta=("colour", "f8"))
        coloured = client.persist(frame.assign(colour=values))
        low, high = dask.compute(coloured["colour"].min(), coloured["colour"].max())
        span = (float(low), float(high)) if np.isfinite([low, high]).all() else (0.0, 1.0)
        return coloured, Colouring("number", column), span
    labels = frame["colour"].map_partitions(label_part, meta=("colour", object))
    counts = labels.value_counts().compute()
    names = [str(n) for n in counts.index]
    colouring, remap = category_colouring(column, names, counts.to_numpy())
    factor_of = {name: colouring.factors[at] for name, at in zip(names, remap, strict=True)}
    meta = pd.Series(pd.Categorical([], categories=colouring.factors), name="colour")
    factors = labels.map_partitions(factor_part, factor_of, colouring.factors, meta=meta)
    return client.persist(frame.assign(colour=factors)), colouring, (0.0, 1.0)


def label_part(values: Any) -> Any:
    """One partition's colour values as the points' labels (``label_text``; a missing value,
    None or Dask's string NA alike, ``(null)``), on a worker."""
    return values.map(label_text, na_action="ignore").astype(object).fillna(NULL_LABEL)


def factor_part(labels: Any, factor_of: dict[str, str], factors: list[str]) -> Any:
    """One partition's labels as a categorical of the colouring's ``factors`` (a label
    beyond the kept categories as ``(other)``), on a worker."""
    import pandas as pd

    return pd.Series(
        pd.Categorical(labels.map(factor_of), categories=factors), index=labels.index, name="colour"
    )


def finite_part(values: Any) -> Any:
    """One partition's colour values as floats, NaN for null and non-finite, on a worker."""
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    return numbers.where(np.isfinite(numbers))
