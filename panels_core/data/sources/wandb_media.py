"""W&B media cells other than images: audio, video, HTML, 3D objects, Bokeh and Plotly plots,
molecules, each read into a ``MediaFile`` from the file its ``path`` names.

``wandb_json`` dispatches here: a column's ``wb_type`` names a media kind
(``WANDB_MEDIA_TYPES``), and a column holding ``{"_type": "audio-file", ...}``
cells is read by ``read_media_column``. Paths are found by the export's media
resolver, so they are confined to the export's folder as image paths are: a
cell naming a file outside is left empty and the resolver's warning names its
row.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from panels_core.data.media_files import MediaFile
from panels_core.media_types import (
    AudioType,
    HtmlType,
    MediaType,
    MoleculeType,
    Object3DType,
    PlotType,
    VideoType,
)
from panels_core.paths import OutsideFolder

__all__ = ["WANDB_MEDIA_TYPES", "is_media_cell", "read_media_column"]

WANDB_MEDIA_TYPES: dict[str, MediaType] = {
    "audio-file": AudioType(),
    "video-file": VideoType(),
    "html-file": HtmlType(),
    "object3D-file": Object3DType(),
    "bokeh-file": PlotType(library="bokeh"),
    "plotly-file": PlotType(library="plotly"),
    "molecule-file": MoleculeType(),
}
"""Our type of each W&B media ``_type`` (and ``wb_type``) other than ``image-file``."""


def is_media_cell(value: Any) -> bool:
    """True for a W&B media cell this module reads (``{"_type": "video-file", ...}``)."""
    return isinstance(value, Mapping) and value.get("_type") in WANDB_MEDIA_TYPES


def read_media_column(json_path: Path, column: str, cells: list[Any], resolver: Any) -> list[Any]:
    """A column's cells with each media cell read into a MediaFile (None when its file is
    outside the export's folder, or missing and ``resolver.missing`` is ``"null"``).

    ``resolver`` is the export's media resolver (``find``, ``missing``,
    ``missing_count``, ``refused``, ``refused_kinds``). A file whose preview cannot
    be made (a damaged WAV) is kept without it, and one warning names those rows.
    """
    values: list[Any] = []
    problems: list[tuple[int, str]] = []
    for row, cell in enumerate(cells):
        if not is_media_cell(cell):
            values.append(cell)
            continue
        media = _media_cell(json_path, cell, column, row, resolver)
        if media is not None and media.problem:
            problems.append((row, media.problem))
        values.append(media)
    if problems:
        rows = ", ".join(str(row) for row, _ in problems[:10])
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        warnings.warn(
            f"`{json_path}`, column `{column}`: no preview for rows {rows}{more}: "
            f"{problems[0][1]}; the cells show the file name",
            RuntimeWarning,
            stacklevel=4,
        )
    return values


def _media_cell(
    json_path: Path, cell: Mapping[str, Any], column: str, row: int, resolver: Any
) -> MediaFile | None:
    media_type = WANDB_MEDIA_TYPES[cell["_type"]]
    relative = cell.get("path")
    try:
        found = resolver.find(relative) if isinstance(relative, str) else None
    except OutsideFolder as exc:
        resolver.refused.append((column, row, str(exc)))
        resolver.refused_kinds.add("media")
        return None
    if found is None:
        if resolver.missing == "null":
            resolver.missing_count += 1
            return None
        raise FileNotFoundError(
            f"`{json_path}`, column `{column}`, row {row}: {cell['_type']} `{relative}` not "
            "found next to the export; download the artifact's media folder with it, or pass "
            "missing_media='null' to open the table with those cells empty"
        )
    caption = cell.get("caption")
    rate = cell.get("sample_rate")
    rate = None if isinstance(rate, bool) else rate
    return MediaFile.from_path(
        found,
        media_type,
        caption=caption if isinstance(caption, str) else None,
        sample_rate=float(rate) if isinstance(rate, int | float) and rate > 0 else None,
    )
