"""typed-panels: typed, swappable visualizer panels for ML tables.

The public names are imported lazily, so ``import panels_core`` stays cheap
and a plugin that needs only the types does not pull in Panel and Bokeh.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Table": "panels_core.data.table",
    "JoinedTable": "panels_core.data.table",
    "Image": "panels_core.data.media",
    "Classes": "panels_core.data.media",
    "open_table": "panels_core.data.sources",
    "Store": "panels_core.data.store",
    "infer_table_type": "panels_core.data.table",
    "is_assignable": "panels_core.types",
    "type_of": "panels_core.types",
    "Panel": "panels_core.panel",
    "PanelConfig": "panels_core.panel",
    "Column": "panels_core.panel",
    "Prefer": "panels_core.panel",
    "looks_like_id": "panels_core.panel",
    "registry": "panels_core.panel_registry",
    "Query": "panels_core.query.model",
    "View": "panels_core.view",
    "Workspace": "panels_core.workspace",
    "render": "panels_core.export",
    "extension": "panels_core.notebook",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'panels_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
