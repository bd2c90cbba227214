"""Running SQL on a call's cursor: lazy views built first, failures as QueryErrors."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from panels_core.query.engine.failures import READ_ERRORS, wrap
from panels_core.query.errors import QueryError
from panels_core.query.sql import Params

if TYPE_CHECKING:
    from panels_core.query.engine.sources import Catalog

__all__ = ["RERUN", "Runner"]

RERUN = "(the statement runs again)"
"""In a statement's failure, says a lazy view it read has changed how it is built
(a comparison's merge found its keys unsorted): the statement runs once more."""


class Runner:
    """Runs statements on a call's cursor; a failure names a damaged Parquet file."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def fetch(self, cur: Any, sql: str, params: Params, what: str) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` as tuples."""
        try:
            return self.again(
                cur, sql, lambda text: cur.execute(text, params.bind(text)).fetchall()
            )
        except duckdb.Error as exc:
            raise self.error(exc, what) from None

    def arrow(
        self, cur: Any, sql: str, params: Params, what: str, batch: int = 1_000_000
    ) -> pa.Table:
        """The rows of ``sql`` as an Arrow table."""
        try:
            return self.again(
                cur,
                sql,
                lambda text: cur.sql(text, params=params.bind(text) or None).to_arrow_table(batch),
            )
        except duckdb.Error as exc:
            raise self.error(exc, what) from None

    def again(self, cur: Any, sql: str, run: Callable[[str], Any]) -> Any:
        """``run`` the statement (its lazy views ready); once more when it failed with
        ``RERUN``."""
        try:
            return run(self.ready(cur, sql))
        except duckdb.Error as exc:
            if RERUN not in str(exc):
                raise
        return run(self.ready(cur, sql))

    def ready(self, cur: Any, sql: str) -> str:
        """Register the lazy views ``sql`` reads afresh (e.g. a comparison's paired
        stream, which one scan consumes) and the statement to run: each further
        mention of such a view reads a stream of its own, under a name of its own."""
        for name, register in self.catalog.call.lazy.items():
            pieces = sql.split(name)
            for i in range(1, len(pieces)):
                own = name if i == 1 else f'{name[:-1]}_{i}"'
                register(cur, own.strip('"'))
                pieces[i] = own + pieces[i]
            sql = "".join(pieces)
        return sql

    def error(self, exc: duckdb.Error, what: str) -> QueryError:
        """The QueryError for a statement that failed: a damaged Parquet file named (the
        file, and the column and row group when pyarrow finds them), else ``wrap``.

        Only a read error is looked into: the file its message names, or, when it names
        none (a bare page-header error), every Parquet file of the engine."""
        if not (isinstance(exc, READ_ERRORS) or type(exc) is duckdb.Error):
            return wrap(exc, what)
        from panels_core.data.damage import damage_message, find_damage

        sources = self.catalog.every_source()
        paths = [f for s in sources for f in s.files]
        named = [p for p in paths if str(p) in str(exc)]
        suspects = named or ([] if isinstance(exc, duckdb.InvalidInputException) else paths)
        for path in suspects:
            if path in named or find_damage(path):
                return QueryError(f"{what}: {damage_message(path, exc)}")
        return wrap(exc, what)
