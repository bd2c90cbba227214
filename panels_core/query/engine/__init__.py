"""The embedded query engine: Queries run as DuckDB SQL over Arrow tables and Parquet files.

``Engine`` (``facade.py``) is the one class the rest of the code uses; behind
it each module does one job:

- ``sources``: the registered tables and the DuckDB connection (``connection``:
  set up locked down), one cursor per call;
- ``plan``: a Query as a relation (``relation``: the SQL of each stage);
- ``compare``, ``merge`` and ``pairing``: comparisons, by hash join or, for
  large key-sorted tables, by a merge of their rows;
- ``paging``: counts, pages and whole columns;
- ``histogram``, ``binning``, ``aggregate``: histograms, value counts and
  grouped tables;
- ``cache``: the kept answers; ``execute`` and ``failures``: running SQL and
  turning its failures into QueryErrors.
"""

from __future__ import annotations

from panels_core.query.bins import MAX_AUTO_BINS, MAX_BINS
from panels_core.query.engine.aggregate import GROUP_SAMPLE
from panels_core.query.engine.answers import Histogram, ValueCounts
from panels_core.query.engine.cache import CACHE_SIZE
from panels_core.query.engine.facade import Engine
from panels_core.query.engine.merge import PAIR_MIN_ROWS
from panels_core.query.engine.paging import FIRST_PAGE

__all__ = [
    "CACHE_SIZE",
    "FIRST_PAGE",
    "GROUP_SAMPLE",
    "MAX_AUTO_BINS",
    "MAX_BINS",
    "PAIR_MIN_ROWS",
    "Engine",
    "Histogram",
    "ValueCounts",
]
