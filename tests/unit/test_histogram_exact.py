"""The engine's histogram counts equal numpy.histogram's, value for value.

Each value's bin is computed in SQL from its nearest edge (edges recomputed as
numpy computes them), or by numpy's own steps when the magnitudes are too large
for the span; these columns put values on, just below and just above the edges,
at huge and tiny magnitudes, in negative ranges, clipped by ``range=``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panels_core.data.table import Table
from panels_core.query.engine import Engine
from panels_core.query.engine.binning import bin_of_key, edge_formula
from panels_core.query.model import Query


def _on_edges(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """Values in lo .. hi with numpy's edges themselves and their float neighbours."""
    e = np.linspace(lo, hi, n + 1)
    near = np.concatenate([e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf)])
    inside = near[(near >= lo) & (near <= hi)]
    return np.concatenate([inside, rng.uniform(lo, hi, 500)])


def _columns() -> dict[str, tuple[np.ndarray, int]]:
    """Named columns (finite values) and a bin count for each."""
    rng = np.random.default_rng(16)
    cols = {
        "normal": (rng.normal(0, 1, 5000), 50),
        "uniform_ints": (rng.integers(-40, 40, 3000).astype(float), 7),
        "huge": (rng.uniform(-1e300, 1e300, 2000), 30),
        "tiny": (rng.uniform(1e-300, 9e-300, 2000), 13),
        "negative": (_on_edges(rng, -1e6, -3.5, 17), 17),
        "edges_thirds": (_on_edges(rng, 0.0, 1.0, 3), 3),
        "edges_many": (_on_edges(rng, -7.3, 1e4 / 3, 997), 997),
        "edges_odd": (_on_edges(rng, 0.1, 0.7, 10), 10),
        "one_value": (np.full(100, 2.5), 5),
        "far_from_zero": (1e15 + rng.integers(0, 64, 3000) * 0.125, 5),
        "exponential": (rng.exponential(1e8, 4000), 200),
        # 53 neighbouring floats in 18 bins: numpy's estimate is one bin low for some
        "far_rounding": (1.0413096707578845e14 + rng.integers(0, 53, 400) * 0.015625, 18),
    }
    # a scaled linspace cut at every bin count: the edges fall between floats unevenly
    for n in (1, 2, 9, 100, 1000):
        cols[f"linspace_{n}"] = (_on_edges(rng, -1 / 3, 2 / 7, n), n)
    return cols


COLUMNS = _columns()
LENGTH = max(len(v) for v, _ in COLUMNS.values()) + 5


@pytest.fixture(scope="module")
def engine() -> Engine:
    arrays = {}
    for name, (values, _) in COLUMNS.items():
        padded = np.full(LENGTH, np.nan)
        padded[: len(values)] = values
        # the padding is null, with a NaN and both infinities among the values
        mask = np.arange(LENGTH) >= len(values) + 3
        padded[len(values) : len(values) + 3] = [np.nan, np.inf, -np.inf]
        arrays[name] = pa.array(padded, mask=mask)
    return Engine({"t": pa.table(arrays)})


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_counts_equal_numpys_on_the_values_range(engine: Engine, name: str) -> None:
    values, n = COLUMNS[name]
    hist = engine.histogram(Query(table="t"), name, bins=n)
    counts, edges = np.histogram(values, bins=n)
    np.testing.assert_array_equal(hist.edges, edges)
    np.testing.assert_array_equal(hist.counts, counts)
    nulls = LENGTH - len(values) - 3
    assert (hist.nulls, hist.nonfinite, hist.outside) == (nulls, 3, 0)


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_counts_equal_numpys_over_a_range_that_clips(engine: Engine, name: str) -> None:
    values, n = COLUMNS[name]
    lo, hi = np.quantile(values, [0.2, 0.7])
    if lo == hi:
        lo, hi = lo - 1.0, hi
    lo, hi = float(values[np.argmin(np.abs(values - lo))]), float(hi)  # lo is a value
    hist = engine.histogram(Query(table="t"), name, bins=n, range=(lo, hi))
    counts, edges = np.histogram(values, bins=n, range=(lo, hi))
    np.testing.assert_array_equal(hist.edges, edges)
    np.testing.assert_array_equal(hist.counts, counts)
    assert hist.outside == len(values) - int(counts.sum())
    assert hist.nonfinite == 3


