"""Table cells: how one value of each column type is drawn, and a page's column turned
into display values.

Numbers are formatted, images become thumbnails with their boxes (SVG) and
masks (drawn in), media files players or previews (``media_cells``), embeddings a "dim 64" badge with a sparkline, grouped numbers
a mini histogram, compared numbers one bar per source. ``cell_columns`` says
which columns a view shows and how each is drawn; ``CellRenderer`` draws a page
of them. The table and joined-table panels show them through the pager.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from panels_builtin.captions import format_count, format_number
from panels_builtin.media_cells import media_cell
from panels_builtin.palette import category_palette
from panels_core.escape import html_attr, html_text
from panels_core.panel import columns_of
from panels_core.query.errors import QueryError
from panels_core.types import (
    BooleanType,
    CategoryType,
    ComparedType,
    EmbeddingType,
    ImageType,
    JoinedTableType,
    ListType,
    MediaType,
    NumberType,
    StringType,
    TimestampType,
    strip_optional,
)

__all__ = [
    "HIST_BINS",
    "LIST_THUMBNAILS",
    "CellColumn",
    "CellRenderer",
    "cell_columns",
    "cell_style",
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


def _image_png(
    data: bytes,
    masks_record: Mapping[str, Any],
    layers: Sequence[str],
    colors: Sequence[str],
    size: int,
) -> bytes:
    """The thumbnail PNG, with the given mask layers (those present) blended in."""
    from panels_core.data.media import thumbnail_png

    shown_masks = [layer for layer in layers if masks_record.get(layer)]
    if not shown_masks:
        return thumbnail_png(data, size)
    return _thumbnail_with_masks(
        data,
        tuple(bytes(masks_record[layer]) for layer in shown_masks),
        tuple(_rgb(c) for c in colors),
        size,
    )


def _box_shapes(
    boxes_record: Mapping[str, Any],
    image_type: ImageType,
    layers: Sequence[str],
    colors: Sequence[str],
    w: int,
    h: int,
) -> list[str]:
    """SVG rectangles and labels of the boxes of ``layers`` on a ``w`` x ``h`` thumbnail."""
    names = {c.id: c.name for c in image_type.classes}
    shapes = []
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
    return shapes


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
    if record is None or not record.get("data"):
        return '<span style="color:#999">no image</span>'
    data = bytes(record["data"])
    width = int(record.get("width") or 0) or size
    height = int(record.get("height") or 0) or size
    scale = size / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    colors = _class_colors(image_type)
    masks = mask_layers if mask_layers is not None else image_type.mask_layers
    try:
        png = _image_png(data, record.get("masks") or {}, masks, colors, size)
    except Exception as exc:  # a corrupt image must not break the page
        return f'<span style="color:#b00">image unreadable: {html_text(type(exc).__name__)}</span>'
    layers = box_layers if box_layers is not None else image_type.box_layers
    shapes = _box_shapes(record.get("boxes") or {}, image_type, layers, colors, w, h)
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


def cell_style(t: Any) -> str:
    """How a column of type ``t`` (optional stripped) is drawn: ``"number"``, ``"boolean"``,
    ``"text"`` (the Tabulator formats and sorts these) or ``"html"`` (a cell function)."""
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
            out.append(CellColumn(name, name.split(".", 1)[1], side, t, cell_style(t)))
        else:
            out.append(CellColumn(name, name, None, t, cell_style(t)))
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
        if isinstance(t, MediaType):
            return [media_cell(v, t) for v in values]
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
        if isinstance(item, MediaType):  # a group's media files by name, never their bytes
            values = [None if v is None else [m and m.get("name") for m in v] for v in values]
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
        sub = CellColumn("", "", None, item, cell_style(item))
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
