"""The Table panel: any table, one page at a time, with typed cells.

Only the current page is ever fetched (``view.page(offset, limit, columns)``
plus ``view.count()``; a grouped view pages through ``view.grouped()`` with the
page as the query's offset/limit), so a 10M-row Parquet table opens as fast
as a small one. Clicking a header sorts through the view's Query, not the
browser. Each column type has its own cell function: numbers are formatted,
images become thumbnails with their boxes (SVG) and masks (drawn in),
embeddings a "dim 64" badge with a sparkline, grouped numbers a mini
histogram, compared numbers one bar per source.

``PagedTable`` (the pager, the Tabulator and the sort handling) is shared with
the joined-table panel.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
from pydantic import Field, ValidationInfo, field_validator

from panels_builtin._common import category_palette, format_count, format_number, message
from panels_core.escape import html_attr, html_text, markdown_text
from panels_core.panel import Column, Panel, PanelConfig, columns_of
from panels_core.query.errors import QueryError
from panels_core.query.model import SortKey
from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    ComparedType,
    EmbeddingType,
    ImageType,
    JoinedTableType,
    ListType,
    NumberType,
    StringType,
    TimestampType,
    strip_optional,
)

__all__ = [
    "CellColumn",
    "PagedTable",
    "TableConfig",
    "TablePanel",
    "cell_columns",
    "compared_histogram_cell",
    "compared_number_cell",
    "embedding_cell",
    "histogram_cell",
    "image_cell",
    "list_cell",
    "number_formatter",
    "text_cell",
]

HIST_BINS = 12
"""Bins of a mini histogram drawn from raw grouped values (engine histograms keep theirs)."""
LIST_THUMBNAILS = 4
"""A grouped image column shows this many thumbnails per group."""
_SVG_W, _SVG_H = 96, 28


# --------------------------------------------------------------------------- config


def _layers_of(view_type: Any, attribute: str) -> set[str]:
    found: set[str] = set()
    for t in columns_of(view_type).values():
        t = strip_optional(t)
        while isinstance(t, ListType | ComparedType):
            t = strip_optional(t.item)
        if isinstance(t, ImageType):
            found.update(getattr(t, attribute))
    return found


class TableConfig(PanelConfig):
    """What the table shows: which columns, how many rows a page, how cells look."""

    columns: Annotated[
        list[str],
        Column(accepts=AnyType(), multiple=True, required=False),
        Field(description="columns to show, in order; empty shows every column"),
    ] = []
    page_size: int = Field(50, ge=1, le=500, description="rows per page")
    precision: int = Field(4, ge=0, le=12, description="decimals shown for non-integer numbers")
    thumbnail_size: int = Field(
        64, ge=16, le=256, description="image thumbnails, in pixels on their longer side"
    )
    box_layers: list[str] | None = Field(
        None, description="box layers drawn over images; None draws every layer, [] none"
    )
    mask_layers: list[str] | None = Field(
        None, description="mask layers drawn into images; None draws every layer, [] none"
    )

    @field_validator("box_layers", "mask_layers", mode="after")
    @classmethod
    def _known_layers(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        view_type = (info.context or {}).get("view_type")
        if value is None or view_type is None:
            return value
        attribute = info.field_name or "box_layers"
        known = _layers_of(view_type, attribute)
        unknown = [layer for layer in value if layer not in known]
        if unknown:
            listed = ", ".join(f"`{k}`" for k in sorted(known)) or "none"
            raise ValueError(
                f"unknown layer `{unknown[0]}`; the image columns' {attribute.replace('_', ' ')} "
                f"are {listed}"
            )
        return value


# --------------------------------------------------------------------------- cell functions


def number_formatter(integer: bool, precision: int = 4) -> Any:
    """The Bokeh NumberFormatter of a number column: thousands separators, ``precision``
    decimals at most (none for integers), nulls and NaN shown as such."""
    from bokeh.models.widgets.tables import NumberFormatter

    pattern = "0,0" if integer or precision == 0 else "0,0.[" + "0" * precision + "]"
    return NumberFormatter(format=pattern, nan_format="NaN", null_format="null", text_align="right")


def text_cell(value: Any, limit: int = 120) -> str:
    """Any value as escaped text (JSON for lists and records), cut at ``limit`` characters."""
    if value is None:
        return '<span style="color:#999">null</span>'
    if isinstance(value, bytes):
        text = f"<{len(value):,} bytes>"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html_text(text)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@functools.lru_cache(maxsize=2048)
def _thumbnail_with_masks(
    data: bytes, masks: tuple[bytes, ...], colors: tuple[tuple[int, int, int], ...], size: int
) -> bytes:
    """A PNG thumbnail with each mask's non-zero class ids blended in their class colour."""
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as img:
        base = img.convert("RGBA")
    for mask_png in masks:
        with PILImage.open(io.BytesIO(mask_png)) as mask_img:
            ids = np.asarray(mask_img.convert("L").resize(base.size, PILImage.NEAREST))
        overlay = np.zeros((*ids.shape, 4), dtype=np.uint8)
        for class_id in np.unique(ids):
            if class_id == 0:
                continue
            overlay[ids == class_id] = (*colors[int(class_id) % len(colors)], 110)
        base = PILImage.alpha_composite(base, PILImage.fromarray(overlay, "RGBA"))
    if max(base.size) > size:
        base.thumbnail((size, size))
    buffer = io.BytesIO()
    base.save(buffer, format="PNG")
    return buffer.getvalue()


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _class_colors(image_type: ImageType) -> list[str]:
    ids = [c.id for c in image_type.classes]
    return category_palette(max(10, max(ids, default=0) + 1))


