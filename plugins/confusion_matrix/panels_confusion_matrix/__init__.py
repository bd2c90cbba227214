"""A confusion-matrix panel for typed-panels: actual vs predicted labels as a heatmap.

Only public typed-panels names are used, as any plugin should.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from panels_core import Column, Panel, PanelConfig
from panels_core.types import CategoryType, StringType

__all__ = ["ConfusionMatrix", "ConfusionMatrixConfig", "Matrix", "confusion_matrix"]
__version__ = "0.1.0"

OTHER = "(other)"
"""The row and column that collect labels beyond ``top_labels``."""

MAX_PAIRS = 100_000
"""At most this many distinct (actual, predicted) pairs are fetched from the engine."""

_ACTUAL_HINT = re.compile(r"(^|_)(y_?true|true|actual|label|labels|target|gt|ground_?truth)($|_)")
_PREDICTED_HINT = re.compile(
    r"(^|_)(y_?pred|pred|preds|predicted|prediction|predictions|guess)($|_)"
)


_LABEL = Column(accepts=StringType())  # category columns fit `string` too


class ConfusionMatrixConfig(PanelConfig):
    """Which columns hold the actual and the predicted labels, and how to show them."""

    actual: Annotated[str, _LABEL, Field(description="the column of true labels (rows)")]
    predicted: Annotated[str, _LABEL, Field(description="the column of predictions (columns)")]
    normalize: Literal["none", "true", "pred", "all"] = Field(
        "none",
        description="none: counts; true: each actual row sums to 1; pred: each predicted "
        "column sums to 1; all: the whole matrix sums to 1",
    )
    top_labels: int = Field(
        20, ge=2, le=200, description="labels beyond the most frequent are merged into (other)"
    )

    @model_validator(mode="after")
    def _two_columns(self) -> ConfusionMatrixConfig:
        if self.actual == self.predicted:
            raise ValueError("actual and predicted must be two different columns")
        return self


# --------------------------------------------------------------------------- the matrix


@dataclasses.dataclass(frozen=True)
class Matrix:
    """A confusion matrix: ``counts[i, j]`` rows with actual ``labels[i]`` and predicted
    ``labels[j]``; ``values`` are the counts normalized as asked."""

    labels: list[Any]
    counts: np.ndarray
    values: np.ndarray
    total: int
    correct: int

    @property
    def accuracy(self) -> float:
        """Share of rows whose prediction equals the actual label."""
        return self.correct / self.total if self.total else 0.0


def _sort_key(label: Any) -> tuple[int, Any]:
    if isinstance(label, int | float | np.integer | np.floating) and not isinstance(label, bool):
        return (0, float(label))
    return (1, str(label))


def confusion_matrix(
    pairs: Sequence[tuple[Any, Any]],
    counts: Sequence[int] | np.ndarray,
    *,
    top_labels: int = 20,
    normalize: str = "none",
) -> Matrix:
    """The matrix from (actual, predicted) pairs and their counts.

    Keeps the ``top_labels`` most frequent labels (by rows naming them as actual
    or predicted), sorted, and merges the rest into ``(other)``. Normalization
    follows scikit-learn's ``confusion_matrix(normalize=...)``; an empty row or
    column normalizes to zeros.
    """
    counts = np.asarray(counts, dtype=np.int64)
    frequency: dict[Any, int] = {}
    for (a, p), n in zip(pairs, counts.tolist(), strict=True):
        frequency[a] = frequency.get(a, 0) + n
        frequency[p] = frequency.get(p, 0) + n
    ranked = sorted(frequency, key=lambda label: (-frequency[label], _sort_key(label)))
    kept = sorted(ranked[:top_labels], key=_sort_key)
    labels: list[Any] = kept + ([OTHER] if len(ranked) > top_labels else [])
    index = {label: i for i, label in enumerate(kept)}
    other = len(kept)
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    correct = 0
    for (a, p), n in zip(pairs, counts.tolist(), strict=True):
        matrix[index.get(a, other), index.get(p, other)] += n
        correct += n if a == p else 0
    values = matrix.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            values = values / values.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            values = values / values.sum(axis=0, keepdims=True)
        elif normalize == "all":
            values = values / values.sum()
        elif normalize != "none":
            raise ValueError(f"normalize must be none, true, pred or all, got {normalize!r}")
    return Matrix(
        labels=labels,
        counts=matrix,
        values=np.nan_to_num(values),
        total=int(counts.sum()),
        correct=int(correct),
    )


# --------------------------------------------------------------------------- matching


MAX_LABEL_COLUMNS = 200
"""Only the first this many label columns are paired (pairs grow with its square)."""

_CATEGORY_PAIR = 2 * Panel.specificity(CategoryType())  # two category slots: 6
_NAME_BONUS = 0.5


@dataclasses.dataclass(frozen=True)
class _Label:
    name: str
    categories: frozenset[Any] | None  # None: free text, or labels not listed
    is_category: bool
    actual_hint: bool
    predicted_hint: bool


def _label_columns(view_type: Any) -> list[_Label]:
    """Columns (without their optional wrapper) that can hold labels, in table order."""
    found = []
    for name, t in Panel.columns_of(view_type).items():
        inner = t.inner if getattr(t, "kind", None) == "optional" else t
        if isinstance(inner, CategoryType | StringType):
            is_category = isinstance(inner, CategoryType)
            cats = frozenset(inner.categories) if is_category and inner.categories else None
            lower = name.lower()
            found.append(
                _Label(
                    name,
                    cats,
                    is_category,
                    bool(_ACTUAL_HINT.search(lower)),
                    bool(_PREDICTED_HINT.search(lower)),
                )
            )
    return found[:MAX_LABEL_COLUMNS]


def _pair_score(a: _Label, b: _Label) -> float:
    """How much two label columns look like actual vs predicted of one classifier.

    Two categories sharing labels: 6 (two category slots) + 2 x the share of
    common labels; categories of unlisted labels: 6; a free-text string in the
    pair: 0.5 (it fits, but ranks below nearly every other panel); two
    categories with no label in common: 0.25.
    """
    if not (a.is_category and b.is_category):
        return 0.5
    if a.categories is None or b.categories is None:
        return _CATEGORY_PAIR
    shared = len(a.categories & b.categories)
    if not shared:
        return 0.25
    return _CATEGORY_PAIR + 2 * shared / len(a.categories | b.categories)


def _oriented(x: _Label, y: _Label) -> tuple[tuple[str, str], float]:
    """(actual, predicted) for two columns, and a bonus when their names say so."""
    if y.actual_hint and x.predicted_hint and not x.actual_hint:
        return (y.name, x.name), _NAME_BONUS
    if x.actual_hint and y.predicted_hint:
        return (x.name, y.name), _NAME_BONUS
    return (x.name, y.name), 0.0


def best_pair(view_type: Any) -> tuple[str, str, float] | None:
    """The (actual, predicted, score) pair of label columns that fits best, or None.

    Pairs are tried in table order; the first pair reaching the best possible
    score ends the search.
    """
    labels = _label_columns(view_type)
    hinted = any(c.actual_hint for c in labels) and any(c.predicted_hint for c in labels)
    ceiling = _CATEGORY_PAIR + 2 + (_NAME_BONUS if hinted else 0.0)
    best: tuple[str, str, float] | None = None
    for i, x in enumerate(labels):
        for y in labels[i + 1 :]:
            (actual, predicted), bonus = _oriented(x, y)
            score = _pair_score(x, y) + bonus
            if best is None or score > best[2]:
                best = (actual, predicted, score)
                if score >= ceiling:
                    return best
    return best


# --------------------------------------------------------------------------- the panel


class ConfusionMatrix(Panel[ConfusionMatrixConfig]):
    """Counts of every (actual, predicted) label pair as a heatmap."""

    kind = "confusion_matrix"
    title = "Confusion matrix"
    description = "Actual vs predicted labels of a classifier, as counts or rates."
    api_version = "1.0"

    @classmethod
    def match(cls, view_type: Any) -> float | None:
        """Fits two label columns; scores higher when they share their labels."""
        found = best_pair(view_type) if cls.accepts_input(view_type) else None
        return None if found is None else found[2]

    @classmethod
    def default_config(cls, view_type: Any) -> ConfusionMatrixConfig:
        """The best pair of label columns, counts, the 20 most frequent labels."""
        found = best_pair(view_type)
        if found is None:
            raise ValueError("confusion_matrix needs two category or string columns")
        return cls.validate_config({"actual": found[0], "predicted": found[1]}, view_type)

    def matrix(self, view: Any) -> tuple[Matrix, int, int]:
        """The matrix of a view, rows in pairs beyond MAX_PAIRS, and rows with a null."""
        cfg = self.config
        counted = view.value_counts([cfg.actual, cfg.predicted], top=MAX_PAIRS)
        pairs = [tuple(v) for v in counted.values]
        result = confusion_matrix(
            pairs, counted.counts, top_labels=cfg.top_labels, normalize=cfg.normalize
        )
        return result, int(counted.other), int(counted.nulls)

    def render(self, view: Any) -> Any:
        """A Bokeh heatmap (counts or rates in each cell, hover for both) with a caption."""
        import panel as pn

        result, beyond, nulls = self.matrix(view)
        notes = [f"{result.total:,} rows, accuracy {result.accuracy:.1%}"]
        if nulls:
            notes.append(f"{nulls:,} rows with a missing label left out")
        if beyond:
            notes.append(f"{beyond:,} rows in rarer label pairs not shown")
        caption = pn.pane.Markdown("; ".join(notes), margin=(0, 10))
        return pn.Column(caption, pn.pane.Bokeh(self._figure(result)), sizing_mode="stretch_width")

    def _figure(self, result: Matrix) -> Any:
        from bokeh.models import ColumnDataSource, LinearColorMapper
        from bokeh.palettes import Blues256
        from bokeh.plotting import figure

        cfg = self.config
        names = [str(label) for label in result.labels]
        n = len(names)
        high = float(result.values.max()) if result.values.size else 0.0
        rows: Mapping[str, list[Any]] = {
            "actual": [names[i] for i in range(n) for _ in range(n)],
            "predicted": [names[j] for _ in range(n) for j in range(n)],
            "count": result.counts.ravel().tolist(),
            "value": result.values.ravel().tolist(),
        }
        fmt = (lambda v: f"{v:,.0f}") if cfg.normalize == "none" else (lambda v: f"{v:.2f}")
        text = [fmt(v) for v in rows["value"]]
        dark = [v > high * 0.6 for v in rows["value"]]
        source = ColumnDataSource(
            {**rows, "text": text, "text_color": ["white" if d else "#222" for d in dark]}
        )
        size = min(max(360, 45 * n + 140), 900)
        fig = figure(
            x_range=names,
            y_range=list(reversed(names)),
            x_axis_label=f"predicted ({cfg.predicted})",
            y_axis_label=f"actual ({cfg.actual})",
            tools="hover,save,reset",
            toolbar_location="right",
            width=size,
            height=size,
            tooltips=[
                ("actual", "@actual"),
                ("predicted", "@predicted"),
                ("rows", "@count{0,0}"),
                ("value", "@value{0.000}"),
            ],
        )
        mapper = LinearColorMapper(palette=Blues256[::-1], low=0, high=high or 1.0)
        fig.rect(
            x="predicted",
            y="actual",
            width=1,
            height=1,
            source=source,
            fill_color={"field": "value", "transform": mapper},
            line_color="white",
        )
        fig.text(
            x="predicted",
            y="actual",
            text="text",
            source=source,
            text_align="center",
            text_baseline="middle",
            text_color="text_color",
            text_font_size="11px" if n <= 15 else "8px",
        )
        fig.xaxis.major_label_orientation = 0.8 if n > 8 else 0
        fig.grid.visible = False
        return fig
