"""The first screen of a new workspace: which cards, for which tables, in which order.

Per table (latest Store version only) the panels ask for their place
(``Panel.first_screen``); tables with rows to show come first, and small ones
(under ``SMALL_TABLE`` rows, say a 3-row example) after them, so they never take
the first row of the screen.
"""

from __future__ import annotations

from collections.abc import Sequence

from panels_core.panel_registry import Registry, registry
from panels_core.query.engine import Engine
from panels_core.query.model import Query
from panels_core.view import View
from panels_core.workspace.cards import compatible
from panels_core.workspace.spec import CardSpec

__all__ = ["SMALL_TABLE", "default_cards", "latest_only", "split_version"]

SMALL_TABLE = 20
"""A table with fewer rows than this opens after the others on a new workspace."""


def split_version(name: str) -> tuple[str, int] | None:
    """``("preds", 1)`` for a Store version name ``preds:v1``, else None."""
    base, _, version = name.rpartition(":")
    if base and version.startswith("v") and version[1:].isdigit():
        return base, int(version[1:])
    return None


def latest_only(names: Sequence[str]) -> list[str]:
    """Table names without the older versions of a Store entry (``preds:v0`` when ``preds:v1``)."""
    latest: dict[str, tuple[int, str]] = {}
    plain = []
    for name in names:
        split = split_version(name)
        if split is None:
            plain.append(name)
        elif split[0] not in latest or split[1] > latest[split[0]][0]:
            latest[split[0]] = (split[1], name)
    keep = set(plain) | {v for _, v in latest.values()}
    return [n for n in names if n in keep]


def _table_cards(engine: Engine, name: str, panels: Registry) -> tuple[list[CardSpec], bool]:
    """The first-screen cards of one table, and whether the table is small."""
    query = Query(table=name)
    try:
        view = View(engine, query)
        table_type = view.type
        matches = compatible(panels, table_type)
        small = view.count() < SMALL_TABLE
    except Exception:  # the card shows the error when built
        lead = panels.lead_kind()
        return ([CardSpec(kind=lead, input=query)] if lead is not None else []), False
    cards = [
        CardSpec(kind=match.kind, input=query, config=match.config.model_dump(mode="json"))
        for match in panels.first_screen(table_type, matches)
    ]
    return cards, small


def default_cards(engine: Engine, panels: Registry = registry) -> list[CardSpec]:
    """The smart default: per table (latest version only) the cards the panels ask for
    on a first screen (``Panel.first_screen``; for the built-ins a table card, or a
    joined-table card for a joined table, plus a 2D projection when the table has an
    embedding or five or more numeric columns; for a table with images or embeddings
    the projection, the gallery and a histogram first and the table last). Tables
    under ``SMALL_TABLE`` rows come after the others."""
    large: list[CardSpec] = []
    small: list[CardSpec] = []
    for name in latest_only(engine.table_names()):
        cards, is_small = _table_cards(engine, name, panels)
        (small if is_small else large).extend(cards)
    return large + small
