"""The example plugin typed-panels-confusion-matrix, installed for real."""

from __future__ import annotations

import ast
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from panels_core.panel_registry import Registry
from panels_core.types import CategoryType, NumberType, OptionalType, StringType, TableType

cm = pytest.importorskip("panels_confusion_matrix")

PLUGIN_DIR = Path(__file__).parents[2] / "plugins" / "confusion_matrix"
LABELS = ["bird", "cat", "dog", "fish"]


@dataclass
class Counts:
    values: list[Any]
    counts: np.ndarray
    other: int = 0
    nulls: int = 0


class FakeView:
    """A view answering value_counts from a DataFrame, as the engine does."""

    def __init__(self, df: pd.DataFrame, view_type: Any) -> None:
        self.df = df
        self.type = view_type
        self.calls: list[tuple[Any, int]] = []

    def value_counts(self, column: list[str], top: int = 20) -> Counts:
        self.calls.append((column, top))
        complete = self.df.dropna(subset=column)
        grouped = complete.groupby(column).size().sort_values(ascending=False, kind="stable")
        kept = grouped.iloc[:top]
        return Counts(
            values=list(kept.index),
            counts=kept.to_numpy(),
            other=int(grouped.iloc[top:].sum()),
            nulls=len(self.df) - len(complete),
        )


def predictions(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    actual = rng.choice(LABELS, n, p=[0.1, 0.4, 0.3, 0.2])
    noise = rng.choice(LABELS, n)
    predicted = np.where(rng.random(n) < 0.7, actual, noise)
    return pd.DataFrame({"label": actual, "pred": predicted, "score": rng.random(n)})


def categories(*cats: str) -> CategoryType:
    return CategoryType(categories=cats)


PRED_TYPE = TableType(
    columns={"label": categories(*LABELS), "pred": categories(*LABELS), "score": NumberType()}
)


@pytest.mark.parametrize("normalize", ["none", "true", "pred", "all"])
def test_matrix_matches_sklearn(normalize: str) -> None:
    df = predictions()
    view = FakeView(df, PRED_TYPE)
    panel = cm.ConfusionMatrix({"actual": "label", "predicted": "pred", "normalize": normalize})
    matrix, beyond, nulls = panel.matrix(view)
    assert matrix.labels == LABELS and (beyond, nulls) == (0, 0)
    expected_counts = sk_confusion_matrix(df["label"], df["pred"], labels=LABELS)
    np.testing.assert_array_equal(matrix.counts, expected_counts)
    sk_normalize = None if normalize == "none" else normalize
    expected = sk_confusion_matrix(df["label"], df["pred"], labels=LABELS, normalize=sk_normalize)
    np.testing.assert_allclose(matrix.values, expected)
    assert matrix.total == 500
    assert matrix.accuracy == pytest.approx((df["label"] == df["pred"]).mean())
    assert view.calls == [(["label", "pred"], cm.MAX_PAIRS)]


def test_rare_labels_merge_into_other() -> None:
    pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "c"), ("d", "a"), ("e", "e")]
    counts = [50, 5, 40, 3, 2, 1]
    matrix = cm.confusion_matrix(pairs, counts, top_labels=2)
    assert matrix.labels == ["a", "b", cm.OTHER]
    np.testing.assert_array_equal(matrix.counts, [[50, 5, 0], [0, 40, 0], [2, 0, 4]])
    assert matrix.total == 101 and matrix.correct == 94


def test_numeric_labels_sort_numerically_and_empty_rows_normalize_to_zero() -> None:
    matrix = cm.confusion_matrix([(10, 2), (2, 2)], [3, 1], normalize="true")
    assert matrix.labels == [2, 10]
    np.testing.assert_allclose(matrix.values, [[1.0, 0.0], [1.0, 0.0]])
    empty = cm.confusion_matrix([(2, 10)], [4], normalize="true")
    np.testing.assert_allclose(empty.values, [[0.0, 1.0], [0.0, 0.0]])


def test_rows_with_a_missing_label_are_reported() -> None:
    df = predictions(50)
    df.loc[[0, 3, 7], "pred"] = None
    view = FakeView(df, PRED_TYPE)
    panel = cm.ConfusionMatrix({"actual": "label", "predicted": "pred"})
    matrix, _, nulls = panel.matrix(view)
    assert nulls == 3 and matrix.total == 47
    card = panel.render(view)
    assert "47 rows" in card[0].object and "3 rows with a missing label left out" in card[0].object