def image_cell(
    record: Mapping[str, Any] | None,
    image_type: ImageType,
    *,
    size: int = 64,
    box_layers: Sequence[str] | None = None,
    mask_layers: Sequence[str] | None = None,
) -> str:
    """An image struct as an ``<img>`` thumbnail (PNG data URI, at most ``size`` pixels a
    side) shown ``size`` pixels on its longer side, with its boxes as SVG rectangles
    labelled by class name and its masks blended into the thumbnail.

    ``box_layers`` / ``mask_layers``: the layers drawn (None: every layer).
    """
    from panels_core.data.media import thumbnail_png

    if record is None or not record.get("data"):
        return '<span style="color:#999">no image</span>'
    data = bytes(record["data"])
    width = int(record.get("width") or 0) or size
    height = int(record.get("height") or 0) or size
    scale = size / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    names = {c.id: c.name for c in image_type.classes}
    colors = _class_colors(image_type)

    masks_record = record.get("masks") or {}
    shown_masks = [
        layer
        for layer in (mask_layers if mask_layers is not None else image_type.mask_layers)
        if masks_record.get(layer)
    ]
    try:
        if shown_masks:
            png = _thumbnail_with_masks(
                data,
                tuple(bytes(masks_record[layer]) for layer in shown_masks),
                tuple(_rgb(c) for c in colors),
                size,
            )
        else:
            png = thumbnail_png(data, size)
    except Exception as exc:  # a corrupt image must not break the page
        return f'<span style="color:#b00">image unreadable: {html_text(type(exc).__name__)}</span>'

    shapes = []
    boxes_record = record.get("boxes") or {}
    layers = box_layers if box_layers is not None else image_type.box_layers
    for layer in layers:
        # the column's first layer solid, the others dashed, so two layers tell apart
        first = image_type.box_layers[0] if image_type.box_layers else layer
        dash = "" if layer == first else ' stroke-dasharray="3 2"'
        for box in boxes_record.get(layer) or []:
            class_id = box.get("class_id")
            label = names.get(class_id) if class_id is not None else None
            label = label or box.get("caption") or ("" if class_id is None else str(class_id))
            color = colors[int(class_id or 0) % len(colors)]
            x0, y0 = float(box["x_min"]) * w, float(box["y_min"]) * h
            bw = (float(box["x_max"]) - float(box["x_min"])) * w
            bh = (float(box["y_max"]) - float(box["y_min"])) * h
            scores = dict(box.get("scores") or [])
            tip = f"{layer}: {label}" + "".join(f" {k}={v:.3g}" for k, v in scores.items())
            shapes.append(
                f'<rect data-layer="{html_attr(layer)}" x="{x0:.2f}" y="{y0:.2f}" '
                f'width="{bw:.2f}" height="{bh:.2f}" fill="none" stroke="{color}" '
                f'stroke-width="1.5"{dash}><title>{html_text(tip)}</title></rect>'
                f'<text x="{x0 + 1:.2f}" y="{max(y0 - 1, 7):.2f}" font-size="7" '
                f'fill="{color}">{html_text(label)}</text>'
            )
    img = (
        f'<img src="{_data_uri(png)}" width="{w}" height="{h}" '
        'style="image-rendering:pixelated;display:block" alt="image"/>'
    )
    if not shapes:
        return f'<div style="width:{w}px;height:{h}px">{img}</div>'
    svg = (
        f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'style="position:absolute;left:0;top:0;overflow:visible">{"".join(shapes)}</svg>'
    )
    return f'<div style="position:relative;width:{w}px;height:{h}px">{img}{svg}</div>'


