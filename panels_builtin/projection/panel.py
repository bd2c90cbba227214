"""``Projection2D``: the panel class (the registry's ``projection`` kind) and its render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from panels_builtin.captions import EMPTY_VIEW, message
from panels_builtin.columns import looks_like_id
from panels_builtin.projection.config import ProjectionConfig
from panels_builtin.projection.inputs import Inputs, fetch_inputs
from panels_builtin.projection.on_cluster import ClusterInput, ClusterPlot, on_cluster
from panels_builtin.projection.plot import ProjectionPlot
from panels_builtin.projection.raster import warm_up_raster
from panels_builtin.projection.session import must_wait
from panels_core import projection as proj
from panels_core.escape import markdown_text
from panels_core.panel import Panel, WarmUp, columns_of
from panels_core.query.errors import QueryError
from panels_core.types import EmbeddingType, NumberType, TableType, strip_optional

__all__ = ["Projection2D"]


def _cached(inputs: Inputs, spec: proj.ProjectionSpec) -> proj.ProjectionResult | None:
    """The cached result for these rows and spec, or None (never computes)."""

    class _Miss(Exception):
        pass

    def miss() -> Any:
        raise _Miss

    try:
        return proj.project_cached(miss, spec, inputs.key)
    except _Miss:
        return None


class Projection2D(Panel[ProjectionConfig]):
    """PCA, UMAP or t-SNE of an embedding column (or numeric columns) as an interactive scatter."""

    kind = "projection"
    can_select = True
    title = "2D Projection"
    description = (
        "Embeddings or numeric columns projected to 2D (PCA, UMAP, t-SNE): colour, hover "
        "images, nearest neighbours, search."
    )

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        """After the table on a new workspace when the table has an embedding column or
        five or more numeric columns."""
        if not isinstance(table_type, TableType):
            return None
        numbers = 0
        for t in table_type.columns.values():
            inner = strip_optional(t)
            if isinstance(inner, EmbeddingType):
                return 1
            numbers += isinstance(inner, NumberType)
        return 1 if numbers >= 5 else None

    @classmethod
    def warm_up(cls) -> WarmUp | None:
        """UMAP's kernels compile early: in the projection worker process (started
        here) or, without one, on the server's low-priority warm-up thread, which also
        compiles the raster's datashader kernels (``warm_up_raster``)."""
        projector = proj.shared_projector()
        if hasattr(projector, "wait_until_warm"):  # a worker process: it compiles them there
            projector.start()
            return WarmUp("raster", warm_up_raster)

        def both() -> None:
            warm_up_raster()
            proj.warm_up()

        # the first UMAP (or raster) compiles instead if this fails, and shows any error
        return WarmUp("UMAP", both)

    @classmethod
    def default_config(cls, view_type: Any) -> ProjectionConfig:
        """The slots' defaults, without integer columns named like row ids among the inputs."""
        config = super().default_config(view_type)
        columns = columns_of(view_type)
        chosen = [c for c in config.columns if not looks_like_id(c, columns[c])]
        if chosen == list(config.columns) or len(chosen) < 2:
            return config
        return cls.validate_config({**config.model_dump(), "columns": chosen}, view_type)

    def render(self, view: Any) -> Any:
        """A ``ProjectionPlot`` (or an Alert when the view has nothing to project); a
        ``ClusterPlot`` when the view's dataset is projected on its engine's cluster."""
        try:
            source = on_cluster(view, self.config)
            rows = view.count() if source is not None else None
            inputs = fetch_inputs(view, self.config) if source is None else None
        except QueryError as exc:
            return message(markdown_text(exc), "danger")
        if source is not None:
            return self.render_on_cluster(view, source) if rows else message(EMPTY_VIEW, "info")
        assert inputs is not None
        if inputs.n == 0:
            return message(EMPTY_VIEW, "info")
        spec = self.config.spec(embedding=inputs.embedding)
        plot = ProjectionPlot(self.config, view, inputs)
        result = _cached(inputs, spec)
        if result is not None:
            plot.show(result)
        elif must_wait():
            try:
                plot.show(proj.project_cached(inputs.values, spec, inputs.key))
            except proj.ProjectionError as exc:
                plot.fail(str(exc))
        else:
            plot.run_in_background(spec)
        return plot

    def render_on_cluster(self, view: Any, source: ClusterInput) -> Any:
        """A ``ClusterPlot``: computed before returning without a server, else in the
        background while the card shows its progress."""
        spec = self.config.spec(embedding=source.embedding)
        plot = ClusterPlot(self.config, view, source)
        if not must_wait():
            plot.run_in_background(spec)
            return plot
        try:
            plot.show(plot.compute(spec))
        except (proj.ProjectionError, QueryError) as exc:
            plot.fail(str(exc))
        return plot

    def follow_selection(self, shown: Any, view: Any) -> Callable[[], None] | None:
        """The plot ``render`` returned redraws only its highlight (it keeps the user's
        zoom and drawn shape): ``ProjectionPlot.follow_selection``, which changes its
        Bokeh models on the event loop itself."""
        follow = getattr(shown, "follow_selection", None)
        if not callable(follow):
            return None  # an alert shown instead of a plot: render again
        follow(view)
        return _nothing_left


def _nothing_left() -> None:
    """What the projection's follow leaves for the card to do on the event loop."""
