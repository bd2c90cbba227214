"""Projected points that live on a Dask cluster, and which of them lie inside a polygon.

A projection of a dataset on a cluster keeps its points in a Dask dataframe of ``row``
(the table's row number), ``x``, ``y``: no process holds them all. Registered with
``Engine.register_point_frame``, a ``RegionBrush`` over them is resolved on the workers:
each partition finds its rows inside the polygon with the engine's own test
(``SortedPoints``), and only those row numbers come back to be joined on the row number,
as for points held in this process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from panels_core.query.cluster.client import Tasks
from panels_core.query.engine.points import SortedPoints

__all__ = ["FramePoints", "rows_inside_part"]


def rows_inside_part(part: Any, polygon: np.ndarray) -> Any:
    """The row numbers of one partition's points inside ``polygon`` (on a worker), sorted."""
    import pandas as pd

    xy = part[["x", "y"]].to_numpy(dtype=np.float64)
    rows = part["row"].to_numpy(dtype=np.int64)
    inside = np.sort(SortedPoints(rows, xy).inside(polygon))
    return pd.Series(inside, dtype=np.int64, name="row")


class FramePoints:
    """A Dask dataframe of points (row, x, y) on ``client``'s cluster, as the engine's
    registered points: ``inside(polygon)`` runs on the workers; a cluster that stops
    answering is a ``ClusterError`` saying so."""

    def __init__(self, frame: Any, client: Any) -> None:
        self.frame = frame
        self.tasks = Tasks(client)

    def inside(self, polygon: Any) -> np.ndarray:
        """The sorted row numbers of the points inside ``polygon``."""
        corners = np.asarray(polygon, dtype=np.float64)
        found = self.frame.map_partitions(
            rows_inside_part, corners, meta=("row", np.int64), enforce_metadata=False
        )
        (rows,) = self.tasks.compute([found])
        return np.sort(np.asarray(rows, dtype=np.int64))