def embedding_cell(values: Sequence[float] | None, max_points: int = 48) -> str:
    """A ``dim N`` badge and a sparkline of the vector (at most ``max_points`` points)."""
    if values is None:
        return '<span style="color:#999">null</span>'
    vec = np.asarray(values, dtype=np.float64)
    badge = (
        '<span style="background:#eef;border-radius:3px;padding:0 4px;font-size:11px">'
        f"dim {vec.size}</span>"
    )
    if vec.size < 2:
        return badge
    if vec.size > max_points:
        vec = vec[np.linspace(0, vec.size - 1, max_points).round().astype(int)]
    finite = np.isfinite(vec)
    if not finite.any():
        return badge
    lo, hi = float(vec[finite].min()), float(vec[finite].max())
    span = hi - lo or 1.0
    w, h = 60, 16
    xs = np.linspace(0, w, vec.size)
    points = " ".join(
        f"{x:.1f},{h - (v - lo) / span * h:.1f}" for x, v, ok in zip(xs, vec, finite) if ok
    )
    line = f'<polyline points="{points}" fill="none" stroke="#4c72b0" stroke-width="1"/>'
    return f'{badge} <svg width="{w}" height="{h}" style="vertical-align:middle">{line}</svg>'


def _bars(
    series: Sequence[tuple[np.ndarray, str]], width: int, height: int, top: float
) -> list[str]:
    """SVG rects: each series' counts side by side within each bin, heights ∝ counts."""
    n_bins = len(series[0][0]) if series else 0
    if n_bins == 0:
        return []
    slot = width / n_bins
    bar = slot / len(series)
    rects = []
    for s, (counts, color) in enumerate(series):
        for i, c in enumerate(counts):
            bh = float(c) / top * height if top > 0 else 0.0
            rects.append(
                f'<rect x="{i * slot + s * bar:.2f}" y="{height - bh:.2f}" '
                f'width="{max(bar - 0.5, 0.5):.2f}" height="{bh:.2f}" fill="{color}" '
                f'data-count="{int(c)}"/>'
            )
    return rects


