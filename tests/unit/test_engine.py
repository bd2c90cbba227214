"""Engine: filters (every operator and function), sort, paging, errors, safety, Parquet, threads."""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from panels_core.data.table import Table
from panels_core.query.engine import Engine
from panels_core.query.errors import QueryError, UnknownColumnError
from panels_core.query.expr import Binary, Call, Col, Item, ListPred, Lit
from panels_core.query.model import Query


def small() -> pa.Table:
    """Six rows; the expected answers below are worked out by hand from these."""
    return pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "score": [0.5, None, 2.0, 1.0, 0.5, -3.0],
            "n": [4, 0, 2, 3, 0, 7],
            "label": ["cat", "dog", "cat", None, "Bird", "dog"],
            "text": ["a cat", "the dog!", "cat's toy", "", "bird song", "dog"],
            "tags": [["x", "y"], [], ["y"], None, ["z"], ["x"]],
            "boxes": [
                [{"class_id": 13, "score": 0.9}],
                [],
                [{"class_id": 2, "score": 0.3}, {"class_id": 13, "score": 0.8}],
                None,
                [{"class_id": 2, "score": 0.95}],
                [{"class_id": 13, "score": 0.1}, {"class_id": 13, "score": 0.7}],
            ],
            "pred": [
                {"label": "cat", "p": 0.9},
                {"label": "cat", "p": 0.4},
                {"label": "cat", "p": 0.8},
                {"label": "dog", "p": 0.6},
                {"label": "dog", "p": 0.2},
                None,
            ],
            "probs": pa.array(
                [
                    [("cat", 0.9)],
                    [("dog", 0.6)],
                    [("cat", 0.8)],
                    [],
                    [("cat", 0.1)],
                    [("dog", 0.7)],
                ],
                type=pa.map_(pa.string(), pa.float64()),
            ),
        }
    )


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine({"t": small()})


def ids(engine: Engine, filter: object, **query: object) -> list[int]:
    page = engine.page(Query(table="t", filter=filter, **query), limit=100)
    return page.column("id").to_pylist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("score > 0.5", [3, 4]),
        ("score >= 0.5", [1, 3, 4, 5]),
        ("score < 0.5", [6]),
        ("score <= 0.5", [1, 5, 6]),
        ("score == 0.5", [1, 5]),
        ("score != 0.5", [3, 4, 6]),
        ("label == 'cat'", [1, 3]),
        ("label != 'cat'", [2, 5, 6]),
        ("score > 0 and label == 'cat'", [1, 3]),
        ("score > 1 or label == 'dog'", [2, 3, 6]),
        ("not (label == 'cat')", [2, 5, 6]),
        ("score + n > 4", [1]),
        ("score - n < -5", [6]),
        ("score * n >= 3", [3, 4]),
        ("n / score == 8", [1]),
        ("n % 2 == 1", [4, 6]),
        ("-score > 1", [6]),
        ("label in ('cat', 'Bird')", [1, 3, 5]),
        ("not (label in ('cat', 'Bird'))", [2, 6]),
        ("score is null", [2]),
        ("label is not null and score is not null", [1, 3, 5, 6]),
        ("label == null", [4]),
        ("len(label) == 4", [5]),
        ("len(tags) == 0", [2]),
        ("len(tags) >= 1", [1, 3, 5, 6]),
        ("abs(score) > 2", [6]),
        ("lower(label) == 'bird'", [5]),
        ("upper(label) == 'DOG'", [2, 6]),
        ("contains(text, 'cat')", [1, 3]),
        ("contains(tags, 'x')", [1, 6]),
        ("startswith(text, 'the')", [2]),
        ("endswith(text, 'g')", [5, 6]),
        ("matches(text, '^[a-c]')", [1, 3, 5]),
        ("matches(label, 'o')", [2, 6]),
        ("any(boxes, class_id == 13)", [1, 3, 6]),
        ("all(boxes, class_id == 13)", [1, 2, 4, 6]),  # no boxes: vacuously true
        ("count(boxes, class_id == 13) >= 2", [6]),
        ("count(boxes, class_id == 13 and score > 0.5) == 1", [1, 3, 6]),
        ("count(boxes) == 1", [1, 5]),
        ("any(boxes, score > 0.9)", [5]),
        ("any(tags, _ == 'y')", [1, 3]),
        ("pred.label == 'cat'", [1, 2, 3]),
        ("pred.p > 0.5 and pred.label == 'dog'", [4]),
        ("probs.cat > 0.5", [1, 3]),
        ("probs.dog is not null", [2, 6]),
    ],
)
def test_filter_operators_and_functions(engine: Engine, text: str, expected: list[int]) -> None:
    assert ids(engine, text) == expected