def test_both_ways_of_placing_values_are_covered() -> None:
    # the nearest-edge formula for ordinary columns; numpy's own steps where the
    # magnitude is over 2**40 bin widths (1e15 with bins of 0.2)
    assert edge_formula(np.linspace(-1 / 3, 2 / 7, 101), None) is not None
    assert edge_formula(np.arange(11) * 0.5 - 3.0, 0.5) is not None
    for name in ("far_from_zero", "far_rounding"):
        values, n = COLUMNS[name]
        assert edge_formula(np.histogram_bin_edges(values, bins=n), None) is None
    # where numpy's correction matters: its estimate alone puts some values a bin low
    values, n = COLUMNS["far_rounding"]
    e = np.histogram_bin_edges(values, bins=n)
    estimate = np.minimum(((values - e[0]) / (e[-1] - e[0]) * n).astype(int), n - 1)
    assert not np.array_equal(np.bincount(estimate, minlength=n), np.histogram(values, e)[0])
    # an integer column binned by width, edges lo + k * width
    assert bin_of_key(None, 4) is None
    assert [bin_of_key(b, 4) for b in (-1.0, 0.0, 1.0, 2.0, 7.0, 8.0, 9.0, np.nan)] == [
        None,
        0,
        0,
        1,
        3,
        3,
        None,
        None,
    ]


def test_width_edges_bin_every_integer_as_numpy_bins_them(engine: Engine) -> None:
    values, _ = COLUMNS["uniform_ints"]
    hist = engine.histogram(Query(table="t"), "uniform_ints", range=(-40.5, 39.5), width=1.0)
    np.testing.assert_array_equal(hist.counts, np.histogram(values, bins=hist.edges)[0])
    assert hist.counts.tolist() == np.bincount((values + 40).astype(int), minlength=80).tolist()


def test_by_and_grouped_counts_equal_numpys_per_group(tmp_path) -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([_on_edges(rng, -2.0, 5.0, 20), rng.normal(1, 2, 2000)])
    g = rng.choice(["a", "b", "c"], len(x))
    path = tmp_path / "g.parquet"
    pq.write_table(pa.table({"x": x, "g": g}), path, row_group_size=700)
    engine = Engine({"t": Table.from_parquet(path)})
    edges = np.histogram_bin_edges(x, bins=20)
    by = engine.histogram(Query(table="t"), "x", bins=20, by="g")
    grouped = engine.histogram(Query(table="t", group_by=["g"], sort=["g"]), "x", bins=20)
    for hist in (by, grouped):
        np.testing.assert_array_equal(hist.edges, edges)
        assert hist.groups == ["a", "b", "c"]
        for row, name in zip(hist.counts, ["a", "b", "c"]):
            np.testing.assert_array_equal(row, np.histogram(x[g == name], bins=edges)[0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scale=st.sampled_from([1e-300, 1e-9, 1.0, 3.7e5, 1e12, 1e300]),
    shift=st.sampled_from([0.0, -1.0, 0.5, 1e3]),
    bins=st.integers(1, 300),
    seed=st.integers(0, 2**31),
)
def test_random_columns_match_numpy(scale: float, shift: float, bins: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(400) + shift) * scale
    e = np.histogram_bin_edges(x, bins=bins)
    x = np.concatenate([x, e[1:-1], np.nextafter(e[1:-1], -np.inf)])  # on and below edges
    engine = Engine({"t": pa.table({"x": x})})
    np.testing.assert_array_equal(
        engine.histogram(Query(table="t"), "x", bins=bins).counts, np.histogram(x, bins=bins)[0]
    )
    lo, hi = float(np.quantile(x, 0.1)), float(np.quantile(x, 0.8))
    hist = engine.histogram(Query(table="t"), "x", bins=bins, range=(lo, hi))
    np.testing.assert_array_equal(hist.counts, np.histogram(x, bins=bins, range=(lo, hi))[0])
