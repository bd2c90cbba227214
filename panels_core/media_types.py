"""The media kinds of the type language: audio, video, HTML pages, 3D objects, plots, molecules.

Each is a frozen pydantic model with a ``kind`` discriminator, a member of
``panels_core.types.DataType`` (and re-exported there), so a column of them
serializes with ``parse_type``, reads with ``describe`` and matches a plugin's
slot through ``is_assignable`` like ``image`` does. Like ``types``, this module
imports nothing of ours and makes no values (``panels_core.data.media_files``
holds the values and their Arrow encoding).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "MEDIA_KINDS",
    "AudioType",
    "HtmlType",
    "MediaType",
    "MoleculeType",
    "Object3DType",
    "PlotType",
    "VideoType",
]


class MediaType(BaseModel):
    """The base of the media kinds: a file the column's cells name, kept with its file name."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: str

    def label(self) -> str:
        """The short text ``describe`` gives for this type."""
        return self.kind

    def __str__(self) -> str:
        return self.label()


class AudioType(MediaType):
    """A sound file (WAV, MP3, ...), with its sample rate when known."""

    kind: Literal["audio"] = "audio"


class VideoType(MediaType):
    """A video file (MP4, WebM, GIF, ...)."""

    kind: Literal["video"] = "video"


class HtmlType(MediaType):
    """An HTML page; shown only inside a sandboxed frame, never as markup of the page."""

    kind: Literal["html"] = "html"


class Object3DType(MediaType):
    """A 3D object: a point cloud (W&B's ``.pts.json``) or a mesh (glTF, OBJ, STL, ...)."""

    kind: Literal["object3d"] = "object3d"


class PlotType(MediaType):
    """A saved interactive plot; ``library`` is ``"bokeh"`` or ``"plotly"`` (None: either)."""

    kind: Literal["plot"] = "plot"
    library: Literal["bokeh", "plotly"] | None = None

    def label(self) -> str:
        return f"plot[{self.library}]" if self.library else "plot"


class MoleculeType(MediaType):
    """A molecule file (PDB, SDF, ...)."""

    kind: Literal["molecule"] = "molecule"


MEDIA_KINDS: dict[str, type[MediaType]] = {
    cls.model_fields["kind"].default: cls
    for cls in (AudioType, VideoType, HtmlType, Object3DType, PlotType, MoleculeType)
}
"""Each media kind name and its type class."""