def test_mongo_json_filters_give_the_same_rows(engine: Engine) -> None:
    assert ids(engine, {"$gt": ["$score", 0.5]}) == [3, 4]
    assert ids(engine, {"$and": [{"$eq": ["$label", "cat"]}, {"$gte": ["$score", 1]}]}) == [3]
    assert ids(engine, {"$in": ["$label", ["dog", "Bird"]]}) == [2, 5, 6]


def test_ast_built_directly(engine: Engine) -> None:
    expr = ListPred(
        fn="count",
        list=Col(path=("boxes",)),
        predicate=Binary(op="==", left=Item(path=("class_id",)), right=Lit(value=2)),
    )
    assert ids(engine, Binary(op=">=", left=expr, right=Lit(value=1))) == [3, 5]
    call = Call(fn="startswith", args=(Col(path=("label",)), Lit(value="d")))
    assert ids(engine, call) == [2, 6]


def test_division_by_zero_is_null_not_an_error(engine: Engine) -> None:
    # n is 0 in rows 2 and 5: score / n is null there (never infinity, never an error)
    assert ids(engine, "score / n is null") == [2, 5]
    assert ids(engine, "score % n is null") == [2, 5]
    assert ids(engine, "score / n > 0") == [1, 3, 4]


def test_invalid_regex_names_the_pattern(engine: Engine) -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        Query(table="t", filter="matches(text, '((x')")  # the parser checks a literal pattern
    # a pattern the checker lets through but DuckDB's RE2 refuses is caught by the engine
    with pytest.raises(QueryError, match=r"invalid regular expression 'a\{1001\}': invalid rep"):
        engine.count(Query(table="t", filter="matches(text, 'a{1001}')"))


def test_sort_is_stable_with_nulls_last(engine: Engine) -> None:
    # score ties: 0.5 at ids 1 and 5 keep their row order both ways; null (id 2) stays last
    assert ids(engine, None, sort=["score"]) == [6, 1, 5, 4, 3, 2]
    assert ids(engine, None, sort=["-score"]) == [3, 4, 1, 5, 6, 2]
    assert ids(engine, None, sort=["label", "-id"]) == [5, 3, 1, 6, 2, 4]
    assert ids(engine, None, sort=["pred.p"]) == [5, 2, 4, 3, 1, 6]


def test_offset_limit_and_pages_within_them(engine: Engine) -> None:
    query = Query(table="t", sort=["id"], offset=1, limit=3)
    assert engine.count(query) == 3
    assert engine.page(query).column("id").to_pylist() == [2, 3, 4]
    assert engine.page(query, offset=1, limit=5).column("id").to_pylist() == [3, 4]
    assert engine.page(query, offset=3).num_rows == 0
    assert engine.count(Query(table="t", offset=5)) == 1
    assert engine.page(Query(table="t"), offset=4, limit=1).column("id").to_pylist() == [5]


def test_page_columns_and_projection(engine: Engine) -> None:
    page = engine.page(Query(table="t", filter="id <= 2"), columns=["label", "pred.p"])
    assert page.column_names == ["label", "pred.p"]
    assert page.to_pylist() == [{"label": "cat", "pred.p": 0.9}, {"label": "dog", "pred.p": 0.4}]
    with pytest.raises(UnknownColumnError, match="did you mean `label`"):
        engine.page(Query(table="t"), columns=["lable"])