def histogram_cell(
    counts: Sequence[int],
    edges: Sequence[float],
    *,
    width: int = _SVG_W,
    height: int = _SVG_H,
    color: str = "#4c72b0",
) -> str:
    """A mini histogram (inline SVG): one rect per bin, height proportional to its count."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return '<span style="color:#999">no values</span>'
    tip = f"{format_count(total)} values in [{format_number(edges[0])}, {format_number(edges[-1])}]"
    rects = _bars([(counts, color)], width, height, float(counts.max()))
    return (
        f'<svg width="{width}" height="{height}"><title>{html_text(tip)}</title>'
        f"{''.join(rects)}</svg>"
    )


def compared_histogram_cell(
    hists: Mapping[str, Sequence[int]],
    edges: Sequence[float],
    *,
    width: int = _SVG_W,
    height: int = _SVG_H,
) -> str:
    """A mini multi-histogram: per bin one bar per source (source colours, shared scale)."""
    colors = category_palette(len(hists))
    series = [(np.asarray(c, dtype=np.int64), col) for c, col in zip(hists.values(), colors)]
    top = max((float(c.max()) for c, _ in series if c.size), default=0.0)
    if top == 0:
        return '<span style="color:#999">no values</span>'
    tip = " | ".join(f"{name}: {format_count(int(np.sum(c)))}" for name, c in hists.items())
    return (
        f'<svg width="{width}" height="{height}"><title>{html_text(tip)}</title>'
        f"{''.join(_bars(series, width, height, top))}</svg>"
    )


def compared_number_cell(
    values: Mapping[str, float | None],
    scale: float,
    *,
    precision: int = 4,
    height: int = 20,
) -> str:
    """One small bar per source, height proportional to ``|value| / scale``, then the values.

    ``scale`` is the largest magnitude of the column on the page, so bars compare across rows.
    """
    colors = category_palette(len(values))
    rects, labels = [], []
    bar = 10
    for i, ((name, value), color) in enumerate(zip(values.items(), colors)):
        missing = value is None or not math.isfinite(value)
        bh = 0.0 if missing or scale <= 0 else abs(float(value)) / scale * height
        shown = "null" if value is None else f"{value:.{precision}g}"
        rects.append(
            f'<rect x="{i * (bar + 2)}" y="{height - bh:.2f}" width="{bar}" height="{bh:.2f}" '
            f'fill="{color}" data-value="{shown}"><title>{html_text(name)}: {shown}</title></rect>'
        )
        labels.append(f'<span style="color:{color}">{html_text(shown)}</span>')
    svg_w = len(values) * (bar + 2)
    svg = f'<svg width="{svg_w}" height="{height}" style="vertical-align:middle">{"".join(rects)}</svg>'
    return f"{svg} {' '.join(labels)}"


def list_cell(
    values: Sequence[Any] | None, item_type: Any, render_item: Callable[[Any], str]
) -> str:
    """A grouped column of non-numbers: images as a few thumbnails, other values as
    ``value xcount`` for the most frequent values, and how many there are."""
    if values is None:
        return '<span style="color:#999">null</span>'
    n = len(values)
    if isinstance(strip_optional(item_type), ImageType):
        shown = [render_item(v) for v in values[:LIST_THUMBNAILS]]
        more = f" +{n - LIST_THUMBNAILS}" if n > LIST_THUMBNAILS else ""
        items = "".join(
            f'<div style="display:inline-block;margin-right:2px">{s}</div>' for s in shown
        )
        return f"{items}{more}"
    counts: dict[str, int] = {}
    for v in values:
        key = v if isinstance(v, str) else json.dumps(v, default=str)
        counts[key] = counts.get(key, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    parts = [f"{html_text(k)} x{c}" for k, c in top]
    rest = " …" if len(counts) > 3 else ""
    return f"{', '.join(parts)}{rest} <span style='color:#999'>({n})</span>"


# --------------------------------------------------------------------------- columns


@dataclasses.dataclass(frozen=True)
class CellColumn:
    """One shown column: the name the engine resolves (also the DataFrame column), its
    header title, its header group, its type (optional stripped) and how it is drawn."""

    name: str
    title: str
    group: str | None
    type: Any
    style: str  # "number" | "text" | "boolean" | "html"

    @property
    def sortable(self) -> bool:
        """Numbers, text, booleans and timestamps sort through the query."""
        return self.style != "html"


def _style(t: Any) -> str:
    if isinstance(t, NumberType):
        return "number"
    if isinstance(t, BooleanType):
        return "boolean"
    if isinstance(t, StringType | CategoryType | TimestampType):
        return "text"
    return "html"


def cell_columns(view_type: Any, names: Sequence[str] | None = None) -> list[CellColumn]:
    """The columns of a view type to show (``names`` or all, in order), typed for their cells.

    A joined view's columns are ``<side>.<column>`` and grouped under the side's name.
    """
    available = columns_of(view_type)
    chosen = list(names) if names else list(available)
    sides: tuple[str, ...] = ()
    if isinstance(view_type, JoinedTableType):
        sides = (view_type.left_name, view_type.right_name)
    out = []
    for name in chosen:
        if name not in available:
            shown = ", ".join(f"`{c}`" for c in list(available)[:12])
            raise QueryError(f"unknown column `{name}`; the columns are {shown}")
        t = strip_optional(available[name])
        side = name.split(".", 1)[0] if sides and "." in name else None
        if side in sides:
            out.append(CellColumn(name, name.split(".", 1)[1], side, t, _style(t)))
        else:
            out.append(CellColumn(name, name, None, t, _style(t)))
    return out


# --------------------------------------------------------------------------- page -> cells


def _numbers(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _is_hist(value: Any) -> bool:
    return isinstance(value, Mapping) and "edges" in value and "counts" in value


def _shared_edges(cells: Sequence[Any]) -> np.ndarray | None:
    """Bin edges shared by a page of raw number lists (None when no finite value)."""
    values = [
        float(x)
        for cell in cells
        if cell is not None and not _is_hist(cell)
        for x in cell
        if x is not None and math.isfinite(float(x))
    ]
    if not values:
        return None
    lo, hi = min(values), max(values)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, HIST_BINS + 1)


def _counts(cell: Any, edges: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(counts, edges) of one grouped number cell: an engine histogram or raw values."""
    if cell is None:
        return None
    if _is_hist(cell):
        return np.asarray(cell["counts"], dtype=np.int64), np.asarray(cell["edges"], dtype=float)
    if edges is None:
        return np.zeros(HIST_BINS, dtype=np.int64), np.linspace(0, 1, HIST_BINS + 1)
    vals = _numbers(cell)
    counts, _ = np.histogram(vals[np.isfinite(vals)], bins=edges)
    return counts.astype(np.int64), edges


