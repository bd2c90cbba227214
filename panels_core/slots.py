"""Column slots: which column types a config field accepts, how narrow a type is
(``specificity``), and how a view's columns fill a config's slots (``assign_slots``).

A config field annotated ``Annotated[str, Column(accepts=...)]`` is a slot;
``slots_of(model)`` reads them, ``assign_slots(model, view_type)`` picks the best
column for each. ``panels_core.panel`` builds ``PanelConfig`` and ``Panel`` on these.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types as _pytypes
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
)

from panels_core.types import (
    AnyType,
    BooleanType,
    CategoryType,
    ComparedType,
    DataTypeAdapter,
    EmbeddingType,
    ImageType,
    JoinedTableType,
    ListType,
    MediaType,
    NumberType,
    OptionalType,
    StringType,
    StructType,
    TableType,
    TimestampType,
    UnionType,
    UnknownType,
    describe,
    is_assignable,
    parse_type,
    strip_optional,
)

__all__ = [
    "Column",
    "PanelDefinitionError",
    "Prefer",
    "Slot",
    "assign_slots",
    "columns_of",
    "looks_like_id",
    "slots_of",
    "specificity",
]


class PanelDefinitionError(TypeError):
    """A Panel class or its config model breaks the Panel contract."""


# --------------------------------------------------------------------------- specificity


def specificity(t: Any) -> float:
    """How narrow a DataType is; higher means a more specific fit.

    ``any``/``unknown``/a table 0; string 1; number and boolean 2 (integer
    2.5); struct 2; category and timestamp 3 (a category with listed labels
    3.5); ``list[T]`` 1 + T; ``compared[T]`` 2 + T; embedding 6 (fixed dim
    6.5); image 8 (+0.5 per required box or mask layer) and the media kinds (audio,
    video, html, object3d, plot, molecule) 8; a joined table 10.
    ``optional[T]`` counts as T and a union as its loosest member.
    """
    match t:
        case AnyType() | UnknownType() | TableType():
            return 0.0
        case StringType():
            return 1.0
        case NumberType(integer=integer):
            return 2.5 if integer else 2.0
        case BooleanType() | StructType():
            return 2.0
        case CategoryType(categories=cats):
            return 3.5 if cats else 3.0
        case TimestampType():
            return 3.0
        case ListType(item=item):
            return 1.0 + specificity(item)
        case ComparedType(item=item):
            return 2.0 + specificity(item)
        case EmbeddingType(dim=dim):
            return 6.5 if dim is not None else 6.0
        case ImageType(box_layers=boxes, mask_layers=masks):
            return 8.0 + 0.5 * (len(boxes) + len(masks))
        case MediaType():
            return 8.0
        case JoinedTableType():
            return 10.0
        case OptionalType(inner=inner):
            return specificity(inner)
        case UnionType(members=members):
            return min((specificity(m) for m in members), default=0.0)
        case _:
            return 0.0


# --------------------------------------------------------------------------- row ids

_ID_NAME = re.compile(r"(^|[_.\s])(id|idx|index|key|uuid|row|rownum)$", re.IGNORECASE)


def looks_like_id(name: str, column_type: Any) -> bool:
    """True for an integer column named like a row id (``id``, ``image_id``, ``index``):
    numbers that say which row it is, not a measure worth a histogram or an axis."""
    inner = strip_optional(column_type)
    return isinstance(inner, NumberType) and inner.integer and bool(_ID_NAME.search(name))


# --------------------------------------------------------------------------- Column slots


def _as_type(value: Any) -> Any:
    """A DataType from a DataType, a kind name, a JSON dict, or a sequence (a union)."""
    if isinstance(value, str | Mapping):
        return parse_type(value)
    if isinstance(value, Sequence):
        members = tuple(_as_type(v) for v in value)
        return members[0] if len(members) == 1 else UnionType(members=members)
    return DataTypeAdapter.validate_python(value)


def _members(t: Any) -> tuple[Any, ...]:
    return t.members if isinstance(t, UnionType) else (t,)


@dataclasses.dataclass(frozen=True)
class Prefer:
    """One preference tier of a slot's default: columns of ``accepts``, used when at least
    ``min`` exist, at most ``max`` of them (``max`` None = all) for a multiple slot.

    ``not_id=True`` leaves out integer columns named like row ids (``looks_like_id``);
    ``exclude`` leaves out columns of those types: ``Prefer(StringType(),
    exclude=CategoryType())`` is free text, not a category.
    """

    accepts: Any
    min: int = 1
    max: int | None = None
    not_id: bool = False
    exclude: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "accepts", _as_type(self.accepts))
        if self.exclude is not None:
            object.__setattr__(self, "exclude", _as_type(self.exclude))
        if self.min < 1 or (self.max is not None and self.max < self.min):
            raise PanelDefinitionError(
                f"Prefer({describe(self.accepts)}): need 1 <= min <= max, got "
                f"min={self.min}, max={self.max}"
            )


@dataclasses.dataclass(frozen=True)
class Column:
    """Marks a config field as a column slot: ``Annotated[str, Column(accepts=NumberType())]``.

    - ``accepts``: a DataType, a kind name (``"number"``) or a sequence of them
      (a union). A column fits when ``is_assignable(column_type, accepts)``.
    - ``required``: the Panel fits only when this slot can be filled. An optional
      slot is typed ``str | None`` (or a list) with a default.
    - ``multiple``: the field is ``list[str]`` and takes several columns.
    - ``nullable``: columns with nulls (``optional[T]``) fit too (default True:
      real columns often have nulls).
    - ``prefer``: preference tiers for the default (and, when given, for fitting):
      e.g. ``prefer=[Prefer(EmbeddingType(), max=1), Prefer(NumberType(), min=2)]``
      takes one embedding column if there is one, else every numeric column when
      there are at least two. Bare DataTypes are tiers with ``min=1``. Without
      ``prefer`` the single tier is ``accepts`` itself. An optional slot is
      filled by default only when it declares ``prefer`` (a colour-by slot with
      ``prefer=[CategoryType()]`` takes a category column if there is one).
    """

    accepts: Any = dataclasses.field(default_factory=AnyType)
    required: bool = True
    multiple: bool = False
    nullable: bool = True
    prefer: tuple[Prefer, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "accepts", _as_type(self.accepts))
        tiers = tuple(p if isinstance(p, Prefer) else Prefer(p) for p in self.prefer)
        object.__setattr__(self, "prefer", tiers)
        for tier in tiers:
            if not any(is_assignable(m, self.accepts) for m in _members(tier.accepts)):
                raise PanelDefinitionError(
                    f"Column(accepts={describe(self.accepts)}): preferred type "
                    f"{describe(tier.accepts)} is not accepted by the slot"
                )
            if not self.multiple and tier.max not in (None, 1):
                raise PanelDefinitionError("Prefer(max=...) is only meaningful on a multiple slot")

    def fits(self, column_type: Any) -> bool:
        """True when a column of ``column_type`` can fill this slot."""
        if self.nullable:
            column_type = strip_optional(column_type)
        return is_assignable(column_type, self.accepts)

    def fit_score(self, column_type: Any, accepts: Any | None = None) -> float:
        """The specificity of the most specific member of ``accepts`` the column fits."""
        target = self.accepts if accepts is None else accepts
        if self.nullable:
            column_type = strip_optional(column_type)
        scores = [specificity(m) for m in _members(target) if is_assignable(column_type, m)]
        return max(scores, default=0.0)

    def tiers(self) -> tuple[Prefer, ...]:
        """The preference tiers, ``(Prefer(accepts),)`` when none were given."""
        return self.prefer or (Prefer(self.accepts),)


@dataclasses.dataclass(frozen=True)
class Slot:
    """A config field that names columns: its name, its Column, and its shape."""

    name: str
    column: Column
    multiple: bool
    optional: bool

    @property
    def required(self) -> bool:
        return self.column.required


def _find_column(annotation: Any) -> Column | None:
    """A Column nested inside ``Annotated`` in a union (``Annotated[str, Column()] | None``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, Column):
                return meta
    for arg in typing.get_args(annotation):
        found = _find_column(arg)
        if found is not None:
            return found
    return None


