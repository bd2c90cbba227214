"""The histogram's numpy binning of DuckDB's Arrow batches counts what numpy.histogram counts:
on edge values and their neighbours, NaN, inf, nulls, an empty filter, one distinct value,
a range, a bin width, a compared column."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from panels_core.data.table import Table
from panels_core.query.engine import Engine
from panels_core.query.engine.numpy_bins import bin_batches, bin_values, edge_margin
from panels_core.query.model import Query


def beside_edges(e: np.ndarray) -> np.ndarray:
    """Every edge and the doubles just below and above it."""
    return np.concatenate([e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf)])


def counts(x: np.ndarray, e: np.ndarray) -> list[int]:
    return bin_values(x, e, edge_margin(e))[0].tolist()


@pytest.mark.parametrize(
    ("lo", "hi", "n"),
    [
        (-5.048996620742562, 5.327897311210615, 50),  # a normal sample's min and max
        (0.0, 1000.0, 50),  # integers: edges on integer values
        (0.1, 0.7, 3),  # edges numpy's estimate misplaces values around
        (1e15, 1e15 + 3.0, 7),  # edges a few ulps apart: every value placed again
        (-1e-300, 1e-300, 1000),
    ],
)
def test_counts_equal_numpys_at_and_beside_every_edge(lo: float, hi: float, n: int) -> None:
    e = np.linspace(lo, hi, n + 1)
    rng = np.random.default_rng(0)
    x = np.concatenate([beside_edges(e), rng.uniform(lo, hi, 10_000), np.round(e * 7) / 7])
    expected, _ = np.histogram(x, bins=n, range=(lo, hi))
    assert counts(x, e) == expected.tolist()
    assert sum(expected) > 0


def test_width_edges_count_as_numpy_over_those_edges() -> None:
    e = np.arange(11, dtype=np.float64) * 0.3 + 0.1  # a bin width of 0.3 from 0.1
    x = np.concatenate([beside_edges(e), np.arange(0, 3.5, 0.1)])
    assert counts(x, e) == np.histogram(x, bins=e)[0].tolist()


def test_nan_inf_and_outside_values_are_in_no_bin_and_counted_finite_or_not() -> None:
    e = np.linspace(0.0, 1.0, 5)
    x = np.array([0.0, 0.25, 0.5, 1.0, np.nan, np.inf, -np.inf, -0.5, 1.5, 0.99])
    binned, finite = bin_values(x, e, edge_margin(e))
    assert binned.tolist() == [1, 1, 1, 2]
    assert finite == 7  # -0.5 and 1.5 are finite, outside the edges


def test_batches_of_a_compared_column_count_nulls_nonfinite_and_finite_per_source() -> None:
    e = np.linspace(0.0, 1.0, 3)
    batches = [
        pa.record_batch({"a": pa.array([0.0, None, 1.0]), "b": pa.array([np.nan, 0.5, 0.7])}),
        pa.record_batch({"a": pa.array([0.2, 2.0, None]), "b": pa.array([None, None, np.inf])}),
        pa.record_batch({"a": pa.array([], pa.float64()), "b": pa.array([], pa.float64())}),
    ]
    binned, counted = bin_batches(batches, [e, e])
    assert [b.tolist() for b in binned] == [[2, 1], [0, 2]]
    assert counted == [(2, 0, 4), (2, 2, 2)]


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=60),
    n=st.integers(1, 40),
)
def test_any_values_over_their_finite_range_count_as_numpy(values: list[float], n: int) -> None:
    x = np.array(values, dtype=np.float64)
    finite = x[np.isfinite(x)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if not math.isfinite(hi - lo):
        return  # the engine refuses such a range before binning (query/bins.py)
    with np.errstate(over="ignore"):  # linspace's steps over a range near the largest float
        e = np.linspace(lo, hi, n + 1)
    binned, counted_finite = bin_values(x, e, edge_margin(e))
    assert counted_finite == len(finite)
    if lo == hi:  # a value too large to widen by 0.5: numpy refuses, no bin holds it
        assert binned.tolist() == [0] * n
        return
    assume(bool(np.all(np.diff(e) > 0)))  # else numpy refuses: too many bins for the range
    assert binned.tolist() == np.histogram(finite, bins=n, range=(lo, hi))[0].tolist()


@pytest.fixture
def engine(tmp_path) -> Engine:
    x = [0.0, 0.1, 0.2, 0.2, 0.5, 0.7, 1.0, None, np.nan, np.inf, 0.3, 0.6]
    kind = ["a", "a", "b", "b", "a", "b", "a", "a", "b", "a", "b", "b"]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": pa.array(x, pa.float64()), "kind": kind}), path)
    return Engine({"t": Table.from_parquet(path)})


def test_a_parquet_histogram_counts_as_numpy_with_nulls_nan_and_inf_beside(engine) -> None:
    finite = [0.0, 0.1, 0.2, 0.2, 0.5, 0.7, 1.0, 0.3, 0.6]
    hist = engine.histogram(Query(table="t"), "x", bins=5)
    expected, edges = np.histogram(finite, bins=5)
    assert hist.counts.tolist() == expected.tolist()
    assert hist.edges.tolist() == edges.tolist()
    assert (hist.nulls, hist.nonfinite, hist.outside) == (1, 2, 0)
    ranged = engine.histogram(Query(table="t"), "x", bins=2, range=(0.2, 0.6))
    assert ranged.counts.tolist() == [3, 2]  # 0.2, 0.2, 0.3 | 0.5, 0.6
    assert ranged.outside == 4


def test_an_empty_filter_and_one_distinct_value_count_as_numpy(engine) -> None:
    empty = engine.histogram(Query(table="t", filter="x > 1 and x < 2"), "x", bins=4)
    assert empty.counts.tolist() == [0, 0, 0, 0]
    assert (empty.nulls, empty.nonfinite, empty.outside) == (0, 0, 0)
    one = engine.histogram(Query(table="t", filter="x == 0.2"), "x", bins=4)
    expected, edges = np.histogram([0.2, 0.2], bins=4)
    assert one.counts.tolist() == expected.tolist() == [0, 0, 2, 0]
    assert one.edges.tolist() == edges.tolist()


def test_a_filtered_histogram_and_a_by_histogram_agree(engine) -> None:
    by = engine.histogram(Query(table="t"), "x", bins=4, by="kind")  # binned in SQL
    edges = by.edges
    assert by.groups == ["a", "b"]
    for group, row in zip(by.groups, by.counts):
        values = {"a": [0.0, 0.1, 0.5, 1.0], "b": [0.2, 0.2, 0.7, 0.3, 0.6]}[group]
        assert row.tolist() == np.histogram(values, bins=edges)[0].tolist()
        ranged = engine.histogram(
            Query(table="t", filter=f"kind == '{group}'"),
            "x",
            bins=4,
            range=(float(edges[0]), float(edges[-1])),
        )
        assert ranged.counts.tolist() == row.tolist()
