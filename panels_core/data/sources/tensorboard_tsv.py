"""TensorBoard projector data: tensors.tsv (+ metadata.tsv), or a projector_config.pbtxt."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.data.columns import build_column
from panels_core.data.table import Table

__all__ = ["METADATA_NAMES", "PROJECTOR_CONFIG", "TENSOR_NAMES", "read_tensorboard"]


TENSOR_NAMES = ("tensors.tsv", "vectors.tsv", "vecs.tsv")
METADATA_NAMES = ("metadata.tsv", "meta.tsv")
PROJECTOR_CONFIG = "projector_config.pbtxt"
"""The file names of a projector folder: vectors, metadata, config."""

_PBTXT_FIELD = re.compile(r'(\w+)\s*:\s*"((?:[^"\\]|\\.)*)"')
_PBTXT_BLOCK_START = re.compile(r"(\w+)\s*\{")


def _pbtxt_blocks(text: str) -> list[tuple[str, str]]:
    """Top-level ``name { ... }`` blocks of protobuf text, nested braces matched."""
    blocks, pos = [], 0
    while (match := _PBTXT_BLOCK_START.search(text, pos)) is not None:
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        blocks.append((match.group(1), text[match.end() : i - 1]))
        pos = i
    return blocks


def _projector_entries(config: Path) -> list[dict[str, str]]:
    text = config.read_text(encoding="utf-8")
    entries = []
    for name, body in _pbtxt_blocks(text):
        if name != "embeddings":
            continue
        nested = _pbtxt_blocks(body)
        for _, inner in nested:
            body = body.replace(inner, "")
        entries.append(dict(_PBTXT_FIELD.findall(body)))
    if not entries:
        raise ValueError(
            f"`{config}` lists no `embeddings {{ ... }}` block; a projector config needs one with "
            "tensor_path (and optionally metadata_path)"
        )
    return entries


def _resolve_projector(
    path: Path, metadata: Path | None, tensor_name: str | None
) -> tuple[Path, Path | None]:
    """The tensors and metadata files of a projector folder, config or tensors file."""
    if path.is_dir():
        config = path / PROJECTOR_CONFIG
        if config.is_file():
            return _resolve_projector(config, metadata, tensor_name)
        tensors = next((path / n for n in TENSOR_NAMES if (path / n).is_file()), None)
        if tensors is None:
            raise FileNotFoundError(
                f"`{path}` has no {PROJECTOR_CONFIG} and no {' / '.join(TENSOR_NAMES)}; "
                "write the vectors as tensors.tsv (one tab-separated vector per line)"
            )
        if metadata is None:
            metadata = next((path / n for n in METADATA_NAMES if (path / n).is_file()), None)
        return tensors, metadata
    if path.suffix.lower() == ".pbtxt":
        entries = _projector_entries(path)
        if tensor_name is not None:
            chosen = [e for e in entries if e.get("tensor_name") == tensor_name]
            if not chosen:
                names = [e.get("tensor_name", "?") for e in entries]
                raise KeyError(f"`{path}` has no embedding named {tensor_name!r}; it has {names}")
            entry = chosen[0]
        else:
            entry = entries[0]
        if "tensor_path" not in entry:
            raise ValueError(
                f"`{path}`: embedding {entry.get('tensor_name', '#0')!r} has no tensor_path (its "
                "tensor lives in a checkpoint); export it as tensors.tsv and set tensor_path"
            )
        tensors = path.parent / entry["tensor_path"]
        if metadata is None and entry.get("metadata_path"):
            metadata = path.parent / entry["metadata_path"]
        for what, file in (("tensor_path", tensors), ("metadata_path", metadata)):
            if file is not None and not file.is_file():
                raise FileNotFoundError(f"`{path}`: {what} `{file}` does not exist")
        return tensors, metadata
    if metadata is None:
        metadata = next(
            (path.parent / n for n in METADATA_NAMES if (path.parent / n).is_file()), None
        )
    return path, metadata


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


def read_tensorboard(
    path: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | None = None,
    tensor_name: str | None = None,
    dtypes: Mapping[str, Any] | None = None,
) -> Table:
    """TensorBoard projector data as a Table: an ``embedding`` column plus the metadata columns.

    ``path`` is a folder (with ``projector_config.pbtxt`` or ``tensors.tsv`` and
    an optional ``metadata.tsv``), a ``projector_config.pbtxt``, or a tensors file.
    """
    tensors, meta = _resolve_projector(
        Path(path), Path(metadata) if metadata is not None else None, tensor_name
    )
    vectors = _parse_tensors(tensors)
    columns: dict[str, list[Any]] = {}
    if meta is not None:
        columns = _parse_metadata(meta, len(vectors), tensors)
        if "embedding" in columns:
            raise ValueError(
                f"`{meta}` has a column named `embedding`, the name the vectors take; "
                "rename that column"
            )
    fields, arrays = [], []
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    fields.append(pa.field("embedding", embedding.type))
    arrays.append(embedding)
    for name, values in columns.items():
        field, array = build_column(name, values)
        fields.append(field)
        arrays.append(array)
    arrow = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return Table.from_arrow(arrow, dtypes=dtypes, rename=True)
