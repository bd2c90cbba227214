"""``panels export``: open the command's inputs as a workspace and write it as a report.

The inputs are one workspace spec file (its Store references looked up in the
given stores, then beside the spec) or table files/folders (a default workspace
over them); ``panels_core.export.workspace_html`` writes the report.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from panels_core.export import workspace_html
from panels_core.workspace.app import Workspace
from panels_core.workspace.loading import load_tables

__all__ = ["export_inputs"]


def _is_workspace_file(path: Path) -> bool:
    return path.suffix.lower() == ".json" and not path.name.lower().endswith(".table.json")


def export_inputs(
    inputs: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    title: str | None = None,
    stores: Iterable[str | os.PathLike[str]] = (),
    strict: bool = False,
) -> Path:
    """``panels export``: a workspace spec file (its Store references looked up in
    ``stores``, then beside the spec), or table files/folders (a default workspace
    over them), written to ``output`` as a static report. ``strict`` refuses a table
    with a cell read only in part (``open_table``)."""
    paths = [Path(p) for p in inputs]
    specs = [p for p in paths if _is_workspace_file(p)]
    if specs and len(paths) > 1:
        raise ValueError(
            f"export: give one workspace spec ({specs[0]}) or table files, not both; "
            "list the tables inside the workspace instead"
        )
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"export: no such file or folder: {', '.join(missing)}")
    if specs:
        workspace = Workspace.from_spec(specs[0], stores=[Path(s) for s in stores], strict=strict)
        if workspace.unavailable:  # a report without them would look complete but is not
            raise ValueError(
                f"export: {specs[0]}: "
                + "; ".join(workspace.unavailable.values())
                + "; fix the paths in the workspace file, or pass --store for Store tables"
            )
        name = title or specs[0].stem
    else:
        workspace = Workspace(tables=load_tables(paths, strict=strict))
        name = title or ", ".join(p.name.split(".")[0] for p in paths)
    return workspace_html(workspace, output, title=name)
