"""The engine's DuckDB is locked down: only its tables' files, no extensions on demand,
no setting changed after set-up.

The statements run on the engine's own connection (``engine._catalog.con``) and on a cursor
of it, as a statement smuggled into a query would.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from panels_core.data.table import JoinedTable, Table
from panels_core.query.engine import Engine
from panels_core.query.model import Query


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """a.parquet and b.parquet (registered), secret.parquet and secret.csv (never registered)."""
    frame = pd.DataFrame({"id": np.arange(10), "score": np.linspace(0, 1, 10)})
    out = {name: tmp_path / f"{name}.parquet" for name in ("a", "b", "secret")}
    for path in out.values():
        frame.to_parquet(path)
    out["csv"] = tmp_path / "secret.csv"
    frame.to_csv(out["csv"], index=False)
    return out


@pytest.fixture
def engine(files) -> Engine:
    engine = Engine({"a": Table.from_parquet(files["a"]), "frame": pd.DataFrame({"x": [1, 2]})})
    yield engine
    engine.close()


def refused(engine: Engine, sql: str) -> str:
    """The error ``sql`` gets on the engine's connection and on a cursor of it (the same)."""
    messages = []
    for con in (engine._catalog.con, engine._catalog.con.cursor()):
        with pytest.raises(duckdb.Error) as info:
            con.execute(sql).fetchall()
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    return messages[0]


def test_no_file_but_the_tables_own_is_read(engine, files, tmp_path) -> None:
    assert engine.count(Query(table="a")) == 10
    assert engine.count(Query(table="frame")) == 2
    why = refused(engine, "SELECT * FROM read_csv('/etc/passwd', sep=':')")
    assert 'Cannot access file "/etc/passwd"' in why and "disabled by configuration" in why
    for sql in (
        f"SELECT * FROM read_parquet('{files['secret']}')",
        f"SELECT * FROM '{files['secret']}'",
        f"SELECT * FROM read_csv('{files['csv']}')",
        f"SELECT * FROM read_text('{files['csv']}')",
        f"SELECT * FROM glob('{tmp_path}/*')",
        f"ATTACH '{tmp_path / 'db.duckdb'}'",
    ):
        assert "disabled by configuration" in refused(engine, sql), sql
    assert engine._catalog.con.execute(
        f"SELECT count(*) FROM read_parquet('{files['a']}')"
    ).fetchone() == (10,)


def test_nothing_is_written(engine, tmp_path) -> None:
    target = tmp_path / "out.csv"
    assert "disabled by configuration" in refused(engine, f"COPY (SELECT 1) TO '{target}'")
    assert not target.exists()


def test_extensions_are_neither_installed_nor_loaded(engine) -> None:
    assert "Permission Error" in refused(engine, "INSTALL httpfs")
    assert "Loading external extensions is disabled" in refused(engine, "LOAD httpfs")
    settings = dict(
        engine._catalog.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoinstall_known_extensions', 'autoload_known_extensions', "
            "'enable_external_access', 'lock_configuration')"
        ).fetchall()
    )
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "enable_external_access": "false",
        "lock_configuration": "true",
    }


def test_no_setting_changes_after_set_up(engine) -> None:
    for sql in (
        "SET threads = 1",
        "SET enable_external_access = true",
        "SET GLOBAL allowed_paths = ['/etc/passwd']",
        "SET autoinstall_known_extensions = true",
        "RESET lock_configuration",
    ):
        assert "the configuration has been locked" in refused(engine, sql), sql


def test_a_table_added_later_is_read_and_the_rest_still_locked(engine, files) -> None:
    engine.add_table("b", Table.from_parquet(files["b"]))
    engine.add_table("ab", JoinedTable(engine.table("a"), engine.table("b"), on="id"))
    assert engine.count(Query(table="b")) == 10
    assert engine.count(Query(table="a")) == 10
    assert engine.count(Query(table="ab")) == 10
    engine.add_table("a", Table.from_parquet(files["a"]))  # replaced: still read
    assert engine.count(Query(table="a")) == 10
    assert "disabled by configuration" in refused(
        engine, f"SELECT * FROM read_parquet('{files['secret']}')"
    )
    assert "the configuration has been locked" in refused(engine, "SET threads = 1")