def test_unknown_columns_are_query_errors_never_duckdb_errors(engine: Engine) -> None:
    cases = [
        lambda: engine.count(Query(table="t", filter="scroe > 1")),
        lambda: engine.count(Query(table="t", filter="pred.lable == 'x'")),
        lambda: engine.count(Query(table="t", sort=["nope"])),
        lambda: engine.histogram(Query(table="t"), "nope"),
        lambda: engine.value_counts(Query(table="t"), "nope"),
        lambda: engine.column_numpy(Query(table="t"), "nope"),
        lambda: engine.count(Query(table="nope")),
        lambda: engine.count(Query(table="t", filter="label > 3")),
    ]
    for case in cases:
        with pytest.raises(QueryError) as info:
            case()
        assert not isinstance(info.value, duckdb.Error)
        assert "__tp_" not in str(info.value)
    with pytest.raises(QueryError, match="did you mean `score`"):
        engine.count(Query(table="t", filter="scroe > 1"))
    with pytest.raises(QueryError, match="unknown table `nope`"):
        engine.count(Query(table="nope"))


def test_injection_literal_finds_nothing_and_harms_nothing(engine: Engine) -> None:
    attack = "x'); drop table t; --"
    assert ids(engine, f'label == "{attack}"') == []
    assert ids(engine, Binary(op="==", left=Col(path=("label",)), right=Lit(value=attack))) == []
    assert ids(engine, {"$eq": ["$label", 'x"; DROP VIEW t; --']}) == []
    assert engine.count(Query(table="t")) == 6
    assert engine.page(Query(table="t"), limit=1).column("id").to_pylist() == [1]


def test_quoted_identifiers_with_odd_names() -> None:
    odd = pa.table({'we"ird name': [1, 2, 3], "ok": ["a", "b", "c"]})
    engine = Engine({"t": odd})
    assert engine.page(Query(table="t", filter='`we"ird name` >= 2')).column("ok").to_pylist() == [
        "b",
        "c",
    ]
    assert engine.page(Query(table="t", sort=['-we"ird name'])).column("ok").to_pylist() == [
        "c",
        "b",
        "a",
    ]


def test_reserved_column_prefix_is_refused() -> None:
    with pytest.raises(QueryError, match="__tp_row"):
        Engine({"t": pa.table({"__tp_row": [1]})})


def test_accepts_table_arrow_and_pandas() -> None:
    arrow = small().select(["id", "score", "label"])
    for source in (arrow, Table.from_arrow(arrow), arrow.to_pandas()):
        engine = Engine({"t": source})
        assert engine.table_names() == ["t"]
        assert ids(engine, "score >= 1") == [3, 4]


def test_table_that_grows_is_seen_again() -> None:
    table = Table(columns=["a"], data=[[1], [2]])
    engine = Engine({"t": table})
    assert engine.count(Query(table="t")) == 2
    table.add_data(3)
    assert engine.count(Query(table="t", filter="a > 1")) == 2


def test_parquet_backed_table_gives_the_same_answers(tmp_path) -> None:
    arrow = small()
    path = tmp_path / "small.parquet"
    pq.write_table(arrow, path, row_group_size=2)
    memory, disk = Engine({"t": arrow}), Engine({"t": Table.from_parquet(path)})
    queries = [
        Query(table="t", filter="score > 0 and count(boxes, class_id == 13) >= 1"),
        Query(table="t", sort=["-score"]),
        Query(table="t", filter="probs.cat > 0.5 or pred.label == 'dog'", sort=["label"]),
        Query(table="t", filter="pred.p < 0.5", sort=["-pred.p"]),
        Query(table="t", offset=2, limit=3),
        Query(table="t", group_by=["label"], sort=["-count", "label"]),
    ]
    for query in queries:
        assert memory.page(query, limit=100).equals(disk.page(query, limit=100)), query
        assert memory.count(query) == disk.count(query)
    plain = Query(table="t")
    assert memory.value_counts(plain, "label").values == disk.value_counts(plain, "label").values
    np.testing.assert_array_equal(
        memory.histogram(plain, "score", bins=4).counts,
        disk.histogram(plain, "score", bins=4).counts,
    )
    np.testing.assert_array_equal(memory.column_numpy(plain, "n"), disk.column_numpy(plain, "n"))