class CellRenderer:
    """Turns a page's Arrow column into display values, one function per type."""

    def __init__(
        self,
        precision: int = 4,
        thumbnail_size: int = 64,
        box_layers: Sequence[str] | None = None,
        mask_layers: Sequence[str] | None = None,
    ) -> None:
        self.precision = precision
        self.thumbnail_size = thumbnail_size
        self.box_layers = None if box_layers is None else list(box_layers)
        self.mask_layers = None if mask_layers is None else list(mask_layers)

    def image(self, record: Any, image_type: ImageType) -> str:
        """One image cell with the layers currently switched on."""
        return image_cell(
            record,
            image_type,
            size=self.thumbnail_size,
            box_layers=self.box_layers,
            mask_layers=self.mask_layers,
        )

    def column(self, column: CellColumn, values: list[Any]) -> list[Any] | np.ndarray:
        """Display values of one column of the page."""
        t = column.type
        if column.style == "number":
            return _numbers(values)
        if column.style == "boolean":
            return [None if v is None else bool(v) for v in values]
        if column.style == "text":
            return [None if v is None else str(v) for v in values]
        if isinstance(t, ImageType):
            return [self.image(v, t) for v in values]
        if isinstance(t, EmbeddingType):
            return [embedding_cell(v) for v in values]
        if isinstance(t, ListType):
            return self._lists(values, strip_optional(t.item))
        if isinstance(t, ComparedType):
            return self._compared(values, t)
        return [text_cell(v) for v in values]

    def _lists(self, values: list[Any], item: Any) -> list[str]:
        if isinstance(item, NumberType):
            edges = _shared_edges(values)
            out = []
            for cell in values:
                got = _counts(cell, edges)
                out.append(text_cell(None) if got is None else histogram_cell(*got))
            return out
        if isinstance(item, ImageType):
            return [list_cell(v, item, lambda r, t=item: self.image(r, t)) for v in values]
        return [list_cell(v, item, text_cell) for v in values]

    def _compared(self, values: list[Any], t: ComparedType) -> list[str]:
        item = strip_optional(t.item)
        if isinstance(item, NumberType):
            numbers = [abs(float(x)) for v in values if v for x in v.values() if x is not None]
            finite = [x for x in numbers if math.isfinite(x)]
            scale = max(finite, default=0.0)
            return [
                text_cell(None)
                if v is None
                else compared_number_cell(v, scale, precision=self.precision)
                for v in values
            ]
        if isinstance(item, ListType) and isinstance(strip_optional(item.item), NumberType):
            cells = [c for v in values if v for c in v.values()]
            edges = _shared_edges(cells)
            out = []
            for v in values:
                if v is None:
                    out.append(text_cell(None))
                    continue
                hists, shared = {}, None
                for name, cell in v.items():
                    got = _counts(cell, edges)
                    if got is not None:
                        hists[name], shared = got
                out.append(compared_histogram_cell(hists, shared) if hists else text_cell(None))
            return out
        sub = CellColumn("", "", None, item, _style(item))
        out = []
        for v in values:
            if v is None:
                out.append(text_cell(None))
                continue
            per_source = self.column(sub, list(v.values()))
            parts = [
                f"<b>{html_text(str(name))}</b>: "
                + (html_text(str(shown)) if sub.style != "html" else str(shown))
                for name, shown in zip(v.keys(), per_source)
            ]
            out.append(" | ".join(parts))
        return out


