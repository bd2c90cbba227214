"""The gear form: a settings form built from a Panel's config model.

No panel writes its own form. Each config field becomes a widget chosen from
its type: a Literal or Enum a select; an int or float bounded on both sides
(``ge``/``le``) a slider, otherwise a number input; a bool a checkbox; a str a
text input; a column slot a select listing only the columns its type accepts
(a multi-choice for ``multiple`` slots, with a ``(none)`` choice for optional
ones); anything else a text input read as JSON. Every change re-validates the
whole config against the table; a valid result becomes ``form.config`` and is
passed to the ``on_change`` callbacks, an invalid one shows pydantic's message
beside the field and keeps the last valid config.
"""

from __future__ import annotations

import enum
import json
import math
import typing
from collections.abc import Callable
from typing import Any

import annotated_types
import panel as pn
import param
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from panels_core.escape import choice_options, markdown_lines
from panels_core.panel import (
    Panel,
    PanelConfig,
    Slot,
    columns_of,
    format_validation_error,
    slots_of,
)
from panels_core.types import describe

__all__ = ["NONE_LABEL", "ConfigForm", "config_form"]

NONE_LABEL = "(none)"
"""The choice that leaves an optional column slot empty."""

_FORM_ERRORS = "__form__"


def _label(name: str, field: FieldInfo) -> str:
    return field.title or name.replace("_", " ").capitalize()


def _bounds(field: FieldInfo) -> tuple[float | None, float | None]:
    lo = hi = None
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            lo = meta.ge
        elif isinstance(meta, annotated_types.Gt):
            lo = meta.gt
        elif isinstance(meta, annotated_types.Le):
            hi = meta.le
        elif isinstance(meta, annotated_types.Lt):
            hi = meta.lt
        elif isinstance(meta, annotated_types.Interval):
            lo = meta.ge if meta.ge is not None else meta.gt
            hi = meta.le if meta.le is not None else meta.lt
    return lo, hi


def _choices(annotation: Any) -> dict[str, Any] | None:
    """Label -> value for a Literal or Enum annotation, else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return {str(v): v for v in typing.get_args(annotation)}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {str(m.value): m for m in annotation}
    return None


def _make(widget_cls: Any, **params: Any) -> Any:
    """A widget, leaving out parameters this widget class does not have (``description``)."""
    if "label" in widget_cls.param and "name" in params:  # Panel >= 1.9 names it `label`
        params["label"] = params.pop("name")
    return widget_cls(**{k: v for k, v in params.items() if k in widget_cls.param})


class _Field:
    """One field's widget and how to read a config value back from it."""

    def __init__(
        self,
        name: str,
        widget: Any,
        parse: Callable[[Any], Any],
        show: Callable[[Any], Any] = lambda v: v,
    ) -> None:
        self.name = name
        self.widget = widget
        self.parse = parse  # widget value -> config value
        self.show = show  # config value -> widget value


def _text_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _parse_text(allows_none: bool) -> Callable[[Any], Any]:
    def parse(text: Any) -> Any:
        text = (text or "").strip()
        if text == "":
            return None if allows_none else ""
        try:
            return json.loads(text)
        except ValueError:
            return text

    return parse


def _slot_widget(slot: Slot, label: str, columns: dict[str, Any], value: Any, doc: str) -> _Field:
    names = [c for c, t in columns.items() if slot.column.fits(t)]
    help_text = doc or f"columns of type {describe(slot.column.accepts)}"
    if slot.multiple:
        widget = _make(
            pn.widgets.MultiChoice,
            name=label,
            options=choice_options(names),
            value=list(value or []),
            description=help_text,
        )
        return _Field(slot.name, widget, list, lambda v: list(v or []))
    options: dict[str, Any] = {NONE_LABEL: None} if slot.optional else {}
    options.update({f"{c} ({describe(columns[c])})": c for c in names})
    if value is not None and value not in options.values():
        options[f"{value} (not in this table)"] = value
    widget = _make(
        pn.widgets.Select, name=label, options=options, value=value, description=help_text
    )
    return _Field(slot.name, widget, lambda v: v)


