"""The engine on a Dask cluster: the same answers, computed where the Parquet files are.

``Engine(tables, cluster=client)`` hands its row and aggregate answers to
``ClusterAnswers`` (``answers``): one Dask task per file of a Parquet table
runs the engine's own SQL with DuckDB on that file (``tasks``), and the client
combines the partial answers (``combine``). ``client`` opens a cluster
(``tcp://host:port`` or ``local:N``) and turns one that stops answering into a
``ClusterError``. See ``docs/scale-out.md``.
"""

from __future__ import annotations

from panels_core.query.cluster.answers import ClusterAnswers
from panels_core.query.cluster.client import (
    RETRIES,
    ClusterError,
    close_cluster,
    local_cluster,
    open_cluster,
)

__all__ = [
    "RETRIES",
    "ClusterAnswers",
    "ClusterError",
    "close_cluster",
    "local_cluster",
    "open_cluster",
]
