"""A versioned local store of tables: ``store.add(table, "preds") -> "preds:v0"``.

Layout of a store folder::

    store/
      .lock                       fcntl lock taken while a version number is chosen
      media/<sha256>.<ext>        every image once, by content hash, across tables and versions
      tables/<name>/v0/           one immutable folder per version
          manifest.json           kind, created, rows, type (validated with pydantic on load)
          table.parquet           (a JoinedTable: left.parquet and right.parquet;
                                   a Parquet dataset: its files under data/, as they were)

A version is written into a hidden temporary folder and renamed into place
under the lock, so readers never see half a version and two writers never get
the same number. Image cells keep their struct with ``data`` nulled and
``sha256`` kept; ``get`` puts the bytes back from ``media/``, and only from
there: a reference that is not a sha256 or leads out of ``media/`` (a symlink)
leaves its cell empty, with a warning naming the rows.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, ValidationError

from panels_core.data.dataset import DatasetSource, ParquetDataset
from panels_core.data.media import is_image_field
from panels_core.data.table import FORMAT_KEY, FORMAT_VERSION, TYPES_KEY, JoinedTable, Table
from panels_core.paths import OutsideFolder, resolve_inside
from panels_core.types import JoinedTableType, OptionalType, TableType, strip_optional

__all__ = ["Store", "StoreEntry", "StoreError", "StoreKeyError", "VersionManifest"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VERSION_DIR = re.compile(r"^v(\d+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
DATASET_DIR = "data"
"""The folder of a version that holds a Parquet dataset's files."""


class StoreError(ValueError):
    """A store folder or one of its versions cannot be read."""


class StoreKeyError(KeyError):
    """An unknown table name or version; the message lists what exists."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VersionManifest(_Model):
    """What one stored version holds; written beside its Parquet files."""

    format: Literal[1] = MANIFEST_FORMAT
    name: str
    version: int
    kind: Literal["table", "joined_table"]
    created: _dt.datetime
    rows: int | tuple[int, int]
    type: TableType | JoinedTableType
    files: tuple[str, ...]
    media: int = 0


class StoreEntry(_Model):
    """One table name in a store: its versions (``["v0", "v1"]``) and its latest manifest."""

    name: str
    versions: tuple[str, ...]
    latest: str
    kind: Literal["table", "joined_table"]
    rows: int | tuple[int, int]
    created: _dt.datetime


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise ValueError(
            f"invalid store name {name!r}: use letters, digits, '-', '_' and '.', starting with "
            "a letter or digit (no '/', no ':', no spaces), e.g. 'predictions' or 'run-3.eval'"
        )
    return name


def _write_media_file(path: Path, data: bytes) -> None:
    """Write one media file atomically (a temp file renamed into place)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_dataset(dataset: ParquetDataset, folder: Path) -> tuple[str, ...]:
    """Copy a dataset's files into ``folder/data/`` under their paths below its root (so
    its partition folders stay); their paths in the version, for the manifest."""
    copied = []
    for path in dataset.files:
        below = f"{DATASET_DIR}/{dataset.shown(path)}"
        target = folder / below
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        copied.append(below)
    return tuple(copied)


def _write_parquet(arrow: pa.Table, path: Path) -> None:
    """Write one Parquet file (a seam tests use to simulate a crash mid-write)."""
    pq.write_table(arrow, path)


