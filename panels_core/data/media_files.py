"""Media files as values (``MediaFile``: audio, video, HTML, 3D objects, plots, molecules) and
their Arrow encoding.

A media column is one Arrow struct (file name, format, size, the bytes when the
cell plays them in the page and they are at most ``EMBED_BYTES``, a PNG
preview, caption, sample rate, duration, a count of points or atoms) whose
field metadata carries the column's media type. Bytes are kept only for the
kinds a cell plays (audio, video, HTML); a plot's or a 3D mesh's file is never
put in a page.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from panels_core.data.media import KIND_KEY
from panels_core.data.media_previews import count_atoms, point_cloud_png, read_points, wav_waveform
from panels_core.media_types import AudioType, HtmlType, MediaType, VideoType
from panels_core.types import parse_type

__all__ = [
    "EMBED_BYTES",
    "MEDIA_STRUCT",
    "PREVIEW_BYTES",
    "MediaFile",
    "file_format",
    "is_media_field",
    "media_field",
    "media_from_arrow",
    "media_to_arrow",
    "media_type_of_field",
]

EMBED_BYTES = 1 << 20
"""Audio, video and HTML files up to this size (1 MiB) are kept to play in the page."""
PREVIEW_BYTES = 64 << 20
"""A WAV, point cloud or molecule file up to this size (64 MiB) is read for its preview."""
MEDIA_TYPE_KEY = b"typed_panels.media_type"
_PLAYED = (AudioType, VideoType, HtmlType)

MEDIA_STRUCT = pa.struct(
    [
        ("name", pa.string()),
        ("format", pa.string()),
        ("size", pa.int64()),
        ("data", pa.binary()),
        ("preview", pa.binary()),
        ("caption", pa.string()),
        ("sample_rate", pa.float64()),
        ("duration", pa.float64()),
        ("count", pa.int64()),
    ]
)
"""The Arrow struct of one media cell."""


def file_format(name: str) -> str:
    """The format of a file by its name, lower case: ``a.WAV`` -> ``wav``,
    ``cloud.pts.json`` -> ``pts.json``, ``p.bokeh.json`` -> ``bokeh.json``."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] == ".json":
        return (suffixes[-2] + suffixes[-1]).lstrip(".")
    return suffixes[-1].lstrip(".") if suffixes else ""


class MediaFile:
    """One media file of a column of ``media_type``: its name, size and what a cell shows.

    ``MediaFile.from_path(path, AudioType())`` reads a file and makes its preview;
    the constructor takes the parts as stored.
    """

    def __init__(
        self,
        media_type: MediaType,
        name: str,
        *,
        size: int = 0,
        data: bytes | None = None,
        preview: bytes | None = None,
        caption: str | None = None,
        sample_rate: float | None = None,
        duration: float | None = None,
        count: int | None = None,
        problem: str | None = None,
    ) -> None:
        if not isinstance(media_type, MediaType):
            raise TypeError(f"MediaFile needs a media type (AudioType(), ...), not {media_type!r}")
        self.media_type = media_type
        self.name = str(name)
        self.format = file_format(self.name)
        self.size = int(size)
        self.data = data
        self.preview = preview
        self.caption = None if caption is None else str(caption)
        self.sample_rate = sample_rate
        self.duration = duration
        self.count = count
        self.problem = problem  # why the preview is missing, for the caller to report

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        media_type: MediaType,
        *,
        caption: str | None = None,
        sample_rate: float | None = None,
        embed_bytes: int = EMBED_BYTES,
    ) -> MediaFile:
        """A media file read from ``path``: bytes kept when its kind plays in the page and
        it is at most ``embed_bytes``; a waveform of a WAV, a projection of a ``.pts.json``
        point cloud, the atoms of a ``.pdb``/``.sdf`` file (from files up to PREVIEW_BYTES)."""
        path = Path(path)
        size = path.stat().st_size
        media = cls(media_type, path.name, size=size, caption=caption, sample_rate=sample_rate)
        played = isinstance(media_type, _PLAYED) and size <= embed_bytes
        previewed = media.format in ("wav", "pts.json", "pdb", "sdf", "mol") and (
            size <= PREVIEW_BYTES
        )
        if not (played or previewed):
            return media
        data = path.read_bytes()
        media.data = data if played else None
        try:
            media.add_preview(data)
        except ValueError as exc:
            media.problem = f"`{path.name}`: {exc}"
        return media

    def add_preview(self, data: bytes) -> None:
        """The preview and counts this file's format gives (ValueError when it is damaged)."""
        if self.format == "wav" and isinstance(self.media_type, AudioType):
            self.preview, rate, self.duration = wav_waveform(data)
            self.sample_rate = self.sample_rate or rate
        elif self.format == "pts.json":
            points = read_points(data)
            self.preview, self.count = point_cloud_png(points), len(points)
        elif self.format in ("pdb", "sdf", "mol"):
            self.count = count_atoms(data, self.format)

    def __data_type__(self) -> MediaType:
        """``type_of(media)``: a media file describes its own type."""
        return self.media_type

    def to_record(self) -> dict[str, Any]:
        """This file as a record of MEDIA_STRUCT."""
        return {name: getattr(self, name) for name in MEDIA_STRUCT.names}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MediaFile)
            and other.media_type == self.media_type
            and other.to_record() == self.to_record()
        )

    def __repr__(self) -> str:
        return f"MediaFile({self.media_type}, {self.name!r}, {self.size:,} bytes)"


def media_field(name: str, media_type: MediaType) -> pa.Field:
    """An Arrow field for a media column, marked with its media type."""
    metadata = {KIND_KEY: b"media", MEDIA_TYPE_KEY: media_type.model_dump_json().encode()}
    return pa.field(name, MEDIA_STRUCT, nullable=True, metadata=metadata)


def is_media_field(field: pa.Field) -> bool:
    """True when an Arrow field holds a media column."""
    return bool(field.metadata) and field.metadata.get(KIND_KEY) == b"media"


def media_type_of_field(field: pa.Field) -> MediaType:
    """The media type of a media column's Arrow field."""
    return parse_type((field.metadata or {}).get(MEDIA_TYPE_KEY, b"").decode())


def media_to_arrow(values: Sequence[MediaFile | None]) -> pa.Array:
    """Encode a column of MediaFiles (None for missing) as the media struct array."""
    return pa.array([None if v is None else v.to_record() for v in values], type=MEDIA_STRUCT)


def media_from_arrow(array: pa.Array | pa.ChunkedArray, field: pa.Field) -> list[MediaFile | None]:
    """Decode a media struct column back into MediaFile objects."""
    media_type = media_type_of_field(field)
    out: list[MediaFile | None] = []
    for record in array.to_pylist():
        if record is None:
            out.append(None)
            continue
        fields = {k: v for k, v in record.items() if k not in ("name", "format")}
        out.append(MediaFile(media_type, record["name"] or "", **fields))
    return out
