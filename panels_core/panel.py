"""The Panel base class, its config base and the ``Column`` slot annotation.

A Panel is a typed visualizer: its config is a frozen pydantic model whose
column-naming fields carry a ``Column`` annotation saying which DataTypes they
accept. From those slots alone the framework decides whether a Panel fits a
table (``match``), fills a first config (``default_config``) and builds the
gear form, so a plugin author writes only ``render``.

Scores. ``specificity(t)`` measures how narrow a DataType is (``any`` 0,
string 1, number 2, category 3, list[T] 1 + T, compared[T] 2 + T, embedding 6,
image 8, a joined table 10; full table in the function's docstring). The
default score of a Panel is the sum, over its required slots, of the
specificity of the slot type that the chosen column fits, plus
``specificity(JoinedTableType)`` for a Panel whose ``input_kind`` is
``"joined_table"``. So a Panel whose slot wants an embedding ranks far above
one that takes ``any`` column, and a Panel with no slots (a plain table
view) scores 0.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types as _pytypes
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
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
    "API_VERSION",
    "Column",
    "Panel",
    "PanelConfig",
    "PanelDefinitionError",
    "Prefer",
    "Slot",
    "WarmUp",
    "columns_of",
    "is_kind_name",
    "slots_of",
    "specificity",
]

API_VERSION = "1.0"
"""The Panel contract version; a plugin built for another major version is refused."""

InputKind = Literal["table", "joined_table"]


@dataclasses.dataclass(frozen=True)
class WarmUp:
    """Slow work a panel kind wants done before its first render (``Panel.warm_up``).

    The server runs ``run()`` early, on a low-priority background thread named after
    ``label`` (``panels-umap-warm-up``); a failure is printed with ``label``, not raised.
    """

    label: str
    run: Callable[[], Any]


_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*$")


class PanelDefinitionError(TypeError):
    """A Panel class or its config model breaks the Panel contract."""


def is_kind_name(kind: Any) -> bool:
    """Whether ``kind`` can name a panel: lower-case words joined by ``_``, ``.`` or ``-``."""
    return isinstance(kind, str) and _KIND_RE.match(kind) is not None


# --------------------------------------------------------------------------- specificity


def specificity(t: Any) -> float:
    """How narrow a DataType is; higher means a more specific fit.

    ``any``/``unknown``/a table 0; string 1; number and boolean 2 (integer
    2.5); struct 2; category and timestamp 3 (a category with listed labels
    3.5); ``list[T]`` 1 + T; ``compared[T]`` 2 + T; embedding 6 (fixed dim
    6.5); image 8 (+0.5 per required box or mask layer); a joined table 10.
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
        case JoinedTableType():
            return 10.0
        case OptionalType(inner=inner):
            return specificity(inner)
        case UnionType(members=members):
            return min((specificity(m) for m in members), default=0.0)
        case _:
            return 0.0


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
    ``min`` exist, at most ``max`` of them (``max`` None = all) for a multiple slot."""

    accepts: Any
    min: int = 1
    max: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "accepts", _as_type(self.accepts))
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


# --------------------------------------------------------------------------- PanelConfig


class PanelConfig(BaseModel):
    """Base of every Panel config: frozen data, unknown fields refused.

    Validated with ``context={"view_type": table_type}``, every column slot is
    checked against the table: the column must exist and its type must fit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _check_column_slot(cls, value: Any, info: ValidationInfo) -> Any:
        view_type = (info.context or {}).get("view_type") if info.field_name else None
        slot = slots_of(cls).get(info.field_name or "") if view_type is not None else None
        if slot is None or value is None:
            return value
        names = list(value) if slot.multiple else [value]
        if slot.multiple and slot.required and not names:
            raise ValueError("choose at least one column")
        if len(set(names)) != len(names):
            raise ValueError("a column is chosen twice")
        columns = columns_of(view_type)
        for name in names:
            if name not in columns:
                shown = ", ".join(f"`{c}`" for c in list(columns)[:12])
                raise ValueError(f"unknown column `{name}`; the columns are {shown}")
            if not slot.column.fits(columns[name]):
                raise ValueError(
                    f"column `{name}` is {describe(columns[name])}, "
                    f"but this slot accepts {describe(slot.column.accepts)}"
                )
        return value