def test_parquet_filters_push_down_into_the_scan(tmp_path) -> None:
    path = tmp_path / "wide.parquet"
    pq.write_table(
        pa.table({"a": np.arange(1000), "b": np.arange(1000) * 2.0, "c": ["s"] * 1000}), path
    )
    engine = Engine({"t": Table.from_parquet(path)})
    params_sql: list[str] = []
    with engine._catalog.cursor() as cur:
        from panels_core.query.engine.relation import select_rows
        from panels_core.query.sql import Params

        params = Params()
        rel = engine._planner.plan(Query(table="t", filter="a > 990"), params, cur)
        sql = select_rows(rel, Query(table="t"), params, '"a"')
        plan = cur.execute("EXPLAIN " + sql, params.bind(sql)).fetchall()[0][1]
        params_sql.append(plan)
    scan = params_sql[0]
    assert "Filters" in scan and "a>990" in scan.replace(" ", "")
    assert '"b"' not in scan and "\nb" not in scan.split("Projections:")[1].split("Filters")[0]
    assert engine.page(Query(table="t", filter="a > 997")).column("b").to_pylist() == [
        1996.0,
        1998.0,
    ]


def test_every_cursor_reads_parquet_without_prefetching_whole_column_chunks() -> None:
    """The switch is global: a per-connection SET would leave the call cursors prefetching
    (a sorted page of a 10M-row file then took 236 MiB, not 45)."""
    engine = Engine({"t": pa.table({"a": [1]})})
    known = engine._catalog.con.execute(
        "SELECT count(*) FROM duckdb_settings() WHERE name = 'disable_parquet_prefetching'"
    ).fetchone()[0]
    if not known:
        pytest.skip("this DuckDB has no prefetch switch (it reads as it needs)")
    with engine._catalog.cursor() as cur:
        setting = "SELECT current_setting('disable_parquet_prefetching')"
        assert cur.execute(setting).fetchone()[0] is True


def test_image_columns_filter_on_boxes_without_decoding() -> None:
    from panels_core.data.media import Image

    classes = [{"id": 13, "name": "cat"}, {"id": 2, "name": "dog"}]
    images = [
        Image(
            np.zeros((4, 4)),
            boxes={
                "ground_truth": [
                    {
                        "position": {"minX": 0.1, "maxX": 0.5, "minY": 0.1, "maxY": 0.5},
                        "class_id": c,
                    }
                    for c in cs
                ]
            },
            classes=classes,
        )
        for cs in ([13], [2, 2], [], [13, 2])
    ]
    table = Table(columns=["id", "image"], data=[[i, im] for i, im in enumerate(images)])
    engine = Engine({"t": table})
    query = Query(table="t", filter="count(image.boxes.ground_truth, class_id == 13) >= 1")
    page = engine.page(query)
    assert page.column("id").to_pylist() == [0, 3]
    # the image field keeps its metadata, so the page is still typed as images
    assert page.schema.field("image").metadata[b"typed_panels.kind"] == b"image"
    assert engine.count(Query(table="t", filter="len(image.boxes.ground_truth) == 2")) == 2
    assert engine.count(Query(table="t", filter="image.width == 4")) == 4


def test_concurrent_calls_from_threads() -> None:
    rng = np.random.default_rng(1)
    arrow = pa.table({"x": rng.normal(size=20_000), "k": rng.integers(0, 5, 20_000)})
    engine = Engine({"t": arrow})
    expected = {k: int((arrow.column("k").to_numpy() == k).sum()) for k in range(5)}
    errors: list[BaseException] = []
    results: dict[int, list[int]] = {k: [] for k in range(5)}

    def work(k: int) -> None:
        try:
            for _ in range(10):
                results[k].append(engine.count(Query(table="t", filter=f"k == {k}")))
                engine.histogram(Query(table="t", filter=f"k == {k}"), "x", bins=10)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == {k: [expected[k]] * 10 for k in range(5)}