def test_render_draws_a_heatmap_with_counts() -> None:
    df = predictions()
    view = FakeView(df, PRED_TYPE)
    card = cm.ConfusionMatrix({"actual": "label", "predicted": "pred"}).render(view)
    assert isinstance(card, pn.Column)
    figure = card[1].object
    assert list(figure.x_range.factors) == LABELS
    assert list(figure.y_range.factors) == LABELS[::-1]
    source = figure.renderers[0].data_source.data
    expected = sk_confusion_matrix(df["label"], df["pred"], labels=LABELS)
    assert source["count"] == expected.ravel().tolist()
    assert source["text"][:4] == [f"{v:,}" for v in expected[0]]
    assert figure.xaxis[0].axis_label == "predicted (pred)"


def test_match_prefers_columns_sharing_labels() -> None:
    shared = cm.ConfusionMatrix.match(PRED_TYPE)
    disjoint = cm.ConfusionMatrix.match(
        TableType(columns={"a": categories("x", "y"), "b": categories("p", "q")})
    )
    strings = cm.ConfusionMatrix.match(TableType(columns={"a": StringType(), "b": StringType()}))
    partial = cm.ConfusionMatrix.match(
        TableType(columns={"a": categories("x", "y", "z"), "b": categories("x", "y", "w")})
    )
    assert shared > partial > strings > disjoint
    assert (
        cm.ConfusionMatrix.match(TableType(columns={"a": categories("x"), "n": NumberType()}))
        is None
    )


def test_default_config_picks_the_shared_pair_in_actual_predicted_order() -> None:
    view_type = TableType(
        columns={
            "split": categories("train", "test"),
            "predicted_class": OptionalType(inner=categories("cat", "dog")),
            "true_class": categories("cat", "dog"),
        }
    )
    config = cm.ConfusionMatrix.default_config(view_type)
    assert (config.actual, config.predicted) == ("true_class", "predicted_class")


def test_config_refuses_the_same_column_twice() -> None:
    with pytest.raises(ValueError, match="actual and predicted must be two different columns"):
        cm.ConfusionMatrixConfig(actual="label", predicted="label")


def test_with_the_real_engine() -> None:
    from panels_core import Table, View

    df = predictions(300, seed=3)
    view = View.of(Table(dataframe=df, dtypes={"label": "category", "pred": "category"}))
    reg = Registry()
    reg.register(cm.ConfusionMatrix)
    match = reg.default(view.type)
    assert match.kind == "confusion_matrix"
    assert (match.config.actual, match.config.predicted) == ("label", "pred")
    matrix, _, _ = cm.ConfusionMatrix(match.config).matrix(view)
    np.testing.assert_array_equal(
        matrix.counts, sk_confusion_matrix(df["label"], df["pred"], labels=matrix.labels)
    )
    card = reg.render_object("confusion_matrix", view, match.config)
    assert isinstance(card, pn.Column)


def test_discovered_through_its_installed_entry_point() -> None:
    eps = importlib.metadata.entry_points(group="typed_panels.panels").select(
        name="confusion_matrix"
    )
    (ep,) = list(eps)
    assert ep.value == "panels_confusion_matrix:ConfusionMatrix"
    assert ep.dist.metadata["Name"] == "typed-panels-confusion-matrix"
    reg = Registry()
    reg.discover()
    status = reg.status("confusion_matrix")
    assert (status.state, status.distribution, status.version) == (
        "ok",
        "typed-panels-confusion-matrix",
        "0.1.0",
    )
    assert reg.get("confusion_matrix") is cm.ConfusionMatrix


def test_plugin_imports_only_public_names() -> None:
    tree = ast.parse((PLUGIN_DIR / "panels_confusion_matrix" / "__init__.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("panels_core"):
            imported |= {(node.module, alias.name) for alias in node.names}
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("panels_core") for a in node.names)
    assert {module for module, _ in imported} <= {"panels_core", "panels_core.types"}
    assert all(not name.startswith("_") for _, name in imported)
    assert ("panels_core", "Panel") in imported
