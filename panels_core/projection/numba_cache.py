"""The persistent cache folder, and numba's compiled kernels kept in it (set before umap loads)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "configure_numba_cache", "import_umap"]


def cache_dir() -> Path:
    """typed-panels' persistent cache folder: $PANELS_CACHE_DIR, else ~/.cache/typed-panels."""
    configured = os.environ.get("PANELS_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "typed-panels"


def configure_numba_cache() -> None:
    """Point numba's on-disk cache at cache_dir()/numba unless NUMBA_CACHE_DIR is set."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    folder = cache_dir() / "numba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home: numba falls back to __pycache__ or compiles each run
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    config = sys.modules.get("numba.core.config")
    if config is not None and not getattr(config, "CACHE_DIR", ""):
        config.CACHE_DIR = str(folder)  # numba was imported earlier (e.g. by datashader)


def import_umap() -> Any:
    """The umap module, imported after numba's cache folder is set."""
    configure_numba_cache()
    import umap

    return umap