def _shape(annotation: Any) -> tuple[bool, bool]:
    """(is a list of names, allows None) of a slot's annotation; raises when not names."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _shape(typing.get_args(annotation)[0])
    if origin in (typing.Union, _pytypes.UnionType):
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            raise PanelDefinitionError(
                "a Column slot must be `str`, `list[str]` or one of them | None"
            )
        multiple, _ = _shape(rest[0])
        return multiple, len(rest) != len(args)
    if annotation is str:
        return False, False
    if origin in (list, tuple) and typing.get_args(annotation)[:1] == (str,):
        return True, False
    raise PanelDefinitionError(
        f"a Column slot must be typed `str` or `list[str]`, not {annotation!r}"
    )


@functools.cache
def slots_of(config_model: type[BaseModel]) -> dict[str, Slot]:
    """The column slots of a config model, in declaration order (checked for consistency)."""
    found: dict[str, Slot] = {}
    for name, field in config_model.model_fields.items():
        column = next((m for m in field.metadata if isinstance(m, Column)), None)
        if column is None:
            column = _find_column(field.annotation)
        if column is None:
            continue
        try:
            multiple, allows_none = _shape(field.annotation)
        except PanelDefinitionError as exc:
            raise PanelDefinitionError(f"{config_model.__name__}.{name}: {exc}") from None
        where = f"{config_model.__name__}.{name}"
        if multiple != column.multiple:
            raise PanelDefinitionError(
                f"{where}: Column(multiple={column.multiple}) but the field is typed "
                f"{'a list' if multiple else 'a single name'}; make them agree"
            )
        has_default = not field.is_required()
        if column.required and has_default:
            raise PanelDefinitionError(
                f"{where}: a required slot must not have a default; use Column(required=False)"
            )
        if not column.required and not has_default:
            raise PanelDefinitionError(
                f"{where}: an optional slot needs a default (None, or [] for a list)"
            )
        if not column.required and not multiple and not allows_none:
            raise PanelDefinitionError(f"{where}: an optional slot must be typed `str | None`")
        found[name] = Slot(name=name, column=column, multiple=multiple, optional=allows_none)
    return found


# --------------------------------------------------------------------------- view columns


def columns_of(view_type: Any) -> dict[str, Any]:
    """The columns a Panel's slots can name: a table's columns; for a joined table
    ``<left_name>.<column>`` and ``<right_name>.<column>`` of each side."""
    if isinstance(view_type, TableType):
        return dict(view_type.columns)
    if isinstance(view_type, JoinedTableType):
        cols = {f"{view_type.left_name}.{k}": v for k, v in view_type.left.columns.items()}
        cols.update({f"{view_type.right_name}.{k}": v for k, v in view_type.right.columns.items()})
        return cols
    raise TypeError(f"expected a TableType or JoinedTableType, got {type(view_type).__name__}")


# --------------------------------------------------------------------------- slot assignment


_SEARCH_LIMIT = 10_000


def _candidates(slot: Slot, columns: Mapping[str, Any], used: set[str]) -> list[str]:
    return [c for c, t in columns.items() if c not in used and slot.column.fits(t)]


def _fill(slot: Slot, columns: Mapping[str, Any], used: set[str]) -> tuple[Any, float] | None:
    """The default value of one slot from unused columns and its score, or None."""
    free = _candidates(slot, columns, used)
    order = {c: i for i, c in enumerate(columns)}
    for tier in slot.column.tiers():
        in_tier = [c for c in free if _tier_fits(tier, slot, c, columns[c])]
        if len(in_tier) < tier.min:
            continue
        if slot.multiple:
            chosen = in_tier if tier.max is None else in_tier[: tier.max]
            score = max(slot.column.fit_score(columns[c], tier.accepts) for c in chosen)
            return list(chosen), score
        best = min(
            in_tier,
            key=lambda c: (
                -slot.column.fit_score(columns[c], tier.accepts),
                -specificity(columns[c]),
                order[c],
            ),
        )
        return best, slot.column.fit_score(columns[best], tier.accepts)
    return None


def _tier_fits(tier: Prefer, slot: Slot, name: str, column_type: Any) -> bool:
    if tier.not_id and looks_like_id(name, column_type):
        return False
    if slot.column.nullable:
        column_type = strip_optional(column_type)
    if tier.exclude is not None and is_assignable(column_type, tier.exclude):
        return False
    return is_assignable(column_type, tier.accepts)


def _tier_options(
    slot: Slot, columns: Mapping[str, Any], used: set[str]
) -> Iterable[tuple[Any, float]]:
    """Every way to fill a required single slot, best first (for backtracking)."""
    first = _fill(slot, columns, used)
    if first is None:
        return
    yield first
    if slot.multiple:
        return
    taken = {first[0]}
    while True:
        nxt = _fill(slot, columns, used | taken)
        if nxt is None:
            return
        yield nxt
        taken.add(nxt[0])


def assign_slots(
    config_model: type[BaseModel], view_type: Any
) -> tuple[dict[str, Any], float] | None:
    """The default slot values for a view type and their summed score, or None when a
    required slot cannot be filled.

    No column goes to two slots. Required single-column slots are filled first, in
    declaration order, each with its most specific candidate (backtracking when a
    later slot would be left empty); then required multi-column slots take the
    columns left; then optional slots that declare ``prefer`` (an optional slot
    without ``prefer`` stays empty). The search gives up after ``_SEARCH_LIMIT``
    tries, which only many slots over many similar columns can reach.
    """
    columns = columns_of(view_type)
    slots = list(slots_of(config_model).values())
    required = [s for s in slots if s.required and not s.multiple]
    required += [s for s in slots if s.required and s.multiple]
    if any(_fill(s, columns, set()) is None for s in required):
        return None  # some slot has no column at all: no need to search
    tries = 0

    def search(i: int, used: set[str]) -> tuple[dict[str, Any], float] | None:
        nonlocal tries
        if i == len(required):
            return {}, 0.0
        slot = required[i]
        for value, score in _tier_options(slot, columns, used):
            tries += 1
            if tries > _SEARCH_LIMIT:
                return None
            taken = set(value) if slot.multiple else {value}
            rest = search(i + 1, used | taken)
            if rest is not None:
                values, total = rest
                return {slot.name: value, **values}, score + total
        return None

    found = search(0, set())
    if found is None:
        return None
    values = {s.name: found[0][s.name] for s in slots if s.required}  # declaration order
    score = found[1]
    used = {c for v in values.values() for c in (v if isinstance(v, list) else [v])}
    for slot in slots:
        if slot.required:
            continue
        filled = _fill(slot, columns, used) if slot.column.prefer else None
        if filled is None:
            values[slot.name] = [] if slot.multiple else None
            continue
        values[slot.name] = filled[0]
        used |= set(filled[0]) if slot.multiple else {filled[0]}
    return values, score
