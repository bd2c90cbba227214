"""TensorBoard projector data: tensors.tsv (+ metadata.tsv), or a projector_config.pbtxt."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.data.columns import build_column
from panels_core.data.media import Image
from panels_core.data.sources.pbtxt import Message, parse_pbtxt
from panels_core.data.table import Table
from panels_core.paths import OutsideFolder, resolve_inside

__all__ = [
    "METADATA_NAMES",
    "PROJECTOR_CONFIG",
    "SPRITE_COLUMN",
    "TENSOR_NAMES",
    "projector_embeddings",
    "read_tensorboard",
]


TENSOR_NAMES = ("tensors.tsv", "vectors.tsv", "vecs.tsv")
METADATA_NAMES = ("metadata.tsv", "meta.tsv")
PROJECTOR_CONFIG = "projector_config.pbtxt"
"""The file names of a projector folder: vectors, metadata, config."""

SPRITE_COLUMN = "sprite"
"""The image column a projector config's sprite sheet becomes (one tile per row)."""


@dataclass(frozen=True)
class _Embedding:
    """One embedding of a projector folder: its files, and what the config says of them."""

    name: str
    tensors: Path
    metadata: Path | None = None
    shape: tuple[int, ...] = ()
    sprite: Path | None = None
    tile: tuple[int, int] | None = None  # width, height (single_image_dim)


def _config_entries(config: Path) -> list[Message]:
    try:
        text = config.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"cannot read `{config}`: not UTF-8 text ({exc.reason})") from exc
    entries = [
        e for e in parse_pbtxt(text, str(config)).get("embeddings", []) if isinstance(e, dict)
    ]
    if not entries:
        raise ValueError(
            f"`{config}` lists no `embeddings {{ ... }}` block; a projector config needs one with "
            "tensor_path (and optionally metadata_path)"
        )
    return entries


def _first(entry: Message, field: str) -> Any:
    values = entry.get(field) or [None]
    return values[0]


def _entry_name(entry: Message, index: int) -> str:
    return str(_first(entry, "tensor_name") or f"embedding-{index + 1}")


def _config_of(path: Path) -> Path | None:
    if path.is_dir():
        config = path / PROJECTOR_CONFIG
        return config if config.is_file() else None
    return path if path.suffix.lower() == ".pbtxt" else None


def projector_embeddings(path: str | os.PathLike[str]) -> list[str]:
    """The names of the embeddings a projector config lists (its ``tensor_name``s, in order),
    for a folder holding ``projector_config.pbtxt`` or the config itself; [] for anything else
    (a folder or file of plain ``tensors.tsv`` data is one unnamed table)."""
    config = _config_of(Path(path))
    if config is None:
        return []
    return [_entry_name(e, i) for i, e in enumerate(_config_entries(config))]


def _inside(config: Path, entry: Message, field: str, name: str) -> Path | None:
    """The file a config field names, confined to the config's folder; it must exist. An
    absolute path under the folder (as TensorFlow 1 tutorials wrote them) is taken as relative."""
    relative = _first(entry, field)
    if relative is None:
        return None
    folder = config.parent.absolute()
    if Path(str(relative)).is_absolute() and Path(str(relative)).is_relative_to(folder):
        relative = Path(str(relative)).relative_to(folder).as_posix()
    try:
        file = resolve_inside(config.parent, str(relative), f"the folder of `{config}`")
    except OutsideFolder as exc:
        raise ValueError(
            f"`{config}`: embedding {name!r}: {field} {exc}; keep the projector's files in its "
            "folder"
        ) from None
    if not file.is_file():
        raise FileNotFoundError(f"`{config}`: embedding {name!r}: {field} `{file}` does not exist")
    return file


def _chosen_entry(config: Path, tensor_name: str | None) -> tuple[str, Message]:
    entries = _config_entries(config)
    names = [_entry_name(e, i) for i, e in enumerate(entries)]
    if tensor_name is None and len(entries) > 1:
        raise ValueError(
            f"`{config}` lists {len(entries)} embeddings: {', '.join(map(repr, names))}; open one "
            f"with open_table(path, tensor_name={names[0]!r}) (`panels info --tensor-name`), "
            "or serve the folder (`panels serve FOLDER` shows each as its own table)"
        )
    if tensor_name is None:
        return names[0], entries[0]
    if tensor_name not in names:
        raise ValueError(
            f"`{config}` has no embedding named {tensor_name!r}; it has "
            f"{', '.join(map(repr, names))}"
        )
    return tensor_name, entries[names.index(tensor_name)]


