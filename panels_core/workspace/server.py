"""Serve a workspace over tables with the Panel server (``panels serve``).

Tables are opened once and shared by every session through one Engine; each
browser session gets its own Workspace (cards, queries, widgets), so nothing
typed in one session shows in another.

The server answers only the host names it is given (``hosts``), saves only in
its workspace folder (the ``--workspace`` file's, else the current one), and
listens beyond this machine only when told which names browsers use for it.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from panels_core.threads import lower_thread_priority, start_background

if TYPE_CHECKING:
    from panels_core.workspace.hosts import HostList

__all__ = [
    "demo_paths",
    "listening_hosts",
    "lower_thread_priority",
    "prepare",
    "serve_paths",
    "serve_tables",
    "start_warm_up",
]

WARM_UP_ENV = "PANELS_WARM_UP"
"""Set to ``0`` to skip compiling UMAP's kernels when a server starts."""


def demo_paths(folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write the demo data (once) and return the paths ``panels serve --demo`` opens."""
    from panels_core.demo import write_demo

    out = Path(folder or os.environ.get("PANELS_DEMO_DIR", "demo_data"))
    written = write_demo(out)
    return [Path(written[key]) for key in ("hello", "digits", "store")]


def prepare(
    paths: Sequence[str | os.PathLike[str]],
    *,
    demo: bool = False,
    workspace: str | os.PathLike[str] | None = None,
    delimiter: str | None = None,
    strict: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open the tables and the saved workspace: returns ``(tables, workspace options)``.

    With ``workspace`` naming an existing file, its tables are opened (paths relative
    to it, Store references in the given store folders) and its cards kept; with a
    file that does not exist yet, the default workspace is built and saved there.
    A path that cannot be opened is left out: the sidebar says why (``unavailable``,
    by file name), as does a line on stderr; ValueError when no table opens at all.
    ``delimiter`` forces the delimiter of the CSV files. A table's notes (cells read
    in part) go to stderr too, one line each; ``strict`` refuses such tables instead.
    """
    from panels_core.data.cell_notes import CellWarning
    from panels_core.workspace.loading import load_sources

    all_paths = [*(demo_paths() if demo else []), *paths]
    spec_path = Path(workspace) if workspace is not None else None
    if not all_paths and (spec_path is None or not spec_path.exists()):
        raise ValueError("panels serve: give one or more table files or folders, or --demo")
    failed: dict[str, str] = {}
    with warnings.catch_warnings():  # said below, after the table's name, and in its cards
        warnings.simplefilter("ignore", CellWarning)
        loaded = load_sources(all_paths, delimiter=delimiter, failed=failed, strict=strict)
        tables = {name: item.table for name, item in loaded.items()}
        sources = {name: item.source for name, item in loaded.items()}
        options: dict[str, Any] = {
            "save_path": spec_path,
            "save_root": (spec_path.parent if spec_path is not None else Path.cwd()).resolve(),
            "unavailable": dict(failed),
        }
        if spec_path is not None and spec_path.exists():
            _open_spec_tables(spec_path, all_paths, tables, sources, options, strict)
    if failed and not tables:
        raise ValueError(f"panels serve: no table could be opened: {'; '.join(failed.values())}")
    for why in failed.values():
        print(f"typed-panels: {' '.join(why.split())}", file=sys.stderr, flush=True)
    for name, table in tables.items():
        for note in getattr(table, "notes", ()):
            print(f"typed-panels: table `{name}`: {note}", file=sys.stderr, flush=True)
    options["sources"] = sources
    return tables, options


def _open_spec_tables(
    spec_path: Path,
    paths: Sequence[str | os.PathLike[str]],
    tables: dict[str, Any],
    sources: dict[str, Any],
    options: dict[str, Any],
    strict: bool,
) -> None:
    """Add the saved workspace's tables (those the paths did not open) and its cards to
    ``tables``, ``sources`` and ``options``; a table that cannot be opened goes to
    ``options["unavailable"]``, so its cards say why while the rest of the page works."""
    from panels_core.workspace.loading import (
        TableLoadError,
        absolute_source,
        is_store_folder,
        open_source,
    )
    from panels_core.workspace.saving import read_spec

    spec = read_spec(spec_path)
    stores = [p for p in paths if is_store_folder(Path(p))]
    unavailable = options["unavailable"]
    for name, source in spec.tables.items():
        full = absolute_source(source, spec_path.parent)
        if name in tables and sources[name] == full:
            continue
        try:
            item = open_source(name, source, spec_path.parent, stores, strict)
        except TableLoadError as exc:
            unavailable[name], sources[name] = str(exc), full
            print(
                f"typed-panels: {spec_path}: {' '.join(str(exc).split())}",
                file=sys.stderr,
                flush=True,
            )
            continue
        tables[name], sources[name] = item.table, item.source
    options.update(
        cards=spec.cards, layout=spec.layout, plugins=spec.plugins, selections=spec.selections
    )


def _register_models() -> None:
    """Import the plotting libraries panels draw with before the first page is served, so
    every page's bundle knows their Bokeh models (a model first imported on a worker
    thread after a page loaded is unknown to that page)."""
    import panel as pn

    pn.extension("tabulator")
    try:
        import holoviews.plotting.bokeh  # noqa: F401
    except ImportError:  # panels that need HoloViews say so in their own cards
        return


def start_warm_up(cards: Sequence[Any], panels: Any = None) -> threading.Thread | None:
    """Get ready early what the cards' panel kinds ask for (``Panel.warm_up``).

    Each kind's hook runs here (it may start a process, say the projection worker,
    which compiles UMAP's kernels); the slow work hooks return runs one job after
    another on one low-priority daemon thread (returned). The first UMAP a user asks
    for then does not wait for compilation (tens of seconds on 2 cores, in each new
    process). Skipped when ``PANELS_WARM_UP=0``.
    """
    from panels_core.panel_registry import PLUGIN_FAULTS, registry

    if os.environ.get(WARM_UP_ENV, "1") == "0":
        return None
    panels = registry if panels is None else panels
    jobs = []
    for kind in dict.fromkeys(card.kind for card in cards):
        try:
            job = panels.get(kind).warm_up() if kind in panels else None
        except PLUGIN_FAULTS as exc:
            print(f"typed-panels: {kind} warm-up failed: {exc}", file=sys.stderr, flush=True)
            continue
        if job is not None:
            jobs.append(job)
    if not jobs:
        return None

    def run_all() -> None:
        for job in jobs:
            try:
                job.run()
            except Exception as exc:
                print(
                    f"typed-panels: {job.label} warm-up failed: {exc}", file=sys.stderr, flush=True
                )

    name = "panels-" + "-".join(job.label.lower() for job in jobs) + "-warm-up"
    return start_background(name, ", ".join(job.label for job in jobs), run_all)


def listening_hosts(address: str, port: int, allow_origin: Sequence[str] = ()) -> HostList:
    """The HostList the server answers; ValueError for a bad name, or for a non-loopback
    ``address`` without ``allow_origin``."""
    from panels_core.workspace.hosts import HostList, is_loopback

    hosts = HostList(port, allow_origin)
    if not is_loopback(address) and not allow_origin:
        raise ValueError(
            f"--address {address} listens beyond this machine: give --allow-origin "
            "HOST[:PORT] (the name browsers use to reach it), and --basic-auth"
        )
    return hosts


def _warn_public(address: str, port: int, logins: bool, read_only: Any) -> None:
    """Say on stderr who can use a workspace that listens beyond this machine."""
    who = "anyone who logs in" if logins else "anyone who reaches it"
    can = "read every table this server opened" + ("" if read_only else ", save in its folder")
    print(
        f"typed-panels: WARNING: listening on {address}:{port}: {who} can use this "
        f"workspace ({can})",
        file=sys.stderr,
        flush=True,
    )


def _auth_options(basic_auth: str | None, oauth_provider: str | None) -> dict[str, Any]:
    """The login options for ``pn.serve``: none, or the given ones plus a cookie secret."""
    import panel as pn

    if not (basic_auth or oauth_provider):
        return {}
    auth: dict[str, Any] = {"basic_auth": basic_auth, "oauth_provider": oauth_provider}
    if not pn.config.cookie_secret:  # logins last as long as this process
        auth["cookie_secret"] = secrets.token_urlsafe(32)
    return auth


def serve_tables(
    tables: Mapping[str, Any],
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    title: str = "typed-panels",
    allow_origin: Sequence[str] = (),
    basic_auth: str | None = None,
    oauth_provider: str | None = None,
    cluster: str | None = None,
    **workspace: Any,
) -> None:
    """Serve a workspace over ``tables`` until interrupted; every session shares one engine.

    ``cluster`` (``tcp://host:port`` or ``local:N``): the engine's Parquet tables are
    answered by that Dask cluster (``docs/scale-out.md``); a LocalCluster it started
    is closed when the server stops.

    Only ``localhost:PORT``, ``127.0.0.1:PORT`` and the ``allow_origin`` names
    (``HOST`` or ``HOST:PORT``) are answered; a non-loopback ``address`` needs
    ``allow_origin``. ``basic_auth`` and ``oauth_provider`` go to Panel (the
    OAuth key and secret from Panel's ``PANEL_OAUTH_*`` variables).
    ``workspace`` options (``cards``, ``sources``, ``layout``, ``plugins``,
    ``selections``, ``save_path``, ``save_root``, ``read_only``) go to each session's ``Workspace``.
    """
    from panels_core.workspace.hosts import is_loopback

    hosts = listening_hosts(address, port, allow_origin)
    if not is_loopback(address):
        _warn_public(address, port, bool(basic_auth or oauth_provider), workspace.get("read_only"))
    _register_models()
    with cluster_engine(tables, cluster) as engine:
        _serve_engine(
            engine, port, address, show, title, hosts, basic_auth, oauth_provider, workspace
        )


@contextmanager
def cluster_engine(tables: Mapping[str, Any], cluster: str | None) -> Iterator[Any]:
    """The served engine: on the Dask cluster ``cluster`` names when set (closed after)."""
    from panels_core.query.engine import Engine

    if cluster is None:
        yield Engine(dict(tables))
        return
    from panels_core.query.cluster import close_cluster, open_cluster

    client, local = open_cluster(cluster)
    try:
        where = "a local Dask cluster" if local is not None else f"the Dask cluster at {cluster}"
        print(f"typed-panels: Parquet tables answered by {where}", flush=True)
        yield Engine(dict(tables), cluster=client)
    finally:
        close_cluster(client, local)


def _serve_engine(
    engine: Any,
    port: int,
    address: str,
    show: bool,
    title: str,
    hosts: Any,
    basic_auth: str | None,
    oauth_provider: str | None,
    workspace: dict[str, Any],
) -> None:
    """Serve the workspace over ``engine`` until the server stops (interrupted, or SIGTERM)."""
    import panel as pn

    from panels_core.workspace.app import Workspace, default_cards
    from panels_core.workspace.hosts import install_host_check

    tables = engine.table_names()
    if workspace.get("cards") is None:  # the smart default, worked out once for every session
        workspace["cards"] = default_cards(engine)
    start_warm_up(workspace["cards"])
    engine.warm_up()

    def app() -> Any:
        return Workspace(engine=engine, title=title, **workspace).template()

    auth = _auth_options(basic_auth, oauth_provider)
    print(f"typed-panels: serving {len(tables)} tables on http://{address}:{port}", flush=True)
    server = pn.serve(
        app,
        port=port,
        address=address,
        show=show,
        start=False,
        title=title,
        websocket_origin=hosts.websocket_origins(),
        threaded=False,
        admin=False,
        **auth,
    )
    install_host_check(server, hosts)
    server.start()
    if engine.cluster_client is not None and threading.current_thread() is threading.main_thread():
        # SIGTERM stops the loop, so the cluster this server started is closed
        signal.signal(signal.SIGTERM, lambda *_: server.io_loop.add_callback(server.io_loop.stop))
    server.io_loop.start()


def serve_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    demo: bool = False,
    workspace: str | os.PathLike[str] | None = None,
    delimiter: str | None = None,
    strict: bool = False,
    **options: Any,
) -> None:
    """Open ``paths`` (files, projector folders, stores; plus the demo data) and serve them;
    ``delimiter`` forces the delimiter of the CSV files; ``strict`` refuses a table with
    a cell read only in part."""
    listening_hosts(  # a bad --address / --allow-origin fails before any table is read
        options.get("address", "127.0.0.1"),
        options.get("port", 5006),
        options.get("allow_origin", ()),
    )
    tables, ws_options = prepare(
        paths, demo=demo, workspace=workspace, delimiter=delimiter, strict=strict
    )
    serve_tables(tables, **options, **ws_options)
