"""The ``panels`` command: ``plugins``, ``info``, ``schema`` (more subcommands plug in here).

Each subcommand is a ``Command`` in ``COMMANDS``: a name, a help line, a
function adding its arguments and a function running it. Errors print one
line, ``panels: error: ...``, and exit with status 2 (set ``PANELS_DEBUG=1``
to see the traceback instead). Output whose reader has gone (``panels info t | head``)
ends quietly with status 141, as a Unix tool stopped by SIGPIPE.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import typing
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["COMMANDS", "SIGPIPE_STATUS", "CliError", "Command", "build_parser", "main"]


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


@dataclasses.dataclass(frozen=True)
class Command:
    """One subcommand: ``configure`` adds its arguments, ``run(args, out)`` returns the status."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, TextIO], int]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line too."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _table_text(rows: list[list[str]], header: list[str]) -> str:
    """Rows as left-aligned text columns under a header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]
    ]
    return "\n".join(lines) + "\n"


def _dump_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- warm-up


def _configure_warm_up(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def _run_warm_up(args: argparse.Namespace, out: TextIO) -> int:
    """Compile UMAP's numba kernels into the on-disk cache, so no server pays for it later."""
    del args
    from panels_core.projection import warm_up

    try:
        seconds = warm_up()
    except ImportError as exc:
        print(
            f"panels: error: UMAP cannot run here ({exc}); install typed-panels' "
            "dependencies (umap-learn, faiss-cpu) and try again",
            file=sys.stderr,
        )
        return 1
    folder = os.environ.get("NUMBA_CACHE_DIR") or "numba's __pycache__ folders"
    out.write(
        f"UMAP's kernels are compiled and kept in {folder} ({seconds:.0f} s); "
        "a server's first UMAP on this machine loads them instead of compiling\n"
    )
    return 0


# --------------------------------------------------------------------------- plugins


def _configure_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_plugins(args: argparse.Namespace, out: TextIO) -> int:
    from panels_core.panel_registry import registry

    with warnings.catch_warnings():  # the listing shows every failure itself
        warnings.simplefilter("ignore", RuntimeWarning)
        statuses = registry.statuses()
    if args.json:
        _dump_json([s.model_dump() for s in statuses], out)
        return 0
    if not statuses:
        out.write("no panels installed (entry-point group `typed_panels.panels` is empty)\n")
        return 0
    rows = [
        [s.kind, s.title, s.distribution or "-", s.version or "-", s.state, s.error or ""]
        for s in statuses
    ]
    out.write(_table_text(rows, ["KIND", "TITLE", "DISTRIBUTION", "VERSION", "STATUS", "ERROR"]))
    return 0


# --------------------------------------------------------------------------- info


def _delimiter(text: str) -> str:
    """A ``--delimiter`` value: one character, or ``\\t`` / ``tab`` for a tab."""
    text = "\t" if text in ("\\t", "tab", "TAB") else text
    if len(text) != 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not one character; give e.g. ';', '|', or '\\t' (or tab) for a tab"
        )
    return text


def _add_delimiter(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delimiter",
        type=_delimiter,
        metavar="CHAR",
        help="the delimiter of CSV files (default: sniffed from the first lines: , tab ; |); "
        "'\\t' or tab for a tab",
    )


def _add_strict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse a table with a cell that reads only in part (a W&B mask or box layer "
        "that does not fit its image), instead of dropping that layer with a note",
    )


def _open(
    path: Path, delimiter: str | None = None, tensor_name: str | None = None, strict: bool = False
) -> Any:
    """A Table (or JoinedTable) for a file, through ``panels_core.data.sources.open_table``
    (its notes are the caller's to show: they are not warned)."""
    from panels_core.data.cell_notes import CellWarning
    from panels_core.data.dataset import is_glob
    from panels_core.data.sources import detect_format, open_table

    if is_glob(path) and not path.exists():  # a quoted pattern of Parquet files
        return open_table(str(path))
    if not path.exists():
        raise CliError(f"no such file: {path}")

    options: dict[str, Any] = {"strict": strict}
    if delimiter is not None or tensor_name is not None:
        fmt = detect_format(path)
        for option, value, wanted, what in (
            ("--delimiter", delimiter, "csv", "CSV files"),
            ("--tensor-name", tensor_name, "tensorboard", "TensorBoard projector configs"),
        ):
            if value is not None and fmt != wanted:
                raise CliError(f"{option} applies to {what}; `{path}` is read as {fmt}")
    if delimiter is not None:
        options["delimiter"] = delimiter
    if tensor_name is not None:
        options["tensor_name"] = tensor_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CellWarning)
        return open_table(path, **options)