# --------------------------------------------------------------------------- the pager


class _PageTabulator:
    """Builds the Tabulator subclass lazily (importing Panel only when rendering)."""

    cls: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls.cls is None:
            import panel as pn

            class PageTabulator(pn.widgets.Tabulator):  # type: ignore[misc]
                """A Tabulator whose rows arrive already sorted by the engine."""

                def _sort_df(self, df: Any) -> Any:
                    return df

            cls.cls = PageTabulator
        return cls.cls


class PagedTable:
    """Pages through a View: a Tabulator holding only the current page, first/previous/
    next/last buttons, "rows a-b of N", and header sorting turned into the Query's sort.

    ``columns``: names the view resolves (all when None) or ready CellColumns.
    ``page_table`` (Arrow) and ``frame`` (the displayed DataFrame) hold the current
    page; ``total`` the view's row count; ``fetches`` counts engine page calls.
    ``on_sort``, when set, gets the new Query after a header sort (a workspace saves it).
    """

    def __init__(
        self,
        view: Any,
        columns: Sequence[str] | Sequence[CellColumn] | None = None,
        page_size: int = 50,
        cells: CellRenderer | None = None,
    ) -> None:
        self.view = view
        self.page_size = int(page_size)
        self.cells = cells or CellRenderer()
        if columns and all(isinstance(c, CellColumn) for c in columns):
            self.columns: list[CellColumn] = list(columns)  # type: ignore[arg-type]
        else:
            self.columns = cell_columns(view.type, columns)  # type: ignore[arg-type]
        self.counts: Any = None  # a join's matched/unmatched counts (joined-table panel)
        self.on_sort: Callable[[Any], None] | None = None  # called with the sorted Query
        self.offset = 0
        self.fetches = 0
        self.error: str | None = None
        self.total = view.count()
        self.page_table: pa.Table = pa.table({})
        self.frame: Any = None
        self._build_widgets()
        self.refresh()

    # -- data ---------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """The engine names of the shown columns."""
        return [c.name for c in self.columns]

    @property
    def last_offset(self) -> int:
        """The offset of the last page."""
        return max(0, (self.total - 1) // self.page_size * self.page_size)

    def _fetch(self) -> pa.Table:
        self.fetches += 1
        query = self.view.query
        if query.group_by:
            start = query.offset + self.offset
            limit = self.page_size
            if query.limit is not None:
                limit = max(0, min(limit, query.limit - self.offset))
            grouped = self.view.with_query(offset=start, limit=limit).grouped()
            return grouped.select(self.names)
        return self.view.page(self.offset, self.page_size, self.names)

    def _frame(self, table: pa.Table) -> Any:
        import pandas as pd

        data = {}
        for column in self.columns:
            values = table.column(column.name).to_pylist() if table.num_rows else []
            shown = self.cells.column(column, values)
            # object columns keep None as None (pandas would make text nulls NaN)
            dtype = np.float64 if column.style == "number" else object
            data[column.name] = pd.Series(shown, dtype=dtype)
        return pd.DataFrame(data, columns=self.names)

    def refresh(self) -> None:
        """Fetch the page at ``offset`` and show it (an engine error is shown, not raised)."""
        try:
            table = self._fetch()
        except QueryError as exc:
            self.error = str(exc)
            self._show()
            return
        self.error = None
        self.page_table = table
        self.frame = self._frame(table)
        self._show()

    def redraw(self) -> None:
        """Re-draw the current page's cells (after a layer toggle) without fetching."""
        self.frame = self._frame(self.page_table)
        self._show()

    # -- navigation ---------------------------------------------------------------------

    def go_to(self, offset: int) -> None:
        """Show the page starting at ``offset`` (clamped to the rows there are)."""
        self.offset = min(max(0, int(offset)), self.last_offset)
        self.refresh()

    def first(self, *_: Any) -> None:
        """Show the first page."""
        self.go_to(0)

    def previous(self, *_: Any) -> None:
        """Show the page before this one."""
        self.go_to(self.offset - self.page_size)

    def next(self, *_: Any) -> None:
        """Show the page after this one."""
        self.go_to(self.offset + self.page_size)

    def last(self, *_: Any) -> None:
        """Show the last page."""
        self.go_to(self.last_offset)

    # -- sorting ------------------------------------------------------------------------

    def sort_keys(self, sorters: Sequence[Mapping[str, Any]]) -> tuple[SortKey, ...]:
        """Tabulator sorters (``[{"field": name, "dir": "asc"|"desc"}]``, first = primary)
        as the Query's SortKeys; fields that cannot sort are refused with a QueryError."""
        by_name = {c.name: c for c in self.columns}
        keys = []
        for sorter in sorters:
            field = str(sorter.get("field", ""))
            column = by_name.get(field)
            if column is None or not column.sortable:
                raise QueryError(f"cannot sort by `{field}`: sort by a number, text or time column")
            keys.append(SortKey(column=field, descending=sorter.get("dir") == "desc"))
        return tuple(keys)

    def apply_sorters(self, sorters: Sequence[Mapping[str, Any]]) -> None:
        """Sort the view by the clicked headers and go back to the first page."""
        try:
            keys = self.sort_keys(sorters)
            view = self.view.with_query(sort=[k.model_dump() for k in keys])
            total = view.count()
        except QueryError as exc:
            self.error = str(exc)
            self._show()
            return
        self.view, self.total, self.offset = view, total, 0
        self.refresh()
        if self.on_sort is not None:
            self.on_sort(view.query)

    def _on_sorters(self, event: Any) -> None:
        self.apply_sorters(event.new or [])

    # -- widgets ------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        import panel as pn

        formatters: dict[str, Any] = {}
        for column in self.columns:
            if column.style == "number":
                integer = bool(getattr(column.type, "integer", False))
                formatters[column.name] = number_formatter(integer, self.cells.precision)
            elif column.style == "boolean":
                formatters[column.name] = {"type": "tickCross", "allowEmpty": True}
            elif column.style == "html":
                formatters[column.name] = {"type": "html"}
        groups: dict[str, list[str]] = {}
        for column in self.columns:
            if column.group is not None:
                groups.setdefault(column.group, []).append(column.name)
        import pandas as pd

        self.tabulator = _PageTabulator.get()(
            pd.DataFrame({c.name: [] for c in self.columns}),
            formatters=formatters,
            # Tabulator shows titles and group names as HTML
            titles={c.name: html_text(c.title) for c in self.columns},
            groups={html_text(name): names for name, names in groups.items()},
            sortable={c.name: c.sortable for c in self.columns},
            show_index=False,
            disabled=True,
            pagination=None,
            layout="fit_data_table",
            sizing_mode="stretch_width",
            configuration={"columnDefaults": {"sorterParams": {"alignEmptyValues": "bottom"}}},
            # the view's own sort shows as header arrows
            sorters=[
                {"field": k.column, "dir": "desc" if k.descending else "asc"}
                for k in self.view.query.sort
                if k.column in self.names
            ],
        )
        self.tabulator.param.watch(self._on_sorters, "sorters")
        glyphs = {"first": "«", "previous": "◀", "next": "▶", "last": "»"}
        self.buttons = {
            name: pn.widgets.Button(
                label=glyph, description=f"{name} page", width=40, margin=(0, 2)
            )
            for name, glyph in glyphs.items()
        }
        for name, button in self.buttons.items():
            button.on_click(getattr(self, name))
        self.info = pn.pane.Markdown("", margin=(0, 8))
        self.alert = pn.pane.Alert(
            "", alert_type="warning", visible=False, sizing_mode="stretch_width"
        )
        self.extra = pn.Row(margin=0)
        self.layout = pn.Column(
            pn.Row(*self.buttons.values(), self.info, self.extra, align="center"),
            self.alert,
            self.tabulator,
            sizing_mode="stretch_width",
        )

    @property
    def status(self) -> str:
        """``rows a-b of N`` for the current page (``no rows`` when empty)."""
        if self.total == 0:
            return "no rows"
        shown = self.page_table.num_rows
        unit = "groups" if self.view.query.group_by else "rows"
        if shown == 0:
            return f"{unit} 0 of {format_count(self.total)}"
        return (
            f"{unit} {format_count(self.offset + 1)}-{format_count(self.offset + shown)} "
            f"of {format_count(self.total)}"
        )

    def _show(self) -> None:
        if self.frame is not None:
            self.tabulator.value = self.frame
        self.info.object = self.status
        at_start, at_end = self.offset <= 0, self.offset >= self.last_offset
        self.buttons["first"].disabled = self.buttons["previous"].disabled = at_start
        self.buttons["next"].disabled = self.buttons["last"].disabled = at_end
        if self.error:
            self.alert.object, self.alert.alert_type, self.alert.visible = (
                markdown_text(self.error),
                "danger",
                True,
            )
        elif self.total == 0:
            self.alert.object = "No rows in this view: the filter keeps none."
            self.alert.alert_type, self.alert.visible = "info", True
        else:
            self.alert.visible = False

    def add_layer_toggles(self) -> None:
        """Check buttons that switch box and mask layers on and off (when images have any)."""
        import panel as pn

        for attribute in ("box_layers", "mask_layers"):
            known = sorted(
                {
                    layer
                    for c in self.columns
                    for layer in getattr(_image_type_in(c.type), attribute, ())
                }
            )
            if not known:
                continue
            current = getattr(self.cells, attribute)
            toggle = pn.widgets.CheckButtonGroup(
                label=attribute.replace("_", " "),
                options=known,
                value=[k for k in known if current is None or k in current],
                color="light",
                margin=(0, 4),
            )

            def changed(event: Any, attribute: str = attribute) -> None:
                setattr(self.cells, attribute, list(event.new))
                self.redraw()

            toggle.param.watch(changed, "value")
            self.extra.append(toggle)


def _image_type_in(t: Any) -> ImageType | None:
    t = strip_optional(t)
    while isinstance(t, ListType | ComparedType):
        t = strip_optional(t.item)
    return t if isinstance(t, ImageType) else None


# --------------------------------------------------------------------------- the Panel


class TablePanel(Panel[TableConfig]):
    """Every row of any table, a page at a time, with typed cells and header sorting."""

    kind = "table"
    title = "Table"
    description = "Rows of any table, paged by the engine; typed cells; sort by header click."

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        """A table's rows lead its cards on a new workspace (a joined table's too, by
        the joined-table panel)."""
        return None if isinstance(table_type, JoinedTableType) else 0

    def cells(self) -> CellRenderer:
        """The cell renderer for this config."""
        c = self.config
        return CellRenderer(c.precision, c.thumbnail_size, c.box_layers, c.mask_layers)

    def build(self, view: Any) -> PagedTable:
        """The pager over ``view`` (its widgets, current page and handlers)."""
        paged = PagedTable(view, self.config.columns, self.config.page_size, self.cells())
        paged.add_layer_toggles()
        return paged

    def render(self, view: Any) -> Any:
        """A Column: pager row, message line and the page's Tabulator."""
        if not columns_of(view.type):
            return message("This table has no columns to show.")
        return self.build(view).layout
