"""Workspaces: the saved spec of tables, cards and layout (the app builds on it)."""

from __future__ import annotations

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
    "WorkspaceSpec",
]
