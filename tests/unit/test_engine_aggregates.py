"""Engine aggregates: histogram vs numpy, value counts vs pandas, column_numpy, grouping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from panels_core.data.table import Table
from panels_core.query.engine import GROUP_SAMPLE, MAX_AUTO_BINS, Engine
from panels_core.query.errors import QueryError
from panels_core.query.model import Query
from panels_core.types import ListType, NumberType, OptionalType


@pytest.fixture(scope="module")
def data() -> pa.Table:
    rng = np.random.default_rng(42)
    n = 5000
    x = rng.normal(10, 3, n)
    x[::97] = np.nan
    x[5::211] = np.inf
    x[7::331] = -np.inf
    x_mask = np.zeros(n, dtype=bool)
    x_mask[3::50] = True
    return pa.table(
        {
            "id": np.arange(n),
            "x": pa.array(x, mask=x_mask),
            "k": rng.integers(-5, 20, n),
            "label": pa.array(
                rng.choice(["cat", "dog", "bird", "fish"], n, p=[0.4, 0.3, 0.2, 0.1])
            ),
            "pred": pa.array(rng.choice(["cat", "dog", "bird"], n)),
        }
    )


@pytest.fixture(scope="module")
def engine(data: pa.Table) -> Engine:
    return Engine({"t": data})


def finite_x(data: pa.Table) -> np.ndarray:
    x = data.column("x").to_numpy(zero_copy_only=False)
    return x[np.isfinite(x)]


@pytest.mark.parametrize("bins", [1, 7, 50, 200])
def test_histogram_matches_numpy(engine: Engine, data: pa.Table, bins: int) -> None:
    hist = engine.histogram(Query(table="t"), "x", bins=bins)
    counts, edges = np.histogram(finite_x(data), bins=bins)
    np.testing.assert_array_equal(hist.counts, counts)
    np.testing.assert_array_equal(hist.edges, edges)
    assert hist.groups is None
    assert hist.nulls == 100  # every 50th row is null
    x = data.column("x").to_numpy(zero_copy_only=False)
    assert hist.nonfinite == int((~np.isfinite(x)).sum()) - 100


def test_histogram_integers_edges_on_values(engine: Engine, data: pa.Table) -> None:
    # integer data with edges exactly on values: numpy's edge correction decides the bin
    k = data.column("k").to_numpy()
    for bins in (5, 24, 25, 3):
        counts, edges = np.histogram(k, bins=bins)
        hist = engine.histogram(Query(table="t"), "k", bins=bins)
        np.testing.assert_array_equal(hist.counts, counts)
        np.testing.assert_array_equal(hist.edges, edges)


def test_histogram_range_width_and_filter(engine: Engine, data: pa.Table) -> None:
    x = finite_x(data)
    hist = engine.histogram(Query(table="t"), "x", bins=10, range=(5, 15))
    counts, _ = np.histogram(x, bins=10, range=(5, 15))
    np.testing.assert_array_equal(hist.counts, counts)
    assert hist.outside == int(((x < 5) | (x > 15)).sum())
    hist = engine.histogram(Query(table="t"), "x", width=2.5, range=(0, 20))
    np.testing.assert_array_equal(hist.edges, np.arange(9) * 2.5)
    np.testing.assert_array_equal(hist.counts, np.histogram(x, bins=np.arange(9) * 2.5)[0])
    filtered = engine.histogram(Query(table="t", filter="label == 'cat'"), "x", bins=8)
    labels = data.column("label").to_numpy(zero_copy_only=False)
    xs = data.column("x").to_numpy(zero_copy_only=False)[labels == "cat"]
    np.testing.assert_array_equal(filtered.counts, np.histogram(xs[np.isfinite(xs)], bins=8)[0])


def test_histogram_auto_bins_rule(engine: Engine, data: pa.Table) -> None:
    x = finite_x(data)
    hist = engine.histogram(Query(table="t"), "x")
    q1, q3 = np.quantile(x, [0.25, 0.75])
    expected = int(np.ceil((x.max() - x.min()) / (2 * (q3 - q1) / len(x) ** (1 / 3))))
    assert len(hist.counts) == min(max(expected, 1), MAX_AUTO_BINS)
    assert hist.counts.sum() == len(x)


def test_histogram_degenerate_inputs() -> None:
    engine = Engine({"t": pa.table({"c": [2.0, 2.0, None]})})
    hist = engine.histogram(Query(table="t"), "c", bins=4)
    counts, edges = np.histogram([2.0, 2.0], bins=4)
    np.testing.assert_array_equal(hist.edges, edges)  # numpy's [v - 0.5, v + 0.5]
    np.testing.assert_array_equal(hist.counts, counts)
    assert hist.nulls == 1
    empty = engine.histogram(Query(table="t", filter="c > 5"), "c", bins=3)
    np.testing.assert_array_equal(empty.counts, [0, 0, 0])
    np.testing.assert_array_equal(empty.edges, np.linspace(0, 1, 4))
    with pytest.raises(QueryError, match="bins must be a positive integer"):
        engine.histogram(Query(table="t"), "c", bins=0)


def test_histogram_of_text_is_refused(engine: Engine) -> None:
    with pytest.raises(QueryError, match="`label` holds string, not numbers; use value_counts"):
        engine.histogram(Query(table="t"), "label")


def test_histogram_by_category(engine: Engine, data: pa.Table) -> None:
    hist = engine.histogram(Query(table="t"), "x", bins=6, by="label")
    assert hist.groups == ["bird", "cat", "dog", "fish"]
    x = data.column("x").to_numpy(zero_copy_only=False)
    labels = data.column("label").to_numpy(zero_copy_only=False)
    edges = np.histogram_bin_edges(x[np.isfinite(x)], bins=6)
    np.testing.assert_array_equal(hist.edges, edges)
    for row, group in zip(hist.counts, hist.groups):
        xs = x[(labels == group) & np.isfinite(x)]
        np.testing.assert_array_equal(row, np.histogram(xs, bins=edges)[0])


def test_value_counts_match_pandas(engine: Engine, data: pa.Table) -> None:
    vc = engine.value_counts(Query(table="t"), "label", top=3)
    expected = data.to_pandas()["label"].value_counts()
    assert vc.values == list(expected.index[:3])
    np.testing.assert_array_equal(vc.counts, expected.to_numpy()[:3])
    assert vc.other == int(expected.to_numpy()[3:].sum())
    assert vc.nulls == 0


def test_value_counts_nulls_ties_and_crosstab() -> None:
    engine = Engine(
        {
            "t": pa.table(
                {"a": ["x", "y", None, "y", "x", "z"], "b": ["p", "p", "q", None, "p", "q"]}
            )
        }
    )
    vc = engine.value_counts(Query(table="t"), "a", top=2)
    assert vc.values == ["x", "y"]  # tie on 2: value order breaks it
    assert vc.counts.tolist() == [2, 2]
    assert (vc.other, vc.nulls) == (1, 1)
    cross = engine.value_counts(Query(table="t"), ["a", "b"])
    frame = pd.DataFrame(
        {"a": ["x", "y", None, "y", "x", "z"], "b": ["p", "p", "q", None, "p", "q"]}
    )
    expected = frame.dropna().value_counts()
    assert dict(zip(cross.values, cross.counts.tolist())) == {
        k: int(v) for k, v in expected.items()
    }
    assert cross.values[0] == ("x", "p")
    assert cross.nulls == 2


def test_column_numpy_numbers(engine: Engine, data: pa.Table) -> None:
    values = engine.column_numpy(Query(table="t"), "x")
    assert values.dtype == np.float64 and values.shape == (5000,)
    np.testing.assert_array_equal(values, data.column("x").to_numpy(zero_copy_only=False))
    sorted_k = engine.column_numpy(Query(table="t", sort=["-k"], limit=5), "k")
    assert sorted_k.tolist() == sorted(data.column("k").to_pylist(), reverse=True)[:5]
    labels = engine.column_numpy(Query(table="t", limit=3), "label")
    assert labels.tolist() == data.column("label").to_pylist()[:3]


def test_column_numpy_embeddings() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(40, 8)).astype(np.float32)
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), 8)
    variable = pa.array([list(map(float, row)) for row in matrix], type=pa.list_(pa.float64()))
    ragged = pa.array([[1.0, 2.0], [1.0], [3.0, 4.0]])
    engine = Engine(
        {
            "t": pa.table({"id": np.arange(40), "e": fixed, "v": variable}),
            "r": pa.table({"e": ragged}),
        }
    )
    out = engine.column_numpy(Query(table="t"), "e")
    assert out.dtype == np.float32 and out.shape == (40, 8)
    np.testing.assert_array_equal(out, matrix)
    np.testing.assert_allclose(engine.column_numpy(Query(table="t"), "v"), matrix, rtol=1e-6)
    subset = engine.column_numpy(Query(table="t", filter="id >= 38", sort=["-id"]), "e")
    np.testing.assert_array_equal(subset, matrix[[39, 38]])
    with pytest.raises(QueryError, match="`e` is ragged: its lists have 1 to 2 items"):
        engine.column_numpy(Query(table="r"), "e")


def test_column_numpy_embedding_is_one_writable_matrix_with_nan_for_null_rows() -> None:
    rng = np.random.default_rng(8)
    matrix = rng.normal(size=(5000, 4)).astype(np.float32)
    null = np.zeros(5000, dtype=bool)
    null[[3, 2048, 4999]] = True
    chunks = [
        pa.FixedSizeListArray.from_arrays(
            pa.array(matrix[a:b].ravel()), 4, mask=pa.array(null[a:b])
        )
        for a, b in ((0, 1000), (1000, 4096), (4096, 5000))
    ]
    engine = Engine({"t": pa.table({"e": pa.chunked_array(chunks)})})
    out = engine.column_numpy(Query(table="t"), "e")
    assert out.dtype == np.float32 and out.shape == (5000, 4)
    # scikit-learn copies a read-only matrix before fitting; this one it uses as it is
    assert out.flags.writeable and out.flags.c_contiguous
    want = matrix.copy()
    want[null] = np.nan
    np.testing.assert_array_equal(out, want)
    some = engine.column_numpy(Query(table="t", offset=2047, limit=3), "e")
    np.testing.assert_array_equal(some, want[2047:2050])


def test_group_by_gives_lists_and_types() -> None:
    table = pa.table(
        {
            "label": ["a", "b", "a", None, "b", "a"],
            "x": [1.0, 2.0, 3.0, 4.0, None, 6.0],
            "name": ["p", "q", "r", "s", "t", "u"],
        }
    )
    engine = Engine({"t": table})
    query = Query(table="t", group_by=["label"])
    source_type = Table.from_arrow(table).type.columns
    assert engine.result_type(query).columns == {
        "label": source_type["label"],
        "count": NumberType(integer=True),
        "x": ListType(item=OptionalType(inner=NumberType())),
        "name": ListType(item=source_type["name"]),
    }
    assert engine.page(query).to_pylist() == [
        {"label": "a", "count": 3, "x": [1.0, 3.0, 6.0], "name": ["p", "r", "u"]},
        {"label": "b", "count": 2, "x": [2.0, None], "name": ["q", "t"]},
        {"label": None, "count": 1, "x": [4.0], "name": ["s"]},
    ]
    assert engine.count(query) == 3
    by_count = Query(table="t", group_by=["label"], sort=["count"], filter="x > 1")
    assert engine.page(by_count, columns=["label", "count"]).to_pylist() == [
        {"label": "b", "count": 1},
        {"label": None, "count": 1},
        {"label": "a", "count": 2},
    ]
    # small groups: grouped() gives the complete lists, samples capped at `sample`
    assert engine.grouped(query).to_pylist() == engine.page(query).to_pylist()
    capped = engine.grouped(query, sample=2).to_pylist()
    assert capped[0]["name"] == ["p", "r"] and capped[0]["count"] == 3


def test_grouped_histograms_share_edges_and_match_numpy() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    labels = rng.choice(["a", "b", "c"], n)
    x = rng.normal(size=n)
    engine = Engine({"t": pa.table({"g": labels, "x": x, "s": [f"s{i}" for i in range(n)]})})
    query = Query(table="t", group_by=["g"], sort=["g"])
    grouped = engine.grouped(query, bins=12)
    rows = grouped.to_pylist()
    assert [r["g"] for r in rows] == ["a", "b", "c"]
    edges = np.histogram_bin_edges(x, bins=12)
    for row in rows:
        np.testing.assert_array_equal(row["x"]["edges"], edges)
        np.testing.assert_array_equal(
            row["x"]["counts"], np.histogram(x[labels == row["g"]], bins=edges)[0]
        )
        assert row["count"] == int((labels == row["g"]).sum())
        assert len(row["s"]) == GROUP_SAMPLE
        assert row["s"] == [f"s{i}" for i in np.flatnonzero(labels == row["g"])[:GROUP_SAMPLE]]
    # histogram() of a grouped column: one row per kept group, in the query's order; the
    # edges still cover every filtered row
    hist = engine.histogram(query.model_copy(update={"offset": 1}), "x", bins=12)
    assert hist.groups == ["b", "c"]
    np.testing.assert_array_equal(hist.edges, edges)
    np.testing.assert_array_equal(hist.counts[1], np.histogram(x[labels == "c"], bins=edges)[0])


def test_grouped_needs_group_by(engine: Engine) -> None:
    with pytest.raises(QueryError, match="no group_by"):
        engine.grouped(Query(table="t"))


def test_grouped_samples_same_from_prefix_or_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    from panels_core.query.engine import aggregate as engine_module

    rng = np.random.default_rng(8)
    n = 2000
    labels = np.where(np.arange(n) < 1900, rng.choice(["a", "b"], n), "late")  # "late": the tail
    table = pa.table({"g": labels, "s": [f"s{i}" for i in range(n)], "x": rng.normal(size=n)})
    query = Query(table="t", group_by=["g"], filter="x > -1")
    from_prefix = Engine({"t": table}).grouped(query, sample=20)
    monkeypatch.setattr(engine_module, "_PREFIX_MAX", 8)  # prefixes never suffice: full scan
    from_full = Engine({"t": table}).grouped(query, sample=20)
    assert from_prefix.equals(from_full)
    rows = {r["g"]: r for r in from_full.to_pylist()}
    xs = table.column("x").to_numpy()
    kept = np.flatnonzero((labels == "late") & (xs > -1))
    assert rows["late"]["s"] == [f"s{i}" for i in kept[:20]]
    assert rows["late"]["count"] == len(kept)


def test_histogram_values_on_edges_are_corrected_like_numpy() -> None:
    # values exactly on linspace edges: the plain estimate floor((x - lo) / (hi - lo) * n)
    # puts some of them one bin too low; numpy corrects against the edges, so must we
    rng = np.random.default_rng(0)
    for _ in range(20):
        lo = float(rng.uniform(-10, 10))
        hi = lo + float(rng.uniform(0.1, 100))
        n = int(rng.integers(2, 60))
        x = np.concatenate([np.linspace(lo, hi, n + 1), rng.uniform(lo, hi, 50)])
        g = np.where(np.arange(len(x)) % 2 == 0, "even", "odd")
        engine = Engine({"t": pa.table({"x": x, "g": g})})
        hist = engine.histogram(Query(table="t"), "x", bins=n)
        counts, edges = np.histogram(x, bins=n)
        np.testing.assert_array_equal(hist.edges, edges)
        np.testing.assert_array_equal(hist.counts, counts)
        by = engine.histogram(Query(table="t"), "x", bins=n, by="g")
        for row, group in zip(by.counts, by.groups):
            np.testing.assert_array_equal(row, np.histogram(x[g == group], bins=edges)[0])


def test_histogram_values_at_and_beside_the_range_ends() -> None:
    # the bin estimate is floor((x - lo) / (hi - lo) * n) as a double: x == hi lands on n,
    # a value one ulp above hi may round onto n too, one ulp below hi may as well; NaN,
    # inf and null give no bin; every case must still count like numpy.histogram
    rng = np.random.default_rng(5)
    for trial in range(12):
        lo = float(rng.uniform(-5, 5))
        hi = lo + float(rng.uniform(0.01, 50))
        n = int(rng.integers(1, 40))
        edges = np.linspace(lo, hi, n + 1)
        around = [np.nextafter(v, d) for v in (lo, hi) for d in (-np.inf, np.inf)]
        x = np.concatenate(
            [
                rng.uniform(lo - 1, hi + 1, 300),
                edges,
                edges,
                around,
                [lo, hi, hi, np.nan, np.inf, -np.inf],
            ]
        )
        mask = rng.random(len(x)) < 0.05
        g = rng.choice(["a", "b", "c"], len(x))
        engine = Engine({"t": pa.table({"x": pa.array(x, mask=mask), "g": g})})
        kept = x[~mask]
        finite = kept[np.isfinite(kept)]
        inside = (finite >= lo) & (finite <= hi)
        hist = engine.histogram(Query(table="t"), "x", bins=n, range=(lo, hi))
        np.testing.assert_array_equal(hist.edges, edges)
        np.testing.assert_array_equal(hist.counts, np.histogram(finite, bins=n, range=(lo, hi))[0])
        assert (hist.nulls, hist.nonfinite) == (int(mask.sum()), int((~np.isfinite(kept)).sum()))
        assert hist.outside == int((~inside).sum())
        # the data's own min and max as the range (the default), per group
        own = engine.histogram(Query(table="t"), "x", bins=n, by="g")
        for row, group in zip(own.counts, own.groups):
            values = x[(g == group) & ~mask]
            values = values[np.isfinite(values)]
            np.testing.assert_array_equal(row, np.histogram(values, bins=own.edges)[0])
        np.testing.assert_array_equal(own.edges, np.histogram_bin_edges(finite, bins=n))
        # fixed-width bins: edges need not end on the data's max
        width = (hi - lo) / (n + 0.5)
        wide = engine.histogram(Query(table="t"), "x", width=width, range=(lo, hi))
        expected_edges = np.arange(len(wide.edges)) * width + lo
        np.testing.assert_array_equal(wide.edges, expected_edges)
        np.testing.assert_array_equal(wide.counts, np.histogram(finite, bins=wide.edges)[0])
        assert wide.outside == int(((finite < wide.edges[0]) | (finite > wide.edges[-1])).sum()), (
            trial
        )


@pytest.mark.parametrize("bins", [12, "auto"])
def test_histogram_of_a_parquet_file_counts_nan_inf_and_null(tmp_path, bins) -> None:
    # Parquet min/max statistics leave NaN out, so they never tell whether NaN is there:
    # the counts come from the scan, and agree with the same table in memory and numpy
    import pyarrow.parquet as pq

    rng = np.random.default_rng(8)
    n = 3000
    x = rng.normal(0, 2, n)
    x[::101] = np.nan  # NaN only: the file's statistics look finite
    mask = np.zeros(n, dtype=bool)
    mask[7::89] = True
    y = x.copy()
    y[11::503] = np.inf  # inf shows in the statistics
    g = rng.choice(["p", "q"], n)
    table = pa.table({"x": pa.array(x, mask=mask), "y": pa.array(y, mask=mask), "g": g})
    path = tmp_path / "nan.parquet"
    pq.write_table(table, path, row_group_size=700)
    disk, memory = Engine({"t": Table.from_parquet(path)}), Engine({"t": table})
    for column, values in (("x", x), ("y", y)):
        kept = values[~mask]
        finite = kept[np.isfinite(kept)]
        for query in (Query(table="t"), Query(table="t", filter="g == 'p'")):
            a = disk.histogram(query, column, bins=bins)
            b = memory.histogram(query, column, bins=bins)
            np.testing.assert_array_equal(a.edges, b.edges)
            np.testing.assert_array_equal(a.counts, b.counts)
            assert (a.nulls, a.nonfinite, a.outside) == (b.nulls, b.nonfinite, b.outside)
        whole = disk.histogram(Query(table="t"), column, bins=bins)
        np.testing.assert_array_equal(whole.counts, np.histogram(finite, bins=whole.edges)[0])
        assert (whole.nulls, whole.nonfinite, whole.outside) == (
            int(mask.sum()),
            int((~np.isfinite(kept)).sum()),
            0,
        )
    grouped = disk.histogram(Query(table="t", group_by=["g"]), "x", bins=6)
    assert grouped.nonfinite == int(np.isnan(x[~mask]).sum())
    assert grouped.nulls == int(mask.sum())


def test_histogram_counts_values_overflowing_the_bin_estimate() -> None:
    # a tiny range makes (x - lo) / (hi - lo) * n overflow to inf for a large finite x,
    # next to a real inf: the finite value is outside the range, the inf is non-finite
    x = pa.array([1e300, np.inf, 0.25e-300, 0.75e-300, np.nan, None, -1e300, -np.inf])
    engine = Engine({"t": pa.table({"x": x})})
    hist = engine.histogram(Query(table="t"), "x", bins=4, range=(0.0, 1e-300))
    np.testing.assert_array_equal(
        hist.counts, np.histogram([0.25e-300, 0.75e-300], bins=4, range=(0.0, 1e-300))[0]
    )
    assert (hist.nulls, hist.nonfinite, hist.outside) == (1, 3, 2)