def _configured(config: Path, metadata: Path | None, tensor_name: str | None) -> _Embedding:
    """The embedding ``tensor_name`` of a projector config (the only one when None)."""
    name, entry = _chosen_entry(config, tensor_name)
    tensors = _inside(config, entry, "tensor_path", name)
    if tensors is None:
        raise ValueError(
            f"`{config}`: embedding {name!r} has no tensor_path (its tensor lives in a "
            "checkpoint); export it as tensors.tsv and set tensor_path"
        )
    sprite = entry.get("sprite") or [{}]
    sprite_entry = sprite[0] if isinstance(sprite[0], dict) else {}
    image = _inside(config, sprite_entry, "image_path", name)
    dims = [int(d) for d in sprite_entry.get("single_image_dim", [])]
    if image is not None and (len(dims) != 2 or min(dims) < 1):
        raise ValueError(
            f"`{config}`: embedding {name!r}: the sprite needs single_image_dim: WIDTH "
            f"single_image_dim: HEIGHT (two positive numbers), got {dims}"
        )
    return _Embedding(
        name=name,
        tensors=tensors,
        metadata=metadata or _inside(config, entry, "metadata_path", name),
        shape=tuple(int(d) for d in entry.get("tensor_shape", [])),
        sprite=image,
        tile=(dims[0], dims[1]) if image is not None else None,
    )


def _resolve_projector(path: Path, metadata: Path | None, tensor_name: str | None) -> _Embedding:
    """The embedding a projector folder, config or tensors file stands for."""
    config = _config_of(path)
    if config is not None:
        return _configured(config, metadata, tensor_name)
    if tensor_name is not None:
        raise ValueError(
            f"`{path}` has no {PROJECTOR_CONFIG}, so no embedding names; tensor_name="
            f"{tensor_name!r} applies to a projector config"
        )
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        tensors = next((path / n for n in TENSOR_NAMES if (path / n).is_file()), None)
        if tensors is None:
            raise FileNotFoundError(
                f"`{path}` has no {PROJECTOR_CONFIG} and no {' / '.join(TENSOR_NAMES)}; "
                "write the vectors as tensors.tsv (one tab-separated vector per line)"
            )
        path = tensors
    if metadata is None:
        metadata = next((folder / n for n in METADATA_NAMES if (folder / n).is_file()), None)
    return _Embedding(name=path.stem, tensors=path, metadata=metadata)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"cannot read `{path}`: not UTF-8 text ({exc.reason})") from exc
    lines = text.split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def _parse_tensors(path: Path) -> np.ndarray:
    """The vectors of a tensors.tsv as an (n, d) float32 array; ragged or non-numeric lines raise."""
    lines = _read_lines(path)
    if not lines:
        raise ValueError(f"`{path}` is empty; it needs one tab-separated vector per line")
    split = [line.split("\t") for line in lines]
    lengths = Counter(len(parts) for parts in split)
    dim = lengths.most_common(1)[0][0]
    for i, parts in enumerate(split, start=1):
        if len(parts) != dim:
            raise ValueError(
                f"`{path}`: line {i} has {len(parts)} values, the others {dim}; every vector "
                "needs the same number of tab-separated values"
            )
    try:
        return np.array(split, dtype=np.float32)
    except ValueError:
        pass
    for i, parts in enumerate(split, start=1):
        for j, token in enumerate(parts, start=1):
            try:
                float(token)
            except ValueError:
                raise ValueError(
                    f"`{path}`: line {i}, value {j} is {token[:30]!r}, not a number; tensors.tsv "
                    "holds numbers only (labels go in metadata.tsv)"
                ) from None
    raise ValueError(f"`{path}`: cannot read the vectors as numbers")


def _convert_metadata_column(values: list[str]) -> list[Any]:
    present = [v for v in values if v != ""]
    for caster in (int, float):
        try:
            converted = [caster(v) for v in present]
        except ValueError:
            continue
        it = iter(converted)
        return [None if v == "" else next(it) for v in values]
    return [None if v == "" else v for v in values]


def _parse_metadata(path: Path, rows: int, tensors: Path) -> dict[str, list[Any]]:
    """Metadata columns: one column has no header row (it is `label`); several have one."""
    lines = _read_lines(path)
    first = lines[0].split("\t") if lines else [""]
    if len(first) > 1:
        header, body, offset = first, lines[1:], 2
    else:
        header, body, offset = ["label"], lines, 1
    if len(body) != rows:
        after = " after its header row" if offset == 2 else ""
        raise ValueError(
            f"`{path}` has {len(body)} rows{after} but `{tensors}` has {rows} vectors; the files "
            "must match line for line (a metadata file with several columns starts with a header "
            "row, one with a single column has none)"
        )
    if len(set(header)) != len(header) or "" in header:
        raise ValueError(f"`{path}`: the header row {header} has empty or repeated column names")
    columns: list[list[str]] = [[] for _ in header]
    for i, line in enumerate(body):
        parts = line.split("\t")
        if len(parts) != len(header):
            raise ValueError(
                f"`{path}`: line {i + offset} has {len(parts)} values but the header names "
                f"{len(header)} columns"
            )
        for column, value in zip(columns, parts):
            column.append(value)
    return {name: _convert_metadata_column(values) for name, values in zip(header, columns)}