class Store:
    """A folder of named, immutable, versioned tables.

    ``add(table, "name")`` returns ``"name:vN"``; ``get("name")`` gives the
    latest version, ``get("name:v1")`` a given one; ``list()`` and
    ``versions(name)`` show what is there.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise StoreError(f"cannot use `{self.folder}` as a store: it is a file, not a folder")
        self.tables_dir = self.folder / "tables"
        self.media_dir = self.folder / "media"
        for d in (self.tables_dir, self.media_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.folder / ".lock"

    def __repr__(self) -> str:
        return f"Store({str(self.folder)!r})"

    # ---------------------------------------------------------------- writing

    def add(self, obj: Table | JoinedTable | DatasetSource, name: str) -> str:
        """Store ``obj`` as the next version of ``name``; returns ``"name:vN"``.

        ``obj`` may also be a Parquet dataset (a folder, a glob or a list of Parquet
        files, or a Table over one): its files are copied as they are, under ``data/``."""
        name = _check_name(name)
        if isinstance(obj, str | os.PathLike | list | tuple):
            obj = Table.from_parquet_dataset(obj)
        if not isinstance(obj, Table | JoinedTable):
            raise TypeError(
                f"Store.add takes a Table or JoinedTable, not {type(obj).__name__}; "
                "wrap a DataFrame as Table(dataframe=df)"
            )
        table_dir = self.tables_dir / name
        table_dir.mkdir(parents=True, exist_ok=True)
        tmp = table_dir / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            if isinstance(obj, JoinedTable):
                media = self._write_table(obj.left, tmp / "left.parquet")
                media += self._write_table(obj.right, tmp / "right.parquet")
                files: tuple[str, ...] = ("left.parquet", "right.parquet")
                kind: Literal["table", "joined_table"] = "joined_table"
                rows: int | tuple[int, int] = (len(obj.left), len(obj.right))
            elif obj.parquet_dataset is not None:
                files, kind, rows = _copy_dataset(obj.parquet_dataset, tmp), "table", len(obj)
                media = 0
            else:
                media = self._write_table(obj, tmp / "table.parquet")
                files, kind, rows = ("table.parquet",), "table", len(obj)
            object_type = obj.type
            with self._locked():
                version = self._next_version(name)
                manifest = VersionManifest(
                    name=name,
                    version=version,
                    kind=kind,
                    created=_dt.datetime.now(_dt.UTC),
                    rows=rows,
                    type=object_type,
                    files=files,
                    media=media,
                )
                (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=1), encoding="utf-8")
                os.rename(tmp, table_dir / f"v{version}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return f"{name}:v{version}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _next_version(self, name: str) -> int:
        numbers = self._version_numbers(name)
        return numbers[-1] + 1 if numbers else 0

    def _write_table(self, table: Table, path: Path) -> int:
        """Write ``table`` as Parquet with image bytes moved to media/; returns images written."""
        arrow = table.to_arrow()
        written = 0
        columns = []
        for i, field in enumerate(arrow.schema):
            column = arrow.column(i)
            if is_image_field(field):
                column, count = self._strip_images(column, field)
                written += count
            columns.append(column)
        metadata = dict(arrow.schema.metadata or {})
        metadata[TYPES_KEY] = table.type.model_dump_json().encode()
        metadata[FORMAT_KEY] = FORMAT_VERSION
        stored = pa.Table.from_arrays(columns, schema=arrow.schema.with_metadata(metadata))
        _write_parquet(stored, path)
        return written

    def _strip_images(self, column: pa.ChunkedArray, field: pa.Field) -> tuple[pa.Array, int]:
        """The image struct with ``data`` nulled, after writing each new image to media/."""
        struct = column.combine_chunks() if column.num_chunks else pa.array([], field.type)
        names = [struct.type.field(i).name for i in range(struct.type.num_fields)]
        children = struct.flatten()  # children with the struct's own nulls applied
        data = children[names.index("data")].to_pylist()
        hashes = children[names.index("sha256")].to_pylist()
        formats = children[names.index("format")].to_pylist()
        written = 0
        for row, blob in enumerate(data):
            if blob is None:
                continue
            digest = hashlib.sha256(blob).hexdigest()
            if hashes[row] is not None and hashes[row] != digest:
                raise StoreError(
                    f"column `{field.name}`, row {row}: the image's sha256 does not match its "
                    "bytes; rebuild the column with Image(...) so the hash is recomputed"
                )
            hashes[row] = digest
            target = self._media_path(digest, formats[row])
            if not target.exists():
                _write_media_file(target, blob)
                written += 1
        children[names.index("data")] = pa.nulls(len(struct), pa.binary())
        children[names.index("sha256")] = pa.array(hashes, pa.string())
        validity = pc.is_valid(struct) if struct.null_count else None
        mask = pc.invert(validity) if validity is not None else None
        stripped = pa.StructArray.from_arrays(
            children, fields=[struct.type.field(i) for i in range(len(names))], mask=mask
        )
        return stripped, written

    def _media_path(self, digest: str, fmt: str | None) -> Path:
        ext = re.sub(r"[^a-z0-9]", "", (fmt or "bin").lower()) or "bin"
        return self.media_dir / f"{digest}.{ext}"

    # ---------------------------------------------------------------- reading

    def _version_numbers(self, name: str) -> list[int]:
        table_dir = self.tables_dir / name
        if not table_dir.is_dir():
            return []
        numbers = []
        for child in table_dir.iterdir():
            match = _VERSION_DIR.match(child.name)
            if match and (child / MANIFEST).is_file():
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    def names(self) -> list[str]:
        """The table names with at least one complete version, sorted."""
        if not self.tables_dir.is_dir():
            return []
        return sorted(
            child.name
            for child in self.tables_dir.iterdir()
            if _NAME.match(child.name) and self._version_numbers(child.name)
        )

    def versions(self, name: str) -> list[str]:
        """The versions of ``name``, oldest first: ``["v0", "v1"]``."""
        numbers = self._version_numbers(_check_name(name))
        if not numbers:
            raise StoreKeyError(self._unknown_name(name))
        return [f"v{n}" for n in numbers]

    def _unknown_name(self, name: str) -> str:
        names = self.names()
        listed = ", ".join(names) if names else "none yet; add one with store.add(table, name)"
        return f"no table `{name}` in store `{self.folder}`; names: {listed}"

    def _resolve(self, ref: str) -> tuple[str, int]:
        if not isinstance(ref, str):
            raise TypeError(f"Store.get takes 'name' or 'name:vN', not {type(ref).__name__}")
        name, _, version = ref.partition(":")
        numbers = self._version_numbers(_check_name(name))
        if not numbers:
            raise StoreKeyError(self._unknown_name(name))
        if version in ("", "latest"):
            return name, numbers[-1]
        match = _VERSION_DIR.match(version)
        if not match:
            raise ValueError(
                f"invalid version {version!r} in {ref!r}: write 'name:v0', 'name:v1', ... "
                "or 'name' for the latest"
            )
        number = int(match.group(1))
        if number not in numbers:
            listed = ", ".join(f"v{n}" for n in numbers)
            raise StoreKeyError(f"no version v{number} of `{name}`; versions: {listed}")
        return name, number

    def manifest(self, ref: str) -> VersionManifest:
        """The validated manifest of ``"name"`` (latest) or ``"name:vN"``."""
        name, number = self._resolve(ref)
        return self._load_manifest(name, number)

    def _load_manifest(self, name: str, number: int) -> VersionManifest:
        path = self.tables_dir / name / f"v{number}" / MANIFEST
        try:
            return VersionManifest.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, OSError, UnicodeDecodeError) as exc:
            raise StoreError(
                f"the manifest `{path}` of `{name}:v{number}` is damaged ({exc}); the version "
                "cannot be read: remove its folder or add the table again"
            ) from exc

    def get(self, ref: str) -> Table | JoinedTable:
        """The table stored as ``"name"`` (latest) or ``"name:vN"``, exactly as added."""
        name, number = self._resolve(ref)
        manifest = self._load_manifest(name, number)
        folder = self.tables_dir / name / f"v{number}"
        if manifest.kind == "table":
            assert isinstance(manifest.type, TableType)
            if manifest.files != ("table.parquet",):
                return self._read_dataset(folder / DATASET_DIR, manifest.type)
            return self._read_table(folder / "table.parquet", manifest.type)
        assert isinstance(manifest.type, JoinedTableType)
        joined_type = manifest.type
        left = self._read_table(folder / "left.parquet", joined_type.left)
        right = self._read_table(folder / "right.parquet", joined_type.right)
        return JoinedTable(
            left,
            right,
            (joined_type.left_key, joined_type.right_key),
            names=(joined_type.left_name, joined_type.right_name),
        )

    def __contains__(self, ref: object) -> bool:
        try:
            self._resolve(ref)  # type: ignore[arg-type]
        except (KeyError, ValueError, TypeError):
            return False
        return True

    def _read_table(self, path: Path, table_type: TableType) -> Table:
        try:
            lazy = Table.from_parquet(path)
        except (FileNotFoundError, ValueError) as exc:
            raise StoreError(f"a stored table file is missing or damaged: {exc}") from exc
        image_columns = [field for field in lazy.schema if is_image_field(field)]
        if not image_columns:
            return lazy  # rows stay on disk until asked for; engines scan the file
        arrow = lazy.to_arrow()
        columns = dict(table_type.columns)
        for field in image_columns:
            index = arrow.schema.get_field_index(field.name)
            array, emptied = self._rehydrate(arrow.column(index), path)
            arrow = arrow.set_column(index, field, array)
            if emptied and field.name in columns:  # refused cells: the column has nulls now
                columns[field.name] = OptionalType(inner=strip_optional(columns[field.name]))
        table_type = TableType(columns=columns)
        arrow = arrow.replace_schema_metadata(
            {k: v for k, v in (arrow.schema.metadata or {}).items() if k != TYPES_KEY}
        )
        table = Table.from_arrow(arrow, dtypes=dict(table_type.columns))
        if table.type != table_type:
            raise StoreError(
                f"`{path}`: the stored type does not match its data "
                f"({table.type} vs {table_type}); add the table again"
            )
        return table

    def _read_dataset(self, folder: Path, table_type: TableType) -> Table:
        """A stored Parquet dataset, typed as it was stored."""
        try:
            return Table.from_parquet_dataset(folder, dtypes=dict(table_type.columns))
        except (FileNotFoundError, ValueError) as exc:
            raise StoreError(f"a stored dataset is missing or damaged: {exc}") from exc

    def _rehydrate(self, column: pa.ChunkedArray, path: Path) -> tuple[pa.Array, bool]:
        """The image struct with ``data`` read back from media/ by sha256, and whether a
        cell was left empty (its reference would read outside media/; with a warning)."""
        struct = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
        names = [struct.type.field(i).name for i in range(struct.type.num_fields)]
        children = struct.flatten()
        hashes = children[names.index("sha256")].to_pylist()
        formats = children[names.index("format")].to_pylist()
        valid = pc.is_valid(struct).to_pylist()
        cache: dict[str, bytes] = {}
        blobs: list[bytes | None] = []
        refused: list[tuple[int, str]] = []
        for row, (digest, fmt, present) in enumerate(zip(hashes, formats, valid)):
            media = self._stored_media(digest, fmt) if present and digest is not None else None
            if isinstance(media, str):  # why it is refused
                refused.append((row, media))
                valid[row] = False
            if not isinstance(media, Path):
                blobs.append(None)
                continue
            if digest not in cache:
                try:
                    cache[digest] = media.read_bytes()
                except OSError as exc:
                    raise StoreError(
                        f"`{path}`, row {row}: its image `{media.name}` is missing from "
                        f"`{self.media_dir}`; the store's media folder was changed by hand"
                    ) from exc
            blobs.append(cache[digest])
        if refused:
            rows = ", ".join(str(row) for row, _ in refused[:10])
            warnings.warn(
                f"`{path}`: {len(refused)} image cells left empty (rows {rows}"
                f"{' ...' if len(refused) > 10 else ''}): {refused[0][1]}",
                RuntimeWarning,
                stacklevel=4,
            )
        children[names.index("data")] = pa.array(blobs, pa.binary())
        mask = pc.invert(pa.array(valid, pa.bool_())) if not all(valid) else None
        fields = [struct.type.field(i) for i in range(len(names))]
        return pa.StructArray.from_arrays(children, fields=fields, mask=mask), bool(refused)

    def _stored_media(self, digest: str, fmt: str | None) -> Path | str:
        """The media file of ``digest``, or why it is not read (not a sha256, a symlink out)."""
        if not _SHA256.match(str(digest)):
            return f"`{str(digest)[:80]}` is not a sha256 of the store's media"
        try:
            return resolve_inside(
                self.media_dir, self._media_path(digest, fmt).name, "the store's media folder"
            )
        except OutsideFolder as exc:
            return str(exc)

    def list(self) -> list[StoreEntry]:
        """Every table name with its versions and latest manifest, sorted by name."""
        entries = []
        for name in self.names():
            numbers = self._version_numbers(name)
            latest = self._load_manifest(name, numbers[-1])
            entries.append(
                StoreEntry(
                    name=name,
                    versions=tuple(f"v{n}" for n in numbers),
                    latest=f"v{numbers[-1]}",
                    kind=latest.kind,
                    rows=latest.rows,
                    created=latest.created,
                )
            )
        return entries
