"""Engines share the process's locked-down DuckDB connection; nothing heavy loads before
it is needed; Parquet types are inferred from a sample of only the columns that need one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panels_core.data.infer import needs_sample
from panels_core.data.table import Table
from panels_core.query.engine import Engine
from panels_core.query.errors import QueryError
from panels_core.query.model import Query


def _write(path: Path, n: int, offset: int = 0) -> Path:
    pq.write_table(pa.table({"id": np.arange(offset, offset + n), "x": np.arange(n) * 0.5}), path)
    return path


def test_engines_over_allowed_files_share_one_connection(tmp_path) -> None:
    a = _write(tmp_path / "a.parquet", 10)
    first = Engine({"a": Table.from_parquet(a)})
    second = Engine({"a": Table.from_parquet(a)})
    assert first._catalog.con is second._catalog.con
    assert first.count(Query(table="a")) == second.count(Query(table="a")) == 10
    # the same table name in both engines: each engine reads its own registration
    second.add_table("a", Table.from_parquet(_write(tmp_path / "b.parquet", 3)))
    assert first.count(Query(table="a")) == 10
    assert second.count(Query(table="a")) == 3


def test_a_new_file_gets_a_connection_that_reads_it_and_the_earlier_ones(tmp_path) -> None:
    a, b = _write(tmp_path / "a.parquet", 10), _write(tmp_path / "b.parquet", 4, 100)
    secret = _write(tmp_path / "secret.parquet", 2)
    old = Engine({"a": Table.from_parquet(a)})
    new = Engine({"b": Table.from_parquet(b)})
    assert {str(a), str(b)} <= new._catalog.files
    assert str(secret) not in new._catalog.files
    later = Engine({"a": Table.from_parquet(a), "b": Table.from_parquet(b)})
    assert later._catalog.con is new._catalog.con
    assert later.page(Query(table="b"), limit=2).column("id").to_pylist() == [100, 101]
    assert old.count(Query(table="a")) == 10  # the older engine still answers on its own
    with pytest.raises(duckdb.Error, match="disabled by configuration"):
        later._catalog.con.execute(f"SELECT * FROM read_parquet('{secret}')").fetchall()


def test_a_closed_engine_says_so_and_drops_its_views(tmp_path) -> None:
    a = _write(tmp_path / "a.parquet", 10)
    engine = Engine({"a": Table.from_parquet(a)})
    con, view = engine._catalog.con, engine._catalog.sources["a"].view
    other = Engine({"a": Table.from_parquet(a)})
    engine.close()
    with pytest.raises(QueryError, match="the engine is closed; make a new Engine"):
        engine.count(Query(table="a"))
    views = {name for (name,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    assert view not in views
    assert other.count(Query(table="a")) == 10


def test_an_engine_and_a_query_load_no_comparison_kernels(tmp_path) -> None:
    a = _write(tmp_path / "a.parquet", 1000)
    code = (
        "import sys\n"
        "from panels_core.data.table import Table\n"
        "from panels_core.query.engine import Engine\n"
        "from panels_core.query.model import Query\n"
        f"engine = Engine({{'a': Table.from_parquet({str(a)!r})}})\n"
        "print(engine.count(Query(table='a')), engine.histogram(Query(table='a'), 'x', bins=4)"
        ".counts.tolist(), 'numba' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split("\n")[0] == "1000 [250, 250, 250, 250] False"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_typing_a_parquet_file_hands_its_samples_pages_back(tmp_path) -> None:
    rows, rng = 300_000, np.random.default_rng(0)
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table(
            {
                "x": rng.normal(size=rows),
                "n": rng.integers(0, 1000, rows),
                "text": [f"item-{i}" for i in range(rows)],
                "c": np.array(["a", "b", "c"])[rng.integers(0, 3, rows)],
            }
        ),
        path,
    )
    code = (
        "import re\n"
        "from panels_core.data.table import Table\n"
        "def anon():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(re.search(r'RssAnon:\\s+(\\d+)', status).group(1)) / 1024\n"
        f"table = Table.from_parquet({str(path)!r})\n"
        "before = anon()\n"
        "kinds = sorted(type(t).__name__ for t in table.type.columns.values())\n"
        "print(kinds, anon() - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    kinds, grown = out.stdout.strip().rsplit(" ", 1)
    assert kinds == "['CategoryType', 'NumberType', 'NumberType', 'StringType']"
    # the sample's pages kept by Arrow's pool were 12 MiB of this process
    assert float(grown) < 4


def test_only_columns_whose_type_needs_values_are_sampled() -> None:
    known = 0
    assert not needs_sample(pa.field("n", pa.int64()), known)
    assert not needs_sample(pa.field("f", pa.float32()), known)
    assert not needs_sample(pa.field("t", pa.timestamp("ms")), known)
    assert not needs_sample(pa.field("e", pa.list_(pa.float32(), 8)), known)
    assert needs_sample(pa.field("s", pa.string()), known)  # category or text?
    assert needs_sample(pa.field("l", pa.list_(pa.int64())), known)
    assert needs_sample(pa.field("b", pa.binary()), known)
    assert needs_sample(pa.field("n", pa.int64()), None)  # nulls unknown: the sample says


def test_types_from_the_partial_sample_are_the_full_samples(tmp_path) -> None:
    n = 5000
    table = pa.table(
        {
            "id": np.arange(n),
            "score": pa.array(np.linspace(0, 1, n), mask=np.arange(n) % 7 == 0),
            "label": pa.array([f"c{i % 3}" for i in range(n)]),
            "text": pa.array([f"free text {i}" for i in range(n)]),
            "tags": pa.array([[i, i + 1] for i in range(n)]),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(n * 4, np.float32)), 4),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=1000)
    from_file = Table.from_parquet(path).type
    assert from_file == Table.from_arrow(table).type
    assert str(from_file.columns["label"]).startswith("category")
    overridden = Table.from_parquet(path, dtypes={"id": "category"}).type
    assert overridden.columns["id"].kind == "category"


def test_engines_made_in_many_threads_at_once_each_read_their_own_file(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    paths = [_write(tmp_path / f"f{i}.parquet", 5 + i, offset=100 * i) for i in range(8)]

    def first_ids(path: Path) -> tuple[int, list[int]]:
        engine = Engine({"t": Table.from_parquet(path)})
        query = Query(table="t", sort=["-id"])
        return engine.count(query), engine.page(query, limit=2).column("id").to_pylist()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(first_ids, paths))
    assert answers == [(5 + i, [100 * i + 4 + i, 100 * i + 3 + i]) for i in range(8)]