def _configure_info(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="a table file (Parquet, CSV, Arrow, W&B json, ...)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_delimiter(parser)
    _add_strict(parser)
    parser.add_argument(
        "--tensor-name",
        metavar="NAME",
        help="the embedding of a TensorBoard projector config that lists several",
    )


def _run_info(args: argparse.Namespace, out: TextIO) -> int:
    from panels_core.panel import columns_of
    from panels_core.panel_registry import registry
    from panels_core.types import describe

    table = _open(args.path, args.delimiter, args.tensor_name, args.strict)
    table_type = table.type
    try:
        rows: int | None = len(table)
    except TypeError:
        rows = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        matches = registry.compatible(table_type)
        broken = [s for s in registry.statuses() if s.state == "failed"]
    columns = columns_of(table_type)
    renamed = dict(getattr(table, "renamed", {}))
    if args.json:
        _dump_json(
            {
                "path": str(args.path),
                "rows": rows,
                "type": table_type.model_dump(mode="json"),
                "columns": [{"name": n, "type": describe(t)} for n, t in columns.items()],
                "renamed": renamed,
                "notes": list(getattr(table, "notes", [])),
                "panels": [
                    {
                        "kind": m.kind,
                        "title": m.panel.title,
                        "score": m.score,
                        "config": m.config.model_dump(mode="json"),
                    }
                    for m in matches
                ],
            },
            out,
        )
        return 0
    size = f"{rows:,} rows, " if rows is not None else ""
    out.write(f"{args.path}: {size}{len(columns)} columns\n\n")
    out.write(_table_text([[n, describe(t)] for n, t in columns.items()], ["COLUMN", "TYPE"]))
    out.write("\ncompatible panels, best first:\n")
    if not matches:
        out.write("  (none)\n")
    for i, m in enumerate(matches, 1):
        config = json.dumps(m.config.model_dump(mode="json"))
        out.write(f"  {i}. {m.kind} ({m.panel.title}, score {m.score:g})  {config}\n")
    if renamed:
        shown = ", ".join(
            f"`{n}` ({f'`{o}`' if o else 'no name'} in the file)" for n, o in renamed.items()
        )
        out.write(f"\nnote: the file repeats a column name or leaves one empty; shown as {shown}\n")
    for note in getattr(table, "notes", []):
        out.write(f"\nnote: {note}\n")
    if broken:
        kinds = ", ".join(s.kind for s in broken)
        out.write(f"\nnote: plugins that failed to load: {kinds} (see `panels plugins`)\n")
    return 0


# --------------------------------------------------------------------------- schema


def _configure_schema(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")


def _run_schema(args: argparse.Namespace, out: TextIO) -> int:
    from panels_core.panel_registry import registry
    from panels_core.workspace import WorkspaceSpec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        panels = registry.config_schemas()
    data = {
        "workspace": WorkspaceSpec.model_json_schema(mode="serialization"),
        "panels": panels,
    }
    if args.output is not None:
        args.output.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        out.write(f"wrote {args.output}\n")
    else:
        _dump_json(data, out)
    return 0


# --------------------------------------------------------------------------- export


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        help="a workspace spec (ws.json), or table files/folders for a default workspace",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .html file to write")
    parser.add_argument(
        "--title", help="the report's title (default: the spec's or tables' file names)"
    )
    parser.add_argument(
        "--store",
        type=Path,
        action="append",
        default=[],
        help="a Store folder holding the spec's `name:vN` tables (repeatable)",
    )
    _add_strict(parser)


@contextlib.contextmanager
def _notes_on_stderr() -> Iterator[None]:
    """Tables' notes warned while opening (``CellWarning``) as ``panels: note: ...`` lines
    on stderr; other warnings as Python shows them."""
    from panels_core.data.cell_notes import CellWarning

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message: Any, category: type[Warning], *rest: Any, **options: Any) -> None:
            if issubclass(category, CellWarning):
                print(f"panels: note: {' '.join(str(message).split())}", file=sys.stderr)
            else:
                shown(message, category, *rest, **options)

        warnings.showwarning = show
        yield


def _run_export(args: argparse.Namespace, out: TextIO) -> int:
    from panels_core.workspace.report import export_inputs

    with _notes_on_stderr():
        path = export_inputs(
            args.inputs, args.output, title=args.title, stores=args.store, strict=args.strict
        )
    out.write(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)\n")
    return 0


# --------------------------------------------------------------------------- serve


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="tables: Parquet/CSV/Arrow files, W&B .table.json, TensorBoard projector "
        "folders, Store folders (every table and version)",
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        help="a saved workspace (ws.json) to open; `Save` writes here (created if missing)",
    )
    parser.add_argument("--port", type=int, default=5006, help="the port (default 5006)")
    parser.add_argument("--address", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--show", action="store_true", help="open the page in a browser")
    parser.add_argument(
        "--demo", action="store_true", help="add the demo data (written once to ./demo_data)"
    )
    parser.add_argument("--title", default="typed-panels", help="the page title")
    _add_delimiter(parser)
    _add_strict(parser)
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="no Save in the page (the server refuses to write workspace files)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="also answer to this host name (repeatable; required with a non-loopback "
        "--address); only localhost:PORT and 127.0.0.1:PORT otherwise",
    )
    parser.add_argument(
        "--basic-auth",
        metavar="PASSWORD|FILE",
        help="require a login (Panel's basic auth: one password, or a JSON file of user: password)",
    )
    parser.add_argument(
        "--oauth-provider",
        metavar="NAME",
        help="require a login through Panel's OAuth provider NAME (e.g. github); its "
        "key and secret come from PANEL_OAUTH_KEY and PANEL_OAUTH_SECRET",
    )
    parser.add_argument(
        "--cluster",
        metavar="tcp://HOST:PORT|local:N",
        help="answer Parquet tables on a Dask cluster: a running scheduler's address, or "
        "local:N to start N worker processes here (closed with the server); "
        "see docs/scale-out.md",
    )
    parser.add_argument(
        "--render-timeout",
        metavar="SECONDS",
        help="seconds a card may take to draw before it shows a message instead "
        "(default: $PANELS_RENDER_TIMEOUT, else 180)",
    )


def _run_serve(args: argparse.Namespace, out: TextIO) -> int:
    from panels_core.workspace.background import RENDER_TIMEOUT_ENV, parse_timeout
    from panels_core.workspace.server import serve_paths

    if args.render_timeout is not None:
        try:
            seconds = parse_timeout(args.render_timeout)
        except ValueError as exc:
            raise CliError(f"--render-timeout: {exc}") from None
        os.environ[RENDER_TIMEOUT_ENV] = repr(seconds)
    serve_paths(
        args.paths,
        demo=args.demo,
        workspace=args.workspace,
        delimiter=args.delimiter,
        strict=args.strict,
        port=args.port,
        address=args.address,
        show=args.show,
        title=args.title,
        read_only=args.read_only,
        allow_origin=args.allow_origin,
        basic_auth=args.basic_auth,
        oauth_provider=args.oauth_provider,
        cluster=args.cluster,
    )
    return 0


COMMANDS: list[Command] = [
    Command(
        "plugins",
        "list every panel kind, its distribution and status",
        _configure_plugins,
        _run_plugins,
    ),
    Command(
        "info", "show a table's column types and the panels that fit it", _configure_info, _run_info
    ),
    Command(
        "schema",
        "print the JSON Schema of workspace specs and of every panel config",
        _configure_schema,
        _run_schema,
    ),
    Command(
        "export",
        "write a workspace (or tables) as one self-contained, offline HTML report",
        _configure_export,
        _run_export,
    ),
    Command(
        "warm-up",
        "compile UMAP's kernels into the on-disk cache now (once per machine), not at a first UMAP",
        _configure_warm_up,
        _run_warm_up,
    ),
    Command(
        "serve",
        "open tables in a workspace in the browser (cards, queries, saved views)",
        _configure_serve,
        _run_serve,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per Command."""
    from panels_core import __version__

    parser = _Parser(prog="panels", description="Typed, swappable visualizer panels for ML tables.")
    parser.add_argument("--version", action="version", version=f"typed-panels {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(child)
        child.set_defaults(_run=command.run)
    return parser


SIGPIPE_STATUS = 141
"""The status a shell reports for a command whose output pipe closed (128 + SIGPIPE)."""


def _stdout_closed(out: TextIO) -> int:
    """Quiet exit once the reader of ``out`` has gone, as ``seq 1 100000 | head`` does:
    nothing on stderr, status 141; stdout is pointed at /dev/null so the interpreter's
    last flush does not fail again."""
    if out is sys.stdout:
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    return SIGPIPE_STATUS


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the ``panels`` command; returns the exit status."""
    out = out if out is not None else sys.stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(out)
        return 2
    try:
        status = args._run(args, out)
        out.flush()
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `panels info t.parquet | head` closed our output: stop quietly
        return _stdout_closed(out)
    except Exception as exc:
        if os.environ.get("PANELS_DEBUG"):
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, CliError | OSError | ValueError | LookupError):
            text = f"{type(exc).__name__}: {text}"
        print(f"panels: error: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
