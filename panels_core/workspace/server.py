"""Serve a workspace over tables with the Panel server (``panels serve``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["demo_paths", "serve_paths", "serve_tables"]


def demo_paths(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write the demo data (once) and return the paths ``panels serve --demo`` opens."""
    from panels_core.demo import write_demo

    out = Path(folder or os.environ.get("PANELS_DEMO_DIR", "demo_data"))
    written = write_demo(out)
    return [Path(written[key]) for key in ("hello", "digits", "store")]


def serve_tables(
    tables: Mapping[str, Any],
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    title: str = "typed-panels",
) -> None:
    """Serve a workspace over ``tables`` until interrupted; every session shares one engine."""
    import panel as pn

    from panels_core.query.engine import Engine
    from panels_core.workspace.app import Workspace

    engine = Engine(dict(tables))

    def app() -> Any:
        return Workspace(engine=engine, title=title).template()

    origins = [f"{host}:{port}" for host in ("localhost", "127.0.0.1", address)]
    print(f"typed-panels: serving {len(tables)} tables on http://{address}:{port}", flush=True)
    pn.serve(
        app,
        port=port,
        address=address,
        show=show,
        title=title,
        websocket_origin=list(dict.fromkeys(origins)),
        threaded=False,
    )


def serve_paths(
    paths: Sequence[str | os.PathLike[str]], *, demo: bool = False, **options: Any
) -> None:
    """Open ``paths`` (files, projector folders, stores; plus the demo data) and serve them."""
    from panels_core.workspace.loading import load_tables

    all_paths = [*(demo_paths() if demo else []), *paths]
    if not all_paths:
        raise ValueError("panels serve: give one or more table files or folders, or --demo")
    serve_tables(load_tables(all_paths), **options)