def _field_widget(name: str, field: FieldInfo, value: Any) -> _Field:
    label, doc = _label(name, field), field.description or None
    annotation = field.annotation
    choices = _choices(annotation)
    if choices is not None:
        widget = _make(pn.widgets.Select, name=label, options=choices, value=value, description=doc)
        return _Field(name, widget, lambda v: v)
    if annotation is bool:
        return _Field(name, _make(pn.widgets.Checkbox, name=label, value=bool(value)), bool)
    lo, hi = _bounds(field)
    if annotation is int:
        if lo is not None and hi is not None:
            widget = _make(
                pn.widgets.IntSlider,
                name=label,
                start=int(lo),
                end=int(hi),
                value=value,
                description=doc,
            )
        else:
            widget = _make(
                pn.widgets.IntInput,
                name=label,
                value=value,
                start=None if lo is None else int(lo),
                end=None if hi is None else int(hi),
                description=doc,
            )
        return _Field(name, widget, lambda v: v)
    if annotation is float:
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            step = (float(hi) - float(lo)) / 100 or 0.01
            widget = _make(
                pn.widgets.FloatSlider,
                name=label,
                start=float(lo),
                end=float(hi),
                step=step,
                value=value,
                description=doc,
            )
        else:
            widget = _make(
                pn.widgets.FloatInput, name=label, value=value, start=lo, end=hi, description=doc
            )
        return _Field(name, widget, lambda v: v)
    if annotation is str:
        return _Field(
            name, _make(pn.widgets.TextInput, name=label, value=value, description=doc), str
        )
    allows_none = type(None) in typing.get_args(annotation)
    widget = _make(
        pn.widgets.TextInput,
        name=label,
        value=_text_value(value),
        description=doc or "a value, or JSON",
    )
    return _Field(name, widget, _parse_text(allows_none), _text_value)


class ConfigForm(pn.viewable.Viewer):
    """The gear form of one Panel over one table type.

    ``config`` always holds the last valid config; ``errors`` maps a field name
    (``"__form__"`` for the whole config) to the message shown beside it.
    ``widgets`` gives each field's widget, so code (and tests) can set values.
    """

    config = param.Parameter(doc="The last valid config (a PanelConfig instance).")
    errors = param.Dict(default={}, doc="Field name -> validation message being shown.")

    def __init__(
        self,
        panel_cls: type[Panel[Any]],
        view_type: Any,
        config: PanelConfig | dict[str, Any] | None = None,
        on_change: Callable[[PanelConfig], None] | None = None,
    ) -> None:
        if config is None:
            checked = panel_cls.default_config(view_type)
        else:
            checked = panel_cls.validate_config(config, view_type)
        super().__init__(config=checked)
        self.panel_cls = panel_cls
        self.view_type = view_type
        self._callbacks: list[Callable[[PanelConfig], None]] = [on_change] if on_change else []
        self._syncing = False
        self._fields: dict[str, _Field] = {}
        self._messages: dict[str, Any] = {}
        model = panel_cls.config_model
        slots = slots_of(model)
        columns = columns_of(view_type)
        current = dict(checked)
        rows: list[Any] = []
        self._messages[_FORM_ERRORS] = pn.pane.Alert("", alert_type="danger", visible=False)
        rows.append(self._messages[_FORM_ERRORS])
        for name, field in model.model_fields.items():
            if name in slots:
                item = _slot_widget(
                    slots[name],
                    _label(name, field),
                    columns,
                    current[name],
                    field.description or "",
                )
            else:
                item = _field_widget(name, field, current[name])
            item.widget.param.watch(self._changed, "value")
            self._fields[name] = item
            self._messages[name] = pn.pane.Alert(
                "", alert_type="danger", visible=False, margin=(0, 10)
            )
            rows.append(pn.Column(item.widget, self._messages[name], margin=0))
        self._layout = pn.Column(*rows, name=f"{panel_cls.title or panel_cls.kind} settings")
        self.param.watch(self._config_set, "config")

    @property
    def widgets(self) -> dict[str, Any]:
        """Field name -> its widget."""
        return {name: item.widget for name, item in self._fields.items()}

    def on_change(self, callback: Callable[[PanelConfig], None]) -> None:
        """Call ``callback(config)`` with every new valid config."""
        self._callbacks.append(callback)

    def __panel__(self) -> Any:
        return self._layout

    def _values(self) -> dict[str, Any]:
        return {name: item.parse(item.widget.value) for name, item in self._fields.items()}

    def _changed(self, event: Any) -> None:
        if self._syncing:
            return
        try:
            new = self.panel_cls.validate_config(self._values(), self.view_type)
        except ValidationError as exc:
            self._show_errors(format_validation_error(exc))
            return
        self._show_errors({})
        if new != self.config:
            self.config = new

    def _show_errors(self, messages: dict[str, str]) -> None:
        shown = {(name or _FORM_ERRORS): text for name, text in messages.items()}
        for name, pane in self._messages.items():
            text = shown.get(name)
            pane.object = markdown_lines(text) if text else ""
            pane.visible = text is not None
        self.errors = shown

    def _config_set(self, event: Any) -> None:
        """Keep the widgets in step with ``config`` and tell the callbacks."""
        self._syncing = True
        try:
            for name, value in dict(event.new).items():
                item = self._fields[name]
                shown = item.show(value)
                if item.widget.value != shown:
                    item.widget.value = shown
        finally:
            self._syncing = False
        for callback in self._callbacks:
            callback(event.new)


def config_form(
    panel_cls: type[Panel[Any]],
    view_type: Any,
    config: PanelConfig | dict[str, Any] | None = None,
    on_change: Callable[[PanelConfig], None] | None = None,
) -> ConfigForm:
    """The gear form of ``panel_cls`` for a table type, starting from ``config``
    (the default config when None)."""
    return ConfigForm(panel_cls, view_type, config, on_change)
