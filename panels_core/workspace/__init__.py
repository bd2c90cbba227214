"""Workspaces: the saved spec of tables, cards and layout, and the app built on it."""

from __future__ import annotations

from typing import Any

from panels_core.workspace.spec import (
    SCHEMA_VERSION,
    CardSpec,
    LayoutSpec,
    Placement,
    TableSource,
    WorkspaceSpec,
)

__all__ = [
    "SCHEMA_VERSION",
    "CardSpec",
    "LayoutSpec",
    "Placement",
    "TableSource",
    "Workspace",
    "WorkspaceSpec",
]


def __getattr__(name: str) -> Any:
    if name == "Workspace":  # imports Panel: only when asked for
        from panels_core.workspace.app import Workspace

        return Workspace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
