"""The Panel base class and its config base; the ``Column`` slot annotation and slot
matching live in ``panels_core.slots`` and are re-exported here.

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
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from panels_core.slots import (
    Column,
    PanelDefinitionError,
    Prefer,
    Slot,
    assign_slots,
    columns_of,
    looks_like_id,
    slots_of,
    specificity,
)
from panels_core.types import (
    JoinedTableType,
    TableType,
    describe,
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
    "looks_like_id",
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


def is_kind_name(kind: Any) -> bool:
    """Whether ``kind`` can name a panel: lower-case words joined by ``_``, ``.`` or ``-``."""
    return isinstance(kind, str) and _KIND_RE.match(kind) is not None


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
    - ``can_select``: True when the panel publishes brushes with ``view.select(...)``
      (linked selection); every panel can show ``view.selection`` either way.

    Class hooks the app asks (so it names no panel): ``first_screen`` (is this panel
    on a new workspace's first screen for a table) and ``warm_up`` (what to get ready
    when a workspace shows this kind); and ``follow_selection``, asked of a panel when
    its card's table gets a new linked selection (draw it in place, or render again).
    """

    kind: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    api_version: ClassVar[str] = API_VERSION
    input_kind: ClassVar[InputKind] = "table"
    config_model: ClassVar[type[PanelConfig]] = PanelConfig
    can_select: ClassVar[bool] = False

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

    def follow_selection(self, shown: Any, view: Any) -> Callable[[], None] | None:
        """Show ``view``'s new linked selection in ``shown`` (what ``render`` returned and
        the card shows), keeping what the user did there (page, zoom, a drawn range).

        Called off the server's event loop, so ask the engine here (``view.selected()``
        and friends), then return a function that changes the shown widgets and Bokeh
        models; the card calls it on the event loop, and only if no newer selection came
        meanwhile. Return None (the default) to have the card call ``render(view)`` again.
        """
        return None


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
