"""The engine's collaborators wired together, and the answers they give in this process.

``Parts`` builds the Catalog, Runner, Merger, Planner, Pager, Binner, Histograms
and Aggregates of one set of tables; ``Parts.answers`` gives the row and
aggregate answers the facade hands out (``LocalAnswers``). The facade builds
one ``Parts``; a cluster's task builds one over the single file it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from panels_core.query.engine.aggregate import Aggregates
from panels_core.query.engine.answers import Histogram, ValueCounts
from panels_core.query.engine.binning import Binner
from panels_core.query.engine.cache import LRU
from panels_core.query.engine.execute import Runner
from panels_core.query.engine.histogram import Histograms
from panels_core.query.engine.merge import Merger
from panels_core.query.engine.paging import Pager
from panels_core.query.engine.plan import Planner
from panels_core.query.engine.sources import Catalog
from panels_core.query.model import Query

__all__ = ["LocalAnswers", "Parts"]


class Parts:
    """The collaborators of an engine over ``tables``."""

    def __init__(
        self, tables: Mapping[str, Any], threads: int, cache: LRU, whole_file: bool = False
    ) -> None:
        self.cache = cache
        self.catalog = Catalog(dict(tables), threads, cache, whole_file)
        self.runner = Runner(self.catalog)
        self.merger = Merger(self.catalog)
        self.planner = Planner(self.catalog, self.runner, self.merger)
        self.pager = Pager(self.catalog, self.runner, self.planner, cache)
        self.binner = Binner(self.catalog, self.runner, cache)
        self.histograms = Histograms(self.planner, self.runner, self.binner)
        self.aggregates = Aggregates(self.planner, self.runner, self.histograms)
        self.answers = LocalAnswers(self)


class LocalAnswers:
    """Rows and aggregates computed by DuckDB in this process (see ``Engine``)."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def count(self, query: Query) -> int:
        return self.parts.pager.count(query)

    def page(
        self, query: Query, offset: int, limit: int, columns: Sequence[str] | None
    ) -> pa.Table:
        return self.parts.pager.page(query, offset, limit, columns)

    def compared(self, query: Query) -> pa.Table:
        return self.parts.pager.compared(query)

    def join_counts(self, query: Query) -> tuple[int, int, int]:
        return self.parts.pager.join_counts(query)

    def column_numpy(self, query: Query, column: str) -> np.ndarray:
        return self.parts.pager.column_numpy(query, column)

    def row_numbers(self, query: Query) -> np.ndarray:
        return self.parts.pager.row_numbers(query)

    def value_counts(self, query: Query, names: list[str], top: int) -> ValueCounts:
        return self.parts.aggregates.value_counts(query, names, top)

    def histogram(
        self,
        query: Query,
        column: str,
        bins: int | Literal["auto"],
        range: tuple[float, float] | None,
        width: float | None,
        by: str | None,
    ) -> Histogram:
        return self.parts.histograms.histogram(query, column, bins, range, width, by)

    def grouped(self, query: Query, bins: int | Literal["auto"], sample: int) -> pa.Table:
        return self.parts.aggregates.grouped(query, bins, sample)