ConfigT = TypeVar("ConfigT", bound=PanelConfig)


# --------------------------------------------------------------------------- slot assignment


_SEARCH_LIMIT = 10_000


def _candidates(slot: Slot, columns: Mapping[str, Any], used: set[str]) -> list[str]:
    return [c for c, t in columns.items() if c not in used and slot.column.fits(t)]


def _fill(slot: Slot, columns: Mapping[str, Any], used: set[str]) -> tuple[Any, float] | None:
    """The default value of one slot from unused columns and its score, or None."""
    free = _candidates(slot, columns, used)
    order = {c: i for i, c in enumerate(columns)}
    for tier in slot.column.tiers():
        in_tier = [c for c in free if _tier_fits(tier, slot, columns[c])]
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


def _tier_fits(tier: Prefer, slot: Slot, column_type: Any) -> bool:
    if slot.column.nullable:
        column_type = strip_optional(column_type)
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
    config_model: type[PanelConfig], view_type: Any
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


# --------------------------------------------------------------------------- Panel


def _config_from_generic(cls: type) -> type[PanelConfig] | None:
    for base in getattr(cls, "__orig_bases__", ()):
        origin = typing.get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Panel):
            for arg in typing.get_args(base):
                if isinstance(arg, type) and issubclass(arg, PanelConfig):
                    return arg
    return None


class Panel(Generic[ConfigT]):
    """A typed visualizer: subclass ``Panel[MyConfig]``, set ``kind`` and write ``render``.

    Class attributes:
    - ``kind``: the unique short name (also the entry-point name), e.g. ``"histogram"``.
    - ``title`` / ``description``: shown in menus and ``panels plugins``.
    - ``api_version``: the Panel contract the class was written for (``"1.0"``);
      set it explicitly in a plugin so a future incompatible core can refuse it.
    - ``input_kind``: ``"table"`` (a table, grouped or compared table, or the flat
      columns of a join) or ``"joined_table"`` (only a join of two tables).
    - ``config_model``: taken from the generic parameter ``Panel[MyConfig]``.

    Class hooks the app asks (so it names no panel): ``first_screen`` (is this panel
    on a new workspace's first screen for a table) and ``warm_up`` (what to get ready
    when a workspace shows this kind).
    """

    kind: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    api_version: ClassVar[str] = API_VERSION
    input_kind: ClassVar[InputKind] = "table"
    config_model: ClassVar[type[PanelConfig]] = PanelConfig

    specificity = staticmethod(specificity)
    columns_of = staticmethod(columns_of)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_model" not in cls.__dict__:
            found = _config_from_generic(cls)
            if found is not None:
                cls.config_model = found
        if not cls.title and cls.kind:
            cls.title = cls.kind.replace("_", " ").capitalize()

    def __init__(self, config: ConfigT | Mapping[str, Any] | None = None, **fields: Any) -> None:
        if isinstance(config, self.config_model) and not fields:
            self.config: ConfigT = config  # type: ignore[assignment]
            return
        data = dict(config.model_dump() if isinstance(config, BaseModel) else (config or {}))
        data.update(fields)
        self.config = self.config_model.model_validate(data)  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def config_dict(self) -> dict[str, Any]:
        """The config as JSON-ready data, as saved in a card spec."""
        return self.config.model_dump(mode="json")

    # -- matching --------------------------------------------------------------------

    @classmethod
    def accepts_input(cls, view_type: Any) -> bool:
        """True when the view type is of the input kind this Panel reads."""
        if cls.input_kind == "joined_table":
            return isinstance(view_type, JoinedTableType)
        return isinstance(view_type, TableType | JoinedTableType)

    @classmethod
    def match(cls, view_type: Any) -> float | None:
        """How well this Panel fits a view type (higher is better), or None when it does not.

        The default: the view must be of ``input_kind`` and every required slot must
        have a column; the score is the sum of the slots' fit specificities (see
        ``specificity``), plus 10 for a joined-table Panel. Override to score by
        other evidence (say, two columns sharing labels).
        """
        if not cls.accepts_input(view_type):
            return None
        assigned = assign_slots(cls.config_model, view_type)
        if assigned is None:
            return None
        bonus = specificity(view_type) if cls.input_kind == "joined_table" else 0.0
        return assigned[1] + bonus

    @classmethod
    def default_config(cls, view_type: Any) -> ConfigT:
        """A validated config for the view type: slots get their best columns, other
        fields their defaults. Raises ValueError when a required slot has no column."""
        assigned = assign_slots(cls.config_model, view_type)
        if assigned is None:
            missing = [
                f"{s.name} ({describe(s.column.accepts)})"
                for s in slots_of(cls.config_model).values()
                if s.required
            ]
            raise ValueError(
                f"panel `{cls.kind}` does not fit this table: it needs columns for "
                + ", ".join(missing)
            )
        return cls.validate_config(assigned[0], view_type)

    @classmethod
    def validate_config(cls, data: Mapping[str, Any] | BaseModel, view_type: Any = None) -> ConfigT:
        """``data`` validated as this Panel's config; with a view type, slots are checked too."""
        if isinstance(data, BaseModel):
            data = data.model_dump()
        context = {"view_type": view_type} if view_type is not None else None
        return cls.config_model.model_validate(dict(data), context=context)  # type: ignore[return-value]

    # -- app hooks -------------------------------------------------------------------

    @classmethod
    def first_screen(cls, table_type: Any) -> float | None:
        """Where this panel stands on a new workspace's first screen for a table of
        ``table_type`` (asked only when the panel fits the table).

        None (the default): not shown first. 0: it leads the table's cards (the first
        ranked panel that says 0 leads; when none does, the best match leads). A
        positive number: an extra card after the lead, smaller numbers first.
        """
        return None

    @classmethod
    def warm_up(cls) -> WarmUp | None:
        """Called once when a server starts with a card of this kind: start what must
        start now (say, a worker process) and return the slow rest as a ``WarmUp``
        to run on a low-priority background thread, or None (the default: nothing)."""
        return None

    # -- rendering ---------------------------------------------------------------------

    def render(self, view: Any) -> Any:
        """The HoloViz Panel object showing ``view`` (a ``panels_core.View``)."""
        raise PanelDefinitionError(f"{type(self).__name__} must define render(view)")


