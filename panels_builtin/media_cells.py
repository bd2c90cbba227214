"""Media cells: an audio or video player, an HTML page in a sandboxed frame, a 3D object's
thumbnail, a plot's or a molecule's file name.

A cell plays only the bytes its record carries (a ``data:`` URI: nothing is
fetched from the server's disk), and says when a file was too large to embed.
An HTML page goes only into ``<iframe sandbox="" srcdoc="...">``: no scripts, no
same origin, never markup of the page. File names, captions and page text are
escaped with ``panels_core.escape``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from panels_core.data.media_files import EMBED_BYTES
from panels_core.escape import html_attr, html_text
from panels_core.types import (
    AudioType,
    HtmlType,
    MediaType,
    MoleculeType,
    Object3DType,
    PlotType,
    VideoType,
)

__all__ = ["MIME_TYPES", "media_cell"]

MIME_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "webm": "video/webm",
    "ogv": "video/ogg",
    "mov": "video/quicktime",
    "gif": "image/gif",
}
"""The MIME type a player is given for each file format (others: ``application/octet-stream``)."""
_MUTED = "color:#777;font-size:11px"


def _uri(data: bytes, file_format: str) -> str:
    mime = MIME_TYPES.get(file_format, "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB" if n >= 1e3 else f"{n} bytes"


def _label(record: Mapping[str, Any], extra: str = "") -> str:
    """The file name (and caption, and ``extra``) as a small line of text."""
    caption = record.get("caption")
    parts = [html_text(record.get("name") or "")]
    if caption:
        parts.append(f"<i>{html_text(caption)}</i>")
    if extra:
        parts.append(html_text(extra))
    return f'<div style="{_MUTED}">{" · ".join(parts)}</div>'


def _not_embedded(record: Mapping[str, Any]) -> str:
    """The file name, and why the file cannot play here."""
    size = int(record.get("size") or 0)
    if size <= EMBED_BYTES:
        return _label(record, "file not embedded")
    return _label(
        record,
        f"{_size(size)}: too large to embed (over {_size(EMBED_BYTES)}); "
        "open the file from the export's folder",
    )


def _png(preview: Any, alt: str, width: int, height: int) -> str:
    uri = "data:image/png;base64," + base64.b64encode(bytes(preview)).decode("ascii")
    return (
        f'<img src="{uri}" alt="{html_attr(alt)}" width="{width}" height="{height}" '
        'style="display:block"/>'
    )


def audio_cell(record: Mapping[str, Any]) -> str:
    """An ``<audio>`` player of the embedded file, its waveform, name and sample rate."""
    rate, duration = record.get("sample_rate"), record.get("duration")
    extra = " ".join(
        [f"{rate:g} Hz" if rate else "", f"{duration:.2f} s" if duration is not None else ""]
    ).strip()
    wave = _png(record["preview"], "waveform", 96, 24) if record.get("preview") else ""
    if not record.get("data"):
        return f"<div>{wave}{_not_embedded(record)}</div>"
    player = (
        f'<audio controls preload="none" style="height:28px;width:180px" '
        f'src="{_uri(bytes(record["data"]), record.get("format") or "")}"></audio>'
    )
    return f"<div>{player}{wave}{_label(record, extra)}</div>"


def video_cell(record: Mapping[str, Any]) -> str:
    """A ``<video>`` player of the embedded file (a GIF as an image), and its name."""
    if not record.get("data"):
        return _not_embedded(record)
    uri = _uri(bytes(record["data"]), record.get("format") or "")
    if record.get("format") == "gif":
        shown = f'<img src="{uri}" alt="video" style="max-width:160px;max-height:120px"/>'
    else:
        shown = f'<video controls preload="metadata" width="160" src="{uri}"></video>'
    return f"<div>{shown}{_label(record)}</div>"


def html_cell(record: Mapping[str, Any]) -> str:
    """The page in ``<iframe sandbox="" srcdoc="...">``: shown, never run, never inline."""
    if not record.get("data"):
        return _not_embedded(record)
    page = bytes(record["data"]).decode("utf-8", errors="replace")
    frame = (
        f'<iframe sandbox="" srcdoc="{html_attr(page)}" referrerpolicy="no-referrer" '
        f'title="{html_attr(record.get("name") or "html")}" width="240" height="120" '
        'style="border:1px solid #ddd;background:#fff"></iframe>'
    )
    return f"<div>{frame}{_label(record)}</div>"


def object3d_cell(record: Mapping[str, Any]) -> str:
    """A point cloud's front-view thumbnail and point count; a mesh's file name."""
    count = record.get("count")
    extra = f"{count:,} points" if count is not None else ""
    if not record.get("preview"):
        return _label(record, extra)
    return f"<div>{_png(record['preview'], '3D points', 64, 64)}{_label(record, extra)}</div>"


def plot_cell(record: Mapping[str, Any], media_type: PlotType) -> str:
    """A saved plot as its file name and where to open it (its script never runs here)."""
    library = media_type.library or "saved"
    return _label(record, f"{library} plot: open the file from the export's folder")


def molecule_cell(record: Mapping[str, Any]) -> str:
    """A molecule's file name and its atom count when the format tells it."""
    count = record.get("count")
    return _label(record, f"{count:,} atoms" if count is not None else "")


def media_cell(record: Mapping[str, Any] | None, media_type: MediaType) -> str:
    """One media cell of a column of ``media_type`` (a MEDIA_STRUCT record, or None)."""
    if record is None:
        return f'<span style="color:#999">no {html_text(media_type.kind)}</span>'
    match media_type:
        case AudioType():
            return audio_cell(record)
        case VideoType():
            return video_cell(record)
        case HtmlType():
            return html_cell(record)
        case Object3DType():
            return object3d_cell(record)
        case PlotType():
            return plot_cell(record, media_type)
        case MoleculeType():
            return molecule_cell(record)
        case _:
            return _label(record)