def test_group_by_a_nested_field(engine: Engine) -> None:
    from panels_core.types import OptionalType

    query = Query(table="t", group_by=["pred.label"], sort=["pred.label"])
    assert isinstance(engine.result_type(query).columns["pred.label"], OptionalType)
    assert engine.page(query, columns=["pred.label", "count", "id"]).to_pylist() == [
        {"pred.label": "cat", "count": 3, "id": [1, 2, 3]},
        {"pred.label": "dog", "count": 2, "id": [4, 5]},
        {"pred.label": None, "count": 1, "id": [6]},
    ]
    hist = engine.histogram(query, "score", bins=2)
    assert hist.groups == ["cat", "dog", "null"]
    assert hist.counts.tolist() == [[0, 2], [0, 2], [1, 0]]


def test_timestamps_compare_with_iso_text() -> None:
    import datetime as dt

    stamps = [dt.datetime(2024, 1, d) for d in (1, 15, 31)]
    engine = Engine({"t": pa.table({"id": [1, 2, 3], "ts": pa.array(stamps, pa.timestamp("us"))})})
    assert ids(engine, 'ts > "2024-01-10"') == [2, 3]
    assert ids(engine, 'ts == "2024-01-15T00:00:00"') == [2]
    assert ids(engine, 'ts in ("2024-01-01", "2024-01-31")') == [1, 3]
    assert engine.page(Query(table="t", sort=["-ts"]), columns=["id"]).column("id").to_pylist() == [
        3,
        2,
        1,
    ]


def test_replacing_a_table(tmp_path) -> None:
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)
    engine = Engine({"t": Table.from_parquet(path)})
    assert engine.count(Query(table="t")) == 3
    engine.add_table("t", pa.table({"a": [5]}))
    assert engine.page(Query(table="t")).column("a").to_pylist() == [5]
    left = Table.from_arrow(pa.table({"id": [1, 2], "x": [0.5, 1.5]}))
    right = Table.from_arrow(pa.table({"id": [2, 3], "y": ["b", "c"]}))
    from panels_core.data.table import JoinedTable

    engine.add_table("j", JoinedTable(left, right, "id"))
    engine.add_table("j", JoinedTable(left, right, "id", names=("l", "r")))
    assert engine.page(Query(table="j")).to_pylist() == [
        {"l": {"id": 2, "x": 1.5}, "r": {"id": 2, "y": "b"}}
    ]
    assert len(engine._catalog.hidden) == 2  # the first join's sides are gone
    engine.close()


def test_engine_table_returns_the_registered_object():
    from panels_core.data.table import Table
    from panels_core.query.engine import Engine
    from panels_core.query.errors import QueryError

    table = Table(columns=["a"], data=[[1], [2]])
    engine = Engine({"t": table})
    assert engine.table("t") is table
    with pytest.raises(QueryError):
        engine.table("nope")


def test_sorted_page_keeps_the_filter_and_sort_columns_of_its_first_pass(tmp_path) -> None:
    # a sorted page reads positions with the filter and sort columns it shows, then only
    # the other columns; a page whose positions were kept reads every column again:
    # the rows are the same either way, and the same as pandas'
    rng = np.random.default_rng(4)
    n = 4000
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "x": rng.normal(0, 1, n),
            "y": np.where(rng.random(n) < 0.05, np.nan, rng.uniform(0, 10, n)),
            "cat": rng.choice(["a", "b", "c"], n),
            "text": [f"t{i}" for i in range(n)],
        }
    )
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    arrow = arrow.set_column(2, "y", pa.array(frame["y"], from_pandas=True))
    path = tmp_path / "page.parquet"
    pq.write_table(arrow, path, row_group_size=500)
    kept = frame[(frame["x"] > 0.2) & (frame["cat"] == "b")]
    expected = kept.sort_values("y", ascending=False, na_position="last", kind="stable")
    query = Query(table="t", filter="x > 0.2 and cat == 'b'", sort=["-y"])
    for engine in (Engine({"t": Table.from_parquet(path)}), Engine({"t": arrow})):
        for columns in (None, ["text", "y", "id"], ["y", "x"], ["cat", "y", "cat"]):
            for _ in range(2):  # the second time the positions come from the cache
                page = engine.page(query, offset=30, limit=25, columns=columns)
                names = list(frame.columns) if columns is None else columns
                assert page.column_names == names
                want = expected.iloc[30:55]
                for i, name in enumerate(names):
                    got = page.column(i).to_pylist()
                    assert got == [None if v != v else v for v in want[name].tolist()], name


