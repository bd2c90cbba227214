"""The persistent cache folder, and numba's compiled kernels kept in it (set before umap loads)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "COMPILING_UMAP",
    "cache_dir",
    "cache_kernels",
    "configure_numba_cache",
    "import_umap",
    "mark_umap_compiled",
    "umap_kernels_ready",
    "umap_load_message",
]

COMPILING_UMAP = "compiling UMAP kernels (first run on this machine)"
"""The status of a projection while it compiles UMAP's kernels (``umap_kernels_ready``)."""

_COMPILED_HERE: list[bool] = []  # holds True once this process has compiled UMAP's kernels


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


def umap_load_message() -> str:
    """What the UMAP step is doing while umap loads: loading, or compiling on a first run.

    A first run on a machine (no umap kernels in numba's cache folder yet) compiles
    them, about a minute on 2 cores; later runs load them in seconds.
    """
    configure_numba_cache()
    folder = os.environ.get("NUMBA_CACHE_DIR")
    if folder and any(Path(folder).glob("umap_*/*.nbi")):
        return "loading UMAP"
    return "compiling UMAP (the first run on this machine: about a minute)"


def import_umap() -> Any:
    """The umap module, imported after numba's cache folder is set, its kernels cached.

    umap-learn compiles most of its numba kernels without ``cache=True``
    (``smooth_knn_dist``, ``compute_membership_strengths``, the transform's layout
    epoch, ...), so each new process compiled them again. ``cache_kernels`` turns
    numba's on-disk cache on for them before their first call.
    """
    configure_numba_cache()
    import umap
    import umap.distances
    import umap.layouts
    import umap.umap_
    import umap.utils

    for module in (umap.umap_, umap.layouts, umap.utils, umap.distances):
        cache_kernels(module)
    return umap


def mark_umap_compiled() -> None:
    """Note that this process has compiled UMAP's kernels (they stay in memory)."""
    _COMPILED_HERE.append(True)


def umap_kernels_ready() -> bool:
    """True when a UMAP need not compile numba kernels first: this process compiled them,
    or numba's on-disk cache holds pynndescent's kernels and our layout kernel (the slow
    ones to compile; umap-learn caches almost none of its own)."""
    if _COMPILED_HERE:
        return True
    configure_numba_cache()
    spec = importlib.util.find_spec("pynndescent")
    if spec is None or not spec.submodule_search_locations:
        return False  # umap cannot run at all; the fit says why
    layout = Path(__file__).with_name("layout.py")
    package = Path(next(iter(spec.submodule_search_locations)))
    return _cached(package, "*.nbi") and _cached(layout.parent, "layout._layout_epochs-*.nbi")


def _cached(source_dir: Path, pattern: str) -> bool:
    """Whether numba's cache of the modules in ``source_dir`` has a file matching ``pattern``
    (numba's folder for them: NUMBA_CACHE_DIR/<name>_<sha1 of the path>, else __pycache__)."""
    source_dir = Path(os.path.abspath(source_dir))  # as numba names it (no symlinks resolved)
    root = os.environ.get("NUMBA_CACHE_DIR")
    if root:
        digest = hashlib.sha1(str(source_dir).encode(), usedforsecurity=False).hexdigest()
        folder = Path(root) / f"{source_dir.name}_{digest}"
    else:
        folder = source_dir / "__pycache__"
    return any(folder.glob(pattern))


_CACHED_MODULES: set[str] = set()


def cache_kernels(module: Any) -> None:
    """Turn on numba's on-disk cache for every kernel of ``module`` (once per process).

    Call before the kernels are first used: numba then loads them from, or saves them
    to, the cache folder, as for a kernel made with ``cache=True``.
    """
    if module.__name__ in _CACHED_MODULES:
        return
    from numba.core.registry import CPUDispatcher

    for value in vars(module).values():
        if isinstance(value, CPUDispatcher):
            value.enable_caching()
    _CACHED_MODULES.add(module.__name__)
