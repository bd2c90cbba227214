"""Workspace specs: the saved form of a workspace, as frozen, validated data.

A workspace file holds the tables it reads (a file path or a Store reference),
its cards (``{kind, input, config}``: which panel, over which query, with which
settings) and their layout. ``config`` stays plain JSON here; it is validated
against the panel's own model when the card is built, so a card whose panel is
not installed still loads and saves back unchanged.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_serializer,
    model_validator,
)

from panels_core.query.model import Query
from panels_core.query.selection import Selection

__all__ = [
    "SCHEMA_VERSION",
    "CardSpec",
    "LayoutSpec",
    "Placement",
    "TableSource",
    "WorkspaceSpec",
]

SCHEMA_VERSION: Final = 1
"""The workspace format this typed-panels writes and reads."""

_STORE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*:(?:v\d+|latest)$")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TableSource(_Spec):
    """Where a workspace table comes from: a file ``path`` or a ``store`` reference.

    Written as a plain string: ``"preds:v3"`` or ``"preds:latest"`` is a Store
    reference, anything else a path (write ``"./x:v1"`` for a file named so).
    The dict forms ``{"path": ...}`` and ``{"store": "preds"}`` (latest) also load;
    ``{"path": "proj", "tensor_name": "words"}`` is one embedding of a projector folder.
    """

    path: str | None = None
    store: str | None = None
    tensor_name: str | None = None
    """Which embedding of a TensorBoard projector folder ``path`` (one that lists several)."""

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"store": data} if _STORE_REF.match(data) else {"path": data}
        return data

    @model_validator(mode="after")
    def _one_of(self) -> TableSource:
        if (self.path is None) == (self.store is None):
            raise ValueError("a table source needs exactly one of `path` or `store`")
        if self.path == "" or self.store == "":
            raise ValueError("a table source may not be empty")
        if self.tensor_name is not None and self.path is None:
            raise ValueError("`tensor_name` picks an embedding of a projector `path`")
        return self

    @model_serializer(mode="plain")
    def _to_text(self) -> str | dict[str, str]:
        if self.store is not None:
            return self.store if _STORE_REF.match(self.store) else {"store": self.store}
        assert self.path is not None
        if self.tensor_name is not None:
            return {"path": self.path, "tensor_name": self.tensor_name}
        return {"path": self.path} if _STORE_REF.match(self.path) else self.path


def _card_dict(card: CardSpec) -> dict[str, Any]:
    data = card.model_dump(mode="json", exclude_defaults=True)
    # a field serializer (the filter's text form) defeats exclude_defaults: drop it here
    query = data.get("input", {})
    if query.get("filter", "") is None:
        del query["filter"]
    return data


class CardSpec(_Spec):
    """One card: the panel ``kind``, its ``input`` query and its ``config`` (plain JSON)."""

    kind: str = Field(min_length=1)
    input: Query
    config: dict[str, Any] = Field(default_factory=dict)
    title: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, leaving out fields at their defaults."""
        return _card_dict(self)


class Placement(_Spec):
    """Where card number ``card`` sits in the grid and how many cells it spans.

    ``row`` and ``col`` count from 0; left out, the card flows in order (taking
    the first free cells wide enough for its span).
    """

    card: int = Field(ge=0)
    row: int | None = Field(None, ge=0)
    col: int | None = Field(None, ge=0)
    width: int = Field(1, ge=1)
    height: int = Field(1, ge=1)


class LayoutSpec(_Spec):
    """A grid of ``columns`` cells per row; cards without a placement flow in order."""

    columns: int = Field(2, ge=1, le=12)
    placements: tuple[Placement, ...] = ()


class WorkspaceSpec(_Spec):
    """A saved workspace: tables by name, cards, layout, and the plugins its cards use.

    ``plugins`` maps a card's panel kind to the distribution that provided it
    when saved, so a machine without it can say what to install. ``selections``
    holds each table's linked selection, its brushes named by card position.
    """

    schema_version: int = SCHEMA_VERSION
    tables: dict[str, TableSource] = Field(default_factory=dict)
    cards: tuple[CardSpec, ...] = ()
    layout: LayoutSpec = Field(default_factory=LayoutSpec)
    plugins: dict[str, str] = Field(default_factory=dict)
    selections: dict[str, Selection] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _compat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema_version" in data:
            version = data["schema_version"]
            if isinstance(version, int) and version > SCHEMA_VERSION:
                raise ValueError(
                    f"this workspace has schema_version {version}, but this typed-panels reads "
                    f"up to {SCHEMA_VERSION}; upgrade typed-panels to open it"
                )
        return data

    @model_validator(mode="after")
    def _check_references(self) -> WorkspaceSpec:
        if self.schema_version < 1:
            raise ValueError(f"schema_version must be >= 1, got {self.schema_version}")
        names = list(self.tables)
        for i, card in enumerate(self.cards):
            q = card.input
            used = [q.table]
            used += [q.compare_with.table] if q.compare_with is not None else []
            used += [q.join.table] if q.join is not None else []
            for table in used:
                if table not in self.tables:
                    shown = ", ".join(f"`{n}`" for n in names) or "none"
                    raise ValueError(
                        f"card {i} ({card.kind}) reads table `{table}`, which the workspace "
                        f"does not list; its tables are {shown}"
                    )
        for placement in self.layout.placements:
            if placement.card >= len(self.cards):
                raise ValueError(
                    f"layout places card {placement.card}, but the workspace has "
                    f"{len(self.cards)} cards"
                )
            if (placement.col or 0) + placement.width > self.layout.columns:
                raise ValueError(
                    f"layout: card {placement.card} spans past column {self.layout.columns}"
                )
        for table in self.selections:
            if table not in self.tables:
                raise ValueError(
                    f"the workspace saves a selection of table `{table}`, which it does not "
                    "list; remove the selection or add the table"
                )
        placed = [p.card for p in self.layout.placements]
        if len(placed) != len(set(placed)):
            raise ValueError("layout: a card is placed twice; give each card one placement")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, leaving out fields at their defaults (what a file saves);
        ``schema_version`` is always written."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        if "cards" in data:
            data["cards"] = [_card_dict(card) for card in self.cards]
        return {"schema_version": self.schema_version, **data}