# --------------------------------------------------------------------------- NaN in comparisons

NAN_VALUES = [0.1, float("nan"), 0.9, None]
NAN_OPS = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


@pytest.fixture(params=["arrow", "parquet"])
def nan_engine(request: pytest.FixtureRequest, tmp_path) -> Engine:
    arrow = pa.table({"id": [0, 1, 2, 3], "x": pa.array(NAN_VALUES, pa.float64())})
    if request.param == "arrow":
        return Engine({"t": arrow})
    pq.write_table(arrow, tmp_path / "nan.parquet")
    return Engine({"t": Table.from_parquet(tmp_path / "nan.parquet")})


@pytest.mark.parametrize("op", list(NAN_OPS))
def test_nan_compares_as_numpy_does(nan_engine: Engine, op: str) -> None:
    """Every comparison with NaN is false except `!=`; a null row is never kept."""
    x = np.array([np.nan if v is None else v for v in NAN_VALUES])
    for value in (0.5, 0.1):
        answer = NAN_OPS[op](x, value)
        kept = [i for i, v in enumerate(NAN_VALUES) if v is not None and answer[i]]
        assert ids_of(nan_engine, f"x {op} {value}") == kept
        # the negation keeps NaN where numpy's answer is false (pandas: ~(s > 0.5) is
        # True for NaN); a null stays out of both
        negated = [i for i, v in enumerate(NAN_VALUES) if v is not None and not answer[i]]
        assert ids_of(nan_engine, f"not (x {op} {value})") == negated


def test_nan_against_a_float_column_and_sort_order(nan_engine: Engine) -> None:
    assert ids_of(nan_engine, "x == x") == [0, 2]  # NaN == NaN is false
    assert ids_of(nan_engine, "x != x") == [1]
    assert ids_of(nan_engine, "x * 2 > 1") == [2]
    page = nan_engine.page(Query(table="t", sort=["x"]), limit=10)
    assert page.column("id").to_pylist() == [0, 2, 1, 3]  # sort order: NaN after numbers, null last


def ids_of(engine: Engine, text: str) -> list[int]:
    return engine.page(Query(table="t", filter=text), limit=10).column("id").to_pylist()


@pytest.mark.parametrize("source", ["parquet", "arrow"])
def test_nan_compares_false_in_a_parquet_file_whose_statistics_are_finite(
    tmp_path, source: str
) -> None:
    """Parquet statistics leave NaN out, so the file's min/max are finite; DuckDB must not
    take that to mean no row is NaN (it folded ``isnan`` to false and NaN passed x > 0.5)."""
    score = np.array([0.1, 0.7, np.nan, 0.9, np.nan, 0.2])  # no inf: min and max finite
    data = pa.table({"score": score, "k": np.arange(len(score))})
    path = tmp_path / "scores.parquet"
    pq.write_table(data, path)
    table = Table.from_parquet(path) if source == "parquet" else data
    engine = Engine({"t": table})
    with np.errstate(invalid="ignore"):
        for text, expected in [
            ("score > 0.5", score > 0.5),
            ("score <= 0.5", score <= 0.5),
            ("score == 0.7", score == 0.7),
            ("score != 0.7", score != 0.7),
        ]:
            query = Query(table="t", filter=text)
            assert engine.count(query) == int(expected.sum()), text
            kept = engine.page(query, 0, 20, ["k"]).column("k").to_pylist()
            assert kept == np.flatnonzero(expected).tolist(), text
