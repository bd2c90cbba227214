"""Arrow IPC / Feather files, memory-mapped."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc

from panels_core.data.table import Table

__all__ = ["read_arrow_ipc"]


def read_arrow_ipc(
    path: str | os.PathLike[str], *, dtypes: Mapping[str, Any] | None = None
) -> Table:
    """An Arrow IPC file or stream, or a Feather file, memory-mapped (no copy of its buffers)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(8)
        if head.startswith(b"FEA1"):
            arrow = feather.read_table(path, memory_map=True)
        else:
            source = pa.memory_map(str(path), "r")
            if head.startswith(b"ARROW1"):
                arrow = ipc.open_file(source).read_all()
            else:
                arrow = ipc.open_stream(source).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(
            f"cannot read Arrow IPC / Feather file `{path}` ({exc}); it may be truncated or in "
            "another format: write it again (pyarrow.feather.write_feather), or open it with the "
            "reader for its format"
        ) from exc
    return Table.from_arrow(arrow, dtypes=dtypes, rename=True)