def check_panel_class(cls: Any) -> None:
    """Raise PanelDefinitionError when ``cls`` breaks the Panel contract."""
    if not isinstance(cls, type) or not issubclass(cls, Panel):
        raise PanelDefinitionError(f"{cls!r} is not a subclass of panels_core.Panel")
    if not is_kind_name(cls.kind):
        raise PanelDefinitionError(
            f"{cls.__name__}.kind must be a lower-case name like 'my_panel', got {cls.kind!r}"
        )
    if not re.match(r"^\d+(\.\d+)?$", str(cls.api_version)):
        raise PanelDefinitionError(
            f"{cls.__name__}.api_version must look like '1.0', got {cls.api_version!r}"
        )
    if cls.input_kind not in typing.get_args(InputKind):
        raise PanelDefinitionError(
            f"{cls.__name__}.input_kind must be one of {typing.get_args(InputKind)}"
        )
    model = cls.config_model
    if not isinstance(model, type) or not issubclass(model, PanelConfig):
        raise PanelDefinitionError(f"{cls.__name__}.config_model must subclass PanelConfig")
    if not model.model_config.get("frozen") or model.model_config.get("extra") != "forbid":
        raise PanelDefinitionError(
            f"{model.__name__} must stay frozen with extra='forbid' (inherit PanelConfig's config)"
        )
    slots = slots_of(model)
    for name, field in model.model_fields.items():
        if name not in slots and field.is_required():
            raise PanelDefinitionError(
                f"{model.__name__}.{name} needs a default (only column slots may be required)"
            )
    try:
        model.model_json_schema()
    except Exception as exc:
        raise PanelDefinitionError(f"{model.__name__} has no JSON schema: {exc}") from None
    if cls.render is Panel.render:
        raise PanelDefinitionError(f"{cls.__name__} must define render(view)")


def major_version(version: str) -> int:
    """The major part of an ``api_version`` string."""
    return int(str(version).split(".", 1)[0])


def format_validation_error(exc: ValidationError) -> dict[str, str]:
    """Field name (or ``""`` for the whole config) -> one-line message."""
    messages: dict[str, str] = {}
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else ""
        msg = str(err.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        messages.setdefault(field, msg)
    return messages