def _read_bytes(path: Path, shape: tuple[int, ...], config_name: str) -> np.ndarray:
    """A ``.bytes`` tensor: float32 little-endian, ``tensor_shape: [N, D]`` from the config."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(
            f"`{path}`: a .bytes tensor needs its shape in the config: tensor_shape: [N, D] "
            f"(rows, dimensions) in the embedding {config_name!r}, got {list(shape)}"
        )
    rows, dim = shape
    expected, actual = rows * dim * 4, path.stat().st_size
    if actual != expected:
        raise ValueError(
            f"`{path}` is {actual:,} bytes, but tensor_shape [{rows}, {dim}] of float32 needs "
            f"{rows} x {dim} x 4 = {expected:,} bytes; fix tensor_shape or rewrite the file"
        )
    return np.fromfile(path, dtype="<f4").reshape(rows, dim).astype(np.float32)


_TILE_MODES = ("L", "LA", "RGB", "RGBA")


def _sprite_tiles(embedding: _Embedding, rows: int) -> list[Image]:
    """One image per row, cut from the sprite sheet row-major, as TensorBoard does (the
    sheet holds ``width // tile width`` tiles per row: ceil(sqrt(N)) for a square sheet)."""
    from PIL import Image as PILImage

    assert embedding.sprite is not None and embedding.tile is not None
    (width, height), path = embedding.tile, embedding.sprite
    try:
        with PILImage.open(path) as opened:  # a copy in a mode every tile can be saved in
            sheet = opened.convert(opened.mode if opened.mode in _TILE_MODES else "RGBA")
    except (OSError, PILImage.DecompressionBombError) as exc:
        raise ValueError(f"cannot read the sprite image `{path}`: {exc}") from None
    with sheet:
        per_row, full_rows = sheet.width // width, sheet.height // height
        if per_row * full_rows < rows:
            raise ValueError(
                f"the sprite image `{path}` is {sheet.width}x{sheet.height} pixels: "
                f"{per_row} x {full_rows} tiles of {width}x{height}, fewer than the {rows} "
                "vectors; the sheet needs one tile per vector, row by row"
            )
        return [
            Image(sheet.crop((c * width, r * height, (c + 1) * width, (r + 1) * height)))
            for r, c in (divmod(i, per_row) for i in range(rows))
        ]


def _vectors(embedding: _Embedding) -> np.ndarray:
    if embedding.tensors.suffix.lower() == ".bytes":
        return _read_bytes(embedding.tensors, embedding.shape, embedding.name)
    return _parse_tensors(embedding.tensors)


def read_tensorboard(
    path: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | None = None,
    tensor_name: str | None = None,
    dtypes: Mapping[str, Any] | None = None,
) -> Table:
    """TensorBoard projector data as a Table: an ``embedding`` column, the metadata columns,
    and a ``sprite`` image column when the config names a sprite sheet.

    ``path`` is a folder (with ``projector_config.pbtxt`` or ``tensors.tsv`` and
    an optional ``metadata.tsv``), a ``projector_config.pbtxt``, or a tensors file.
    A config listing several embeddings needs ``tensor_name`` (see
    ``projector_embeddings``); the files it names are read only inside its folder.
    """
    embedding = _resolve_projector(
        Path(path), Path(metadata) if metadata is not None else None, tensor_name
    )
    vectors = _vectors(embedding)
    columns: dict[str, list[Any]] = {}
    meta = embedding.metadata
    if meta is not None:
        columns = _parse_metadata(meta, len(vectors), embedding.tensors)
        taken = {"embedding": "vectors", SPRITE_COLUMN: "sprite tiles"}
        if embedding.sprite is None:
            del taken[SPRITE_COLUMN]
        for name, what in taken.items():
            if name in columns:
                raise ValueError(
                    f"`{meta}` has a column named `{name}`, the name the {what} take; "
                    "rename that column"
                )
    if embedding.sprite is not None:
        columns[SPRITE_COLUMN] = _sprite_tiles(embedding, len(vectors))
    fields, arrays = [], []
    array = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    fields.append(pa.field("embedding", array.type))
    arrays.append(array)
    for name, values in columns.items():
        field, array = build_column(name, values)
        fields.append(field)
        arrays.append(array)
    arrow = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return Table.from_arrow(arrow, dtypes=dtypes, rename=True)
