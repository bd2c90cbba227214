"""Table and JoinedTable: typed, Arrow-backed tables built the ways W&B users build them.

A Table holds an Arrow table (or, lazily, a Parquet file it has not read),
rows added one by one are buffered and converted in one go, and every value
added from Python is type-checked against its column so a mixed column fails
early with the column, the row and both types.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from panels_core.data.columns import (
    arrow_from_columns,
    build_column,
    check_names,
    column_type,
    from_dataframe,
    has_python_values,
    mixed_types_error,
    python_values,
    short_value,
    shown_names,
)
from panels_core.data.damage import READ_ERRORS, damage_message, sample_around_damage
from panels_core.data.dataset import DatasetSource, ParquetDataset, footer_null_counts, open_dataset
from panels_core.data.infer import SAMPLE_ROWS, infer_from_arrow, needs_sample, sample_rows
from panels_core.types import (
    AnyType,
    CategoryType,
    JoinedTableType,
    MixedTypesError,
    OptionalType,
    StringType,
    TableType,
    UnknownType,
    describe,
    is_assignable,
    strip_optional,
    type_of,
    unify,
)

__all__ = ["JoinedTable", "Table", "infer_table_type"]

TYPES_KEY = b"typed_panels.types"
FORMAT_KEY = b"typed_panels.format"
FORMAT_VERSION = b"1"


class Table:
    """A typed table on Arrow.

    Build it from rows (``Table(columns=[...], data=[[...]])``), a DataFrame
    (``Table(dataframe=df)``, pandas or anything with the Arrow stream
    interface), Arrow (``Table.from_arrow``) or Parquet (``Table.from_parquet``,
    lazy); grow it with ``add_data``, ``add_col`` and ``add_computed_columns``.
    ``dtypes={"label": "category"}`` overrides inferred column types.
    """

    _dataset: ParquetDataset | None = None  # a Parquet dataset the rows are read from

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        data: Sequence[Sequence[Any]] | Any | None = None,
        dataframe: Any | None = None,
        dtypes: Mapping[str, Any] | None = None,
        allow_mixed_types: bool = False,
    ) -> None:
        self.allow_mixed_types = allow_mixed_types
        self._dtypes = dict(dtypes or {})
        self._arrow: pa.Table | None = None
        self._parquet_path: Path | None = None
        self._parquet_meta: pq.FileMetaData | None = None
        self._pending: list[list[Any]] = []
        self._pending_types: list[Any] = []
        self._type: TableType | None = None
        self.renamed: dict[str, str] = {}
        self.notes: list[str] = []
        if dataframe is None and data is not None and hasattr(data, "columns") and columns is None:
            dataframe, data = data, None
        if dataframe is not None:
            self._arrow = from_dataframe(dataframe, allow_mixed_types)
            self._columns = list(self._arrow.column_names)
        else:
            if data is not None and columns is None:
                raise ValueError("Table(data=...) needs columns=[...] naming the values of a row")
            self._columns = check_names(columns or [])
            rows = [] if data is None else (data.tolist() if isinstance(data, np.ndarray) else data)
            for i, row in enumerate(rows):
                self._check_row_length(row, i)
            cols = [[row[j] for row in rows] for j in range(len(self._columns))]
            self._arrow = arrow_from_columns(self._columns, cols, allow_mixed_types)
        self._check_dtype_names()

    # ---------------------------------------------------------------- constructors

    @classmethod
    def from_arrow(
        cls,
        table: pa.Table | pa.RecordBatch,
        dtypes: Mapping[str, Any] | None = None,
        *,
        rename: bool = False,
    ) -> Table:
        """A Table over an Arrow table (no copy).

        A column without a name or with a repeated one is refused, or with
        ``rename=True`` (a file's columns) shown under a name of its own
        (``shown_names``), kept in ``renamed``.
        """
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        names = shown_names(table.column_names) if rename else table.column_names
        renamed = {n: o for n, o in zip(names, table.column_names, strict=True) if n != o}
        if renamed:
            table = table.rename_columns(names)
        check_names(table.column_names)
        obj = cls.__new__(cls)
        obj._init_empty(dtypes)
        obj.renamed = renamed
        obj._arrow = table
        obj._columns = list(table.column_names)
        obj._check_dtype_names()
        return obj

    @classmethod
    def from_parquet(
        cls, path: str | os.PathLike[str], dtypes: Mapping[str, Any] | None = None
    ) -> Table:
        """A Table backed by a Parquet file: only its footer is read until rows are asked for."""
        path = Path(path)
        try:
            meta = pq.read_metadata(path)
            schema = meta.schema.to_arrow_schema()
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: `{path}`") from None
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(
                f"`{path}` is not a readable Parquet file ({exc}); it may be truncated or in "
                "another format: export it again, or open it with the reader for its format"
            ) from exc
        obj = cls.__new__(cls)
        obj._init_empty(dtypes)
        obj._parquet_path = path.resolve()
        obj._parquet_meta = meta
        obj._file_names = list(schema.names)
        names = shown_names(schema.names)
        obj.renamed = {n: o for n, o in zip(names, schema.names, strict=True) if n != o}
        obj._parquet_schema = pa.schema(
            [f.with_name(n) for f, n in zip(schema, names, strict=True)], metadata=schema.metadata
        )
        obj._columns = names
        obj._check_dtype_names()
        return obj

    @classmethod
    def from_parquet_dataset(
        cls, source: DatasetSource | ParquetDataset, dtypes: Mapping[str, Any] | None = None
    ) -> Table:
        """A Table over many Parquet files (a folder, a glob, a list): only their footers
        are read (``panels_core.data.dataset``); the engine scans the files."""
        dataset = source if isinstance(source, ParquetDataset) else open_dataset(source)
        obj = cls.__new__(cls)
        obj._init_empty(dtypes)
        obj._dataset = dataset
        obj._columns = list(dataset.schema.names)
        obj._check_dtype_names()
        return obj

    def _init_empty(self, dtypes: Mapping[str, Any] | None) -> None:
        self.allow_mixed_types = False
        self._dtypes = dict(dtypes or {})
        self._arrow = None
        self._parquet_path = None
        self._parquet_meta = None
        self._pending = []
        self._pending_types = []
        self._type = None
        self.renamed: dict[str, str] = {}
        """Columns shown under another name than their file's (``{"x (2)": "x"}``)."""
        self.notes: list[str] = []
        """What the reader did to cells it could read only in part, one line per column
        and problem naming the rows (a W&B mask layer dropped, ...); empty when none."""

    def with_dtypes(self, dtypes: Mapping[str, Any]) -> Table:
        """The same data with more column type overrides."""
        obj = self.__class__.__new__(self.__class__)
        obj.__dict__.update(self.__dict__)
        obj._dtypes = {**self._dtypes, **dtypes}
        obj._pending = list(self._pending)
        obj._type = None
        obj._check_dtype_names()
        return obj

    def _check_dtype_names(self) -> None:
        unknown = [name for name in self._dtypes if name not in self._columns]
        if unknown:
            raise KeyError(
                f"dtypes names {unknown} which are not columns; the columns are {self._columns}"
            )

    def _check_row_length(self, row: Sequence[Any], index: int) -> None:
        if isinstance(row, str | bytes) or not hasattr(row, "__len__"):
            raise TypeError(f"row {index} is {short_value(row)}, not a sequence of values")
        if len(row) != len(self._columns):
            raise ValueError(
                f"row {index} has {len(row)} values but the table has {len(self._columns)} "
                f"columns ({', '.join(self._columns)})"
            )

    # ---------------------------------------------------------------- mutation

    def add_data(self, *row: Any) -> None:
        """Append one row; values are type-checked now and converted to Arrow in batches."""
        index = len(self)
        self._check_row_length(row, index)
        if not self._pending:
            self._pending_types = self._python_types()
        new_types = list(self._pending_types)
        for j, (name, value) in enumerate(zip(self._columns, row, strict=True)):
            value_type = type_of(value)
            if isinstance(value_type, UnknownType):
                column_type(name, [value], start_row=index)  # raises the unknown-type error
            try:
                new_types[j] = unify(new_types[j], value_type)
            except MixedTypesError:
                if not self.allow_mixed_types:
                    raise mixed_types_error(name, index, value, value_type, new_types[j]) from None
                new_types[j] = AnyType()
        self._pending_types = new_types
        self._pending.append(list(row))
        self._type = None

    def _python_types(self) -> list[Any]:
        """Per-column types as Python values see them (categories are strings)."""
        if self._arrow is None and self._parquet_path is None:
            return [OptionalType(inner=UnknownType()) for _ in self._columns]
        types = []
        for t in self.type.columns.values():
            inner = strip_optional(t)
            if isinstance(inner, CategoryType):
                inner = StringType()
            types.append(OptionalType(inner=inner) if isinstance(t, OptionalType) else inner)
        return types

    def add_col(self, name: str, values: Sequence[Any] | np.ndarray) -> None:
        """Add a column; ``values`` has one value per row (an (n, d) array is an embedding column)."""
        (name,) = check_names([name])
        if name in self._columns:
            raise ValueError(f"add_col: the table already has a column `{name}`")
        arrow = self.to_arrow()
        if isinstance(values, np.ndarray) and values.ndim == 2:
            values = list(values)
        values = list(values)
        if len(values) != arrow.num_rows:
            raise ValueError(
                f"add_col(`{name}`): {len(values)} values for a table of {arrow.num_rows} rows"
            )
        data_type = column_type(name, values, allow_mixed=self.allow_mixed_types)
        field, array = build_column(name, values, data_type)
        self._set_arrow(arrow.append_column(field, array))
        self._columns.append(name)

    def add_computed_columns(self, fn: Callable[[dict[str, Any], int], Mapping[str, Any]]) -> None:
        """Add the columns ``fn(row, index) -> {name: value}`` computes for every row."""
        results = [dict(fn(row, i)) for i, row in enumerate(self.iter_rows())]
        names: list[str] = []
        for result in results:
            names.extend(k for k in result if k not in names)
        for name in names:
            self.add_col(name, [result.get(name) for result in results])

    def _set_arrow(self, arrow: pa.Table) -> None:
        self._arrow = arrow
        self._parquet_path = None
        self._parquet_meta = None
        self._dataset = None
        self._type = None

    # ---------------------------------------------------------------- access

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self._columns)

    column_names = columns

    @property
    def parquet_path(self) -> Path | None:
        """The Parquet file this table reads lazily, while it is unmodified."""
        return self._parquet_path if not self._pending else None

    @property
    def parquet_dataset(self) -> ParquetDataset | None:
        """The Parquet dataset this table reads lazily, while it is unmodified."""
        return self._dataset if not self._pending else None

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema (no rows read for a Parquet-backed table)."""
        if self.parquet_path is not None:
            return self._parquet_schema
        if self.parquet_dataset is not None:
            return self.parquet_dataset.schema
        return self.to_arrow().schema

    def __len__(self) -> int:
        if self._parquet_meta is not None:
            base = self._parquet_meta.num_rows
        elif self._dataset is not None:
            base = self._dataset.num_rows
        else:
            base = self._arrow.num_rows if self._arrow is not None else 0
        return base + len(self._pending)

    def to_arrow(self) -> pa.Table:
        """The whole table as Arrow (reads a Parquet-backed table; converts buffered rows)."""
        if self._parquet_path is not None and self._arrow is None:
            try:  # not pq.read_table: it refuses a file that repeats a column name
                with pq.ParquetFile(self._parquet_path) as file:
                    self._arrow = file.read().rename_columns(self._columns)
            except READ_ERRORS as exc:
                raise ValueError(damage_message(self._parquet_path, exc)) from exc
        if self._dataset is not None and self._arrow is None:
            self._arrow = self._dataset.read()
        if self._pending:
            self._flush_pending()
        return self._arrow if self._arrow is not None else pa.table({})

    def _flush_pending(self) -> None:
        start = len(self) - len(self._pending)
        columns = [[row[j] for row in self._pending] for j in range(len(self._columns))]
        fields, arrays = [], []
        for name, values, data_type in zip(
            self._columns, columns, self._pending_types, strict=True
        ):
            field, array = build_column(name, values, data_type, start_row=start)
            fields.append(field)
            arrays.append(array)
        new = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        old = self._arrow
        self._pending = []
        self._pending_types = []
        self._set_arrow(new if old is None or old.num_rows == 0 else self._concat(old, new))

    def _concat(self, old: pa.Table, new: pa.Table) -> pa.Table:
        if old.schema.equals(new.schema, check_metadata=True):
            return pa.concat_tables([old, new])
        fields, arrays = [], []
        for name in self._columns:
            old_field, new_field = old.schema.field(name), new.schema.field(name)
            if old_field.equals(new_field, check_metadata=True):
                fields.append(old_field)
                arrays.append(pa.chunked_array([*old[name].chunks, *new[name].chunks]))
                continue
            values = python_values(old[name], old_field) + python_values(new[name], new_field)
            data_type = column_type(name, values, allow_mixed=self.allow_mixed_types)
            field, array = build_column(name, values, data_type)
            fields.append(field)
            arrays.append(pa.chunked_array([array]))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    @property
    def type(self) -> TableType:
        """The table's TableType: stored types, else inferred from a bounded sample."""
        if self._type is None:
            self._type = self._compute_type()
            pa.default_memory_pool().release_unused()  # the freed sample's pages (8-10 MiB)
        return self._type

    def _compute_type(self) -> TableType:
        if self.parquet_path is not None:
            schema = self._parquet_schema
            stored = (schema.metadata or {}).get(TYPES_KEY)
            if stored is not None:
                base = TableType.model_validate_json(stored)
                if not self._dtypes:
                    return base
            null_counts = footer_null_counts(self._parquet_meta, self._file_names, schema.names)
            wanted = [
                f.name
                for f in schema
                if f.name in self._dtypes or needs_sample(f, null_counts.get(f.name))
            ]
            sample = self._parquet_sample(wanted)
            return infer_from_arrow(schema, sample, null_counts, self._dtypes)
        dataset = self.parquet_dataset
        if dataset is not None and self._arrow is None:
            sample, nulls = dataset.sample(), dataset.null_counts()
            return infer_from_arrow(dataset.schema, sample, nulls, self._dtypes)
        arrow = self.to_arrow()
        null_counts = {name: arrow.column(name).null_count for name in arrow.column_names}
        return infer_from_arrow(arrow.schema, sample_rows(arrow), null_counts, self._dtypes)

    def _parquet_sample(self, wanted: Sequence[str]) -> pa.Table:
        """The first rows of a Parquet file's ``wanted`` columns (all of them when one's
        name is repeated or empty in the file), nulls in the others, read page by page;
        when a page is damaged, the columns that read (only a damaged column fails)."""
        schema, names = self._parquet_schema, self._file_names
        picked = [names[schema.get_field_index(n)] for n in wanted]
        by_name = all(n and names.count(n) == 1 for n in picked)
        stream = {"pre_buffer": False, "buffer_size": 1 << 16}
        with pq.ParquetFile(self._parquet_path, metadata=self._parquet_meta, **stream) as file:
            try:
                if by_name and not picked:
                    return schema.empty_table()
                batches = file.iter_batches(
                    batch_size=SAMPLE_ROWS, columns=picked if by_name else None, use_threads=False
                )
                for batch in batches:
                    read = dict(zip(picked if by_name else schema.names, batch.columns))
                    columns = [read.get(f.name, pa.nulls(batch.num_rows, f.type)) for f in schema]
                    return pa.Table.from_arrays(columns, schema=schema)
            except READ_ERRORS:
                return sample_around_damage(
                    file, self._parquet_schema, self._file_names, SAMPLE_ROWS
                )
        return self._parquet_schema.empty_table()

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """Each row as a dict (images as Image objects, media files as MediaFile objects)."""
        arrow = self.to_arrow()
        converted = {
            name: python_values(arrow[name], arrow.schema.field(name))
            for name in arrow.column_names
            if has_python_values(arrow.schema.field(name))
        }
        for batch_start, batch in _batches(arrow):
            for offset, row in enumerate(batch.to_pylist()):
                for name, values in converted.items():
                    row[name] = values[batch_start + offset]
                yield row

    def iterrows(self) -> Iterator[tuple[int, list[Any]]]:
        """``(index, values)`` per row, like W&B's Table.iterrows."""
        for i, row in enumerate(self.iter_rows()):
            yield i, [row[name] for name in self._columns]

    def get_column(self, name: str, convert_to: str | None = None) -> Any:
        """One column as Python values, or as numpy with ``convert_to="numpy"``."""
        if name not in self._columns:
            raise KeyError(f"no column `{name}`; the columns are {self._columns}")
        arrow = self.to_arrow()
        column, field = arrow[name], arrow.schema.field(name)
        if convert_to == "numpy":
            if pa.types.is_fixed_size_list(field.type):
                flat = column.combine_chunks()
                return flat.flatten().to_numpy(zero_copy_only=False).reshape(len(flat), -1)
            return column.to_numpy()
        return python_values(column, field)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (images as Image objects, embeddings as arrays)."""
        arrow = self.to_arrow()
        df = arrow.to_pandas()
        for name in arrow.column_names:
            field = arrow.schema.field(name)
            if has_python_values(field):
                df[name] = python_values(arrow[name], field)
        return df

    def equals(self, other: Table) -> bool:
        """Same columns, same values, same type."""
        return (
            isinstance(other, Table)
            and self.type == other.type
            and self.to_arrow().equals(other.to_arrow())
        )

    # ---------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write Parquet with the table's types (and image layers, classes) in its metadata.

        The write is atomic: a crash leaves no half-written file at ``path``.
        """
        path = Path(path)
        arrow = self.to_arrow()
        metadata = dict(arrow.schema.metadata or {})
        metadata[TYPES_KEY] = self.type.model_dump_json().encode()
        metadata[FORMAT_KEY] = FORMAT_VERSION
        arrow = arrow.replace_schema_metadata(metadata)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(arrow, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def __repr__(self) -> str:
        cols = ", ".join(f"{k}: {describe(v)}" for k, v in list(self.type.columns.items())[:8])
        more = ", ..." if len(self._columns) > 8 else ""
        return f"Table({len(self)} rows; {cols}{more})"


def _batches(arrow: pa.Table, size: int = 65536) -> Iterator[tuple[int, pa.Table]]:
    for start in range(0, arrow.num_rows, size):
        yield start, arrow.slice(start, size)


class JoinedTable:
    """Two tables joined on a key: ``JoinedTable(left, right, "id")`` or ``on=("id", "image_id")``."""

    def __init__(
        self,
        left: Table,
        right: Table,
        on: str | Sequence[str],
        names: tuple[str, str] = ("left", "right"),
    ) -> None:
        for side, table in (("left", left), ("right", right)):
            if not isinstance(table, Table):
                raise TypeError(
                    f"JoinedTable: the {side} side must be a Table, not {type(table).__name__}"
                )
        if isinstance(on, str):
            left_key = right_key = on
        else:
            if len(on) != 2:
                raise ValueError("JoinedTable: `on` is one key or a (left_key, right_key) pair")
            left_key, right_key = on
        for side, table, key in (("left", left, left_key), ("right", right, right_key)):
            if key not in table.columns:
                raise KeyError(
                    f"JoinedTable: `{key}` is not a column of the {side} table; "
                    f"its columns are {table.columns}"
                )
        if names[0] == names[1]:
            raise ValueError("JoinedTable: the two sides need different names")
        left_type = strip_optional(left.type.columns[left_key])
        right_type = strip_optional(right.type.columns[right_key])
        if not (is_assignable(left_type, right_type) or is_assignable(right_type, left_type)):
            comparable = {type(left_type), type(right_type)} <= {StringType, CategoryType}
            if not comparable:
                raise TypeError(
                    f"JoinedTable: cannot join {describe(left_type)} `{left_key}` with "
                    f"{describe(right_type)} `{right_key}`; the keys must hold the same kind of value"
                )
        self.left, self.right = left, right
        self.left_key, self.right_key = left_key, right_key
        self.left_name, self.right_name = names

    @property
    def type(self) -> JoinedTableType:
        """The JoinedTableType of this join."""
        return JoinedTableType(
            left=self.left.type,
            right=self.right.type,
            left_key=self.left_key,
            right_key=self.right_key,
            left_name=self.left_name,
            right_name=self.right_name,
        )

    @property
    def notes(self) -> list[str]:
        """The notes of both sides (see ``Table.notes``), each after its side's name."""
        return [
            f"{name}: {note}"
            for name, side in ((self.left_name, self.left), (self.right_name, self.right))
            for note in side.notes
        ]

    def __repr__(self) -> str:
        return (
            f"JoinedTable({self.left_name}.{self.left_key} = {self.right_name}.{self.right_key}; "
            f"{len(self.left)} x {len(self.right)} rows)"
        )


def infer_table_type(source: Any, dtypes: Mapping[str, Any] | None = None) -> TableType:
    """The TableType of an Arrow table, a pandas DataFrame or a Table.

    Reads the schema, the null counts Arrow already keeps, and at most
    ``SAMPLE_ROWS`` rows.
    """
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        null_counts = {name: source.column(name).null_count for name in source.column_names}
        return infer_from_arrow(source.schema, sample_rows(source), null_counts, dtypes)
    if not isinstance(source, Table):
        source = Table(dataframe=source, dtypes=dtypes)
        return source.type
    return source.type if not dtypes else source.with_dtypes(dtypes).type
