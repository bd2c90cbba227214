"""Parquet datasets: many Parquet files (a folder, a glob, a list) as one table, from their footers.

``open_dataset`` finds the files (a folder recursively, Hive partition folders
such as ``split=train/`` read as columns), reads every file's footer and
nothing else, and unifies their schemas where Arrow can (a column missing from
a file is null there; int32 and int64 widen) or refuses, naming the two files
and the column. Rows are counted from the footers; the type is inferred from a
bounded sample: the first rows of up to ``SAMPLE_FILES`` files chosen evenly.
The rows themselves are read by the engine (DuckDB), not here.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from panels_core.data.damage import READ_ERRORS, damage_message, sample_around_damage
from panels_core.data.infer import SAMPLE_ROWS

__all__ = [
    "HIVE_NULL",
    "PARQUET_SUFFIXES",
    "SAMPLE_FILES",
    "DatasetError",
    "DatasetSource",
    "ParquetDataset",
    "dataset_files",
    "footer_null_counts",
    "has_parquet_files",
    "is_glob",
    "open_dataset",
]

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
"""The suffixes of the files a dataset folder or glob is made of."""
SAMPLE_FILES = 8
"""Type inference reads the first rows of at most this many files of a dataset."""
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
"""The partition value Hive writers use for a null."""

DatasetSource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


class DatasetError(ValueError):
    """A set of Parquet files that cannot be read as one table; the message says why."""


@dataclass(frozen=True, eq=False)
class ParquetDataset:
    """Parquet files read as one table: their footers, unified schema and Hive partitions."""

    root: Path
    """The folder the files are under (partition folders are read below it)."""
    files: tuple[Path, ...]
    """The files (absolute), sorted by their path below ``root``: the rows' order."""
    metas: tuple[pq.FileMetaData, ...] = field(repr=False)
    schema: pa.Schema = field(repr=False)
    """The files' columns unified, then the partition columns."""
    partitions: tuple[str, ...] = ()
    """The partition columns (``split`` of ``split=train/``), in folder order."""
    values: tuple[tuple[str | None, ...], ...] = field(default=(), repr=False)
    """Each file's partition values, as written in its path (None: Hive's null)."""
    uniform: bool = True
    """Whether every file has the same schema (else columns are matched by name)."""
    first_row: int = 0
    """The number of the first file's first row (not 0 in a ``shard`` of a dataset)."""
    span: tuple[int, int] | None = None
    """The rows ``start .. stop`` of its one file a ``piece`` holds (whole row groups);
    None: every row of its files."""

    @property
    def name(self) -> str:
        """The table's display name: the dataset's folder name."""
        return self.root.name or str(self.root)

    @property
    def rows(self) -> tuple[int, ...]:
        """Each file's row count (from its footer)."""
        if self.span is not None:
            return (self.span[1] - self.span[0],)
        return tuple(meta.num_rows for meta in self.metas)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Each file's first row number in the dataset (its row numbers follow on)."""
        return tuple(int(x) for x in np.cumsum((self.first_row, *self.rows))[:-1])

    def shard(self, index: int) -> ParquetDataset:
        """File ``index`` alone as a dataset with this dataset's schema and partitions, its
        rows numbered as they are here (what one task of a cluster reads)."""
        return ParquetDataset(
            self.root,
            (self.files[index],),
            (self.metas[index],),
            self.schema,
            self.partitions,
            (self.values[index],) if self.values else (),
            self.uniform,
            self.offsets[index],
        )

    def piece(self, index: int, span: tuple[int, int]) -> ParquetDataset:
        """The rows ``span`` (start, stop within the file) of file ``index`` alone, as
        ``shard`` gives the file: its rows keep their numbers in this dataset."""
        return replace(self.shard(index), span=(int(span[0]), int(span[1])))

    def spans(self, index: int, parts: int) -> list[tuple[int, int]]:
        """File ``index``'s row groups in up to ``parts`` runs of about equal rows: each
        run's (start, stop) row within the file (one run of every row when the file has
        one row group)."""
        meta = self.metas[index]
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        ends = np.cumsum(sizes)
        total = int(ends[-1]) if sizes else 0
        cuts = {0, total}
        for k in range(1, max(min(parts, len(sizes)), 1)):  # the group end nearest k/parts
            cuts.add(int(ends[np.abs(ends - total * k / parts).argmin()]))
        bounds = sorted(cuts)
        return list(itertools.pairwise(bounds)) or [(0, 0)]  # an empty file: one empty run

    @property
    def num_rows(self) -> int:
        """The dataset's rows (from the footers)."""
        return sum(self.rows)

    @property
    def file_columns(self) -> list[str]:
        """The columns the files hold (every column but the partitions)."""
        return [n for n in self.schema.names if n not in self.partitions]

    def locate(self, rows: Sequence[int]) -> tuple[list[Path], list[int]]:
        """The files that hold the dataset's row numbers ``rows``, and the rows' numbers
        within their files (both sorted, without repeats)."""
        rows = np.asarray(rows, dtype=np.int64)
        at = np.searchsorted(np.asarray(self.offsets), rows, side="right") - 1
        inside = (at >= 0) & (at < len(self.files))
        within = rows[inside] - np.asarray(self.offsets, dtype=np.int64)[at[inside]]
        files = [self.files[i] for i in sorted(set(at[inside].tolist()))]
        return files, sorted(set(within.tolist()))

    def shown(self, path: Path) -> str:
        """A file's path as messages show it: below the dataset's folder."""
        return path.relative_to(self.root).as_posix()

    def null_counts(self) -> dict[str, int | None]:
        """Nulls per column from the footers' statistics (a file without the column
        adds all its rows; None where statistics are missing)."""
        counts: dict[str, int | None] = {name: 0 for name in self.schema.names}
        for meta in self.metas:
            names = meta.schema.to_arrow_schema().names
            present = footer_null_counts(meta, names, names)
            for name in self.file_columns:
                total, add = counts[name], present.get(name, meta.num_rows)
                counts[name] = None if total is None or add is None else total + add
        for name, values in zip(self.partitions, zip(*self.values, strict=True), strict=False):
            counts[name] = sum(r for r, v in zip(self.rows, values, strict=True) if v is None)
        return counts

    def sample(self, rows: int = SAMPLE_ROWS) -> pa.Table:
        """Up to ``rows`` rows: the first rows of up to ``SAMPLE_FILES`` files chosen evenly
        (a damaged file gives the columns that read, nulls for the rest)."""
        count = len(self.files)
        chosen = sorted(
            {round(i * (count - 1) / max(SAMPLE_FILES - 1, 1)) for i in range(SAMPLE_FILES)}
        )
        chosen = [i for i in chosen if i < count]
        each = max(rows // len(chosen), 1)
        parts = []
        for i in chosen:
            names = self.metas[i].schema.to_arrow_schema().names
            with pq.ParquetFile(self.files[i]) as file:
                try:
                    batch = next(file.iter_batches(batch_size=each), None)
                    part = pa.Table.from_batches([batch]) if batch is not None else None
                except READ_ERRORS:
                    schema = file.schema_arrow
                    part = sample_around_damage(file, schema, names, each)
            parts.append(self.conform(part, i))
        return pa.concat_tables(parts)

    def read(self) -> pa.Table:
        """Every row (reads every file: for ``Table.to_arrow``; the engine scans instead)."""
        parts = []
        for i, path in enumerate(self.files):
            try:
                with pq.ParquetFile(path) as file:
                    parts.append(self.conform(file.read(), i))
            except READ_ERRORS as exc:
                raise ValueError(damage_message(path, exc)) from exc
        return pa.concat_tables(parts) if parts else self.schema.empty_table()

    def conform(self, part: pa.Table | None, index: int) -> pa.Table:
        """Rows of file ``index`` in the dataset's schema: its columns cast to the unified
        types, nulls for the columns it lacks, its partition values as columns."""
        rows = 0 if part is None else part.num_rows
        columns = []
        for f in self.schema:
            if f.name in self.partitions:
                at = self.partitions.index(f.name)
                categories = sorted({v[at] for v in self.values if v[at] is not None})
                columns.append(_constant(f.type, self.values[index][at], rows, categories))
            elif part is not None and f.name in part.column_names:
                columns.append(pc.cast(part.column(f.name), f.type))
            else:
                columns.append(pa.nulls(rows, f.type))
        return pa.Table.from_arrays(columns, schema=self.schema)


def footer_null_counts(
    meta: pq.FileMetaData, names: Sequence[str], shown: Sequence[str]
) -> dict[str, int | None]:
    """Null counts by shown name of a file's columns ``names``, from the row-group
    statistics of its footer (None where a group lacks them)."""
    counts: dict[str, int | None] = {}
    top_level: dict[str, list[int]] = {}  # a name the file repeats has one entry per column
    for i in range(meta.num_columns):
        path = meta.schema.column(i).path
        if "." not in path:
            top_level.setdefault(path, []).append(i)
    for name, key in zip(names, shown, strict=True):
        indexes = top_level.get(name)
        if not indexes:
            counts[key] = None
            continue
        index = indexes.pop(0)
        total: int | None = 0
        for rg in range(meta.num_row_groups):
            stats = meta.row_group(rg).column(index).statistics
            if stats is None or not stats.has_null_count:
                total = None
                break
            total += stats.null_count
        counts[key] = total
    return counts


def _constant(kind: pa.DataType, value: str | None, rows: int, categories: list[str]) -> pa.Array:
    """A partition column of one file: its value repeated (a category: indices into the
    partition's values)."""
    if pa.types.is_dictionary(kind):
        index = None if value is None else categories.index(value)
        indices = pa.array([index] * rows, pa.int32())
        return pa.DictionaryArray.from_arrays(indices, pa.array(categories, pa.string()))
    return pa.array([None if value is None else kind_value(kind, value)] * rows, kind)


def kind_value(kind: pa.DataType, value: str) -> int | float:
    """A numeric partition value as a number of ``kind``."""
    return int(value) if pa.types.is_integer(kind) else float(value)


def is_glob(path: str | os.PathLike[str]) -> bool:
    """Whether a path is a glob pattern (``*``, ``?`` or ``[``)."""
    return glob.has_magic(str(path))


def _is_data_file(path: Path, root: Path) -> bool:
    """A Parquet file of a dataset: its suffix says Parquet, and neither it nor a folder
    below ``root`` starts with ``.`` or ``_`` (``_SUCCESS``, ``_temporary/``, ``.tmp``)."""
    hidden = any(p.startswith((".", "_")) for p in path.relative_to(root).parts)
    return path.suffix.lower() in PARQUET_SUFFIXES and not hidden and path.is_file()


def has_parquet_files(folder: Path) -> bool:
    """Whether a folder holds a Parquet file (at any depth)."""
    return any(_is_data_file(p, folder) for p in folder.rglob("*"))


def dataset_files(source: DatasetSource) -> tuple[Path, list[Path]]:
    """The folder and the Parquet files of a folder (recursively), a glob (``**`` too) or a
    list of files; DatasetError, saying what was looked at, when there are none."""
    if isinstance(source, str | os.PathLike) and not is_glob(source):
        root = Path(source).resolve()
        if not root.is_dir():
            raise DatasetError(f"cannot open `{source}` as a dataset: it is not a folder")
        files = sorted((p for p in root.rglob("*") if _is_data_file(p, root)), key=str)
        where = f"the folder `{source}`"
    elif isinstance(source, str | os.PathLike):
        parts = Path(source).parts
        fixed = parts[: next(i for i, p in enumerate(parts) if is_glob(p))]
        root = Path(*fixed).resolve() if fixed else Path.cwd()
        matched = (Path(p).resolve() for p in glob.glob(str(source), recursive=True))
        files = sorted((p for p in matched if _is_data_file(p, root)), key=str)
        where = f"the pattern `{source}`"
    else:
        files = [Path(p).resolve() for p in source]
        missing = [str(p) for p, f in zip(source, files, strict=True) if not f.is_file()]
        if missing:
            raise DatasetError(f"cannot open the dataset: no such file: {', '.join(missing)}")
        root = Path(os.path.commonpath([f.parent for f in files])) if files else Path.cwd()
        where = "the list of files"
    if not files:
        raise DatasetError(
            f"{where} holds no Parquet files ({', '.join(PARQUET_SUFFIXES)}); "
            "give a folder or pattern of Parquet files"
        )
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


def open_dataset(source: DatasetSource) -> ParquetDataset:
    """The dataset of a folder, glob or list of Parquet files, from their footers only."""
    root, files = dataset_files(source)
    metas = []
    for path in files:
        try:
            metas.append(pq.read_metadata(path))
        except READ_ERRORS as exc:
            raise DatasetError(
                f"dataset `{root.name}`: the file `{path.relative_to(root).as_posix()}` is not "
                f"a readable Parquet file ({exc}); it may be truncated or damaged: write it "
                "again, or move it out of the dataset's folder"
            ) from exc
    keys, values = _partitions(root, files)
    fields = _unified_fields(root, files, metas)
    for key in keys:
        if key in fields:
            raise DatasetError(
                f"dataset `{root.name}`: `{key}` is both a partition folder ({key}=...) and a "
                f"column of `{fields[key][1].relative_to(root).as_posix()}`; rename one of them"
            )
    schema = pa.schema(
        [f for f, _ in fields.values()]
        + [pa.field(k, _partition_type([v[i] for v in values])) for i, k in enumerate(keys)]
    )
    first = metas[0].schema.to_arrow_schema()
    uniform = all(m.schema.to_arrow_schema().equals(first) for m in metas[1:])
    return ParquetDataset(root, tuple(files), tuple(metas), schema, keys, tuple(values), uniform)


def _partitions(
    root: Path, files: Sequence[Path]
) -> tuple[tuple[str, ...], list[tuple[str | None, ...]]]:
    """The Hive partition keys (the same for every file, else DatasetError) and each
    file's values, from the ``key=value`` folders below ``root`` (URL-decoded, as
    DuckDB reads them: ``a%20b`` is ``a b``)."""
    keys: tuple[str, ...] | None = None
    values: list[tuple[str | None, ...]] = []
    for path in files:
        parts = path.relative_to(root).parent.parts
        pairs = [[unquote(s) for s in p.split("=", 1)] for p in parts if "=" in p]
        these = tuple(k for k, _ in pairs)
        if keys is None:
            keys, first = these, path
        elif these != keys:
            raise DatasetError(
                f"dataset `{root.name}`: `{first.relative_to(root).as_posix()}` is partitioned by "
                f"({', '.join(keys) or 'nothing'}) but `{path.relative_to(root).as_posix()}` by "
                f"({', '.join(these) or 'nothing'}); put every file under the same partition "
                "folders"
            )
        values.append(tuple(None if v == HIVE_NULL else v for _, v in pairs))
    return keys or (), values


def _partition_type(values: Sequence[str | None]) -> pa.DataType:
    """A partition column's type: integers, else numbers, else a category of its values."""
    present = [v for v in values if v is not None]
    for kind in (pa.int64(), pa.float64()):
        try:
            for v in present:
                kind_value(kind, v)
        except ValueError:
            continue
        if present:
            return kind
    return pa.dictionary(pa.int32(), pa.string())


def _unified_fields(
    root: Path, files: Sequence[Path], metas: Sequence[pq.FileMetaData]
) -> dict[str, tuple[pa.Field, Path]]:
    """Each column's unified field and the first file holding it; DatasetError naming the
    two files and the column where Arrow cannot unify them."""
    fields: dict[str, tuple[pa.Field, Path]] = {}
    for path, meta in zip(files, metas, strict=True):
        schema = meta.schema.to_arrow_schema()
        repeated = sorted({n for n in schema.names if schema.names.count(n) > 1 or not n})
        if repeated:
            shown = ", ".join(f"`{n}`" if n else "a column with no name" for n in repeated)
            raise DatasetError(
                f"dataset `{root.name}`: `{path.relative_to(root).as_posix()}` repeats {shown}; "
                "the files of a dataset need distinct column names: write the file again"
            )
        for f in schema:
            if pa.types.is_dictionary(f.type):
                f = f.with_type(f.type.value_type)
            if f.name not in fields:
                fields[f.name] = (f, path)
                continue
            known, first = fields[f.name]
            try:
                merged = pa.unify_schemas(
                    [pa.schema([known]), pa.schema([f])], promote_options="permissive"
                ).field(0)
            except (pa.ArrowTypeError, pa.ArrowInvalid):
                raise DatasetError(
                    f"dataset `{root.name}`: column `{f.name}` is {known.type} in "
                    f"`{first.relative_to(root).as_posix()}` but {f.type} in "
                    f"`{path.relative_to(root).as_posix()}`, which cannot be unified; write the "
                    "column with one type in every file, or open the files apart"
                ) from None
            fields[f.name] = (merged.with_metadata(known.metadata), first)
    return fields
