"""The Panel registry: registration, entry-point discovery, matching and ranking.

Panels arrive two ways: ``registry.register(cls)`` in-process, or an entry
point in the group ``typed_panels.panels`` (name = kind, value =
``module:Class``) of any installed distribution; the built-in panels of
``typed-panels`` use that same group. Discovery reads metadata only; a class
is imported on first use. A plugin that fails to import, targets another API
major version, raises in ``match`` or in ``render`` is recorded (see
``statuses()``), warned about once, and skipped or shown as an error card:
every other panel keeps working. ``SystemExit`` (a plugin calling ``sys.exit``)
counts as such an error; ``KeyboardInterrupt`` is never caught.

Environment: ``PANELS_DISABLE_PLUGINS=1`` loads only typed-panels' own entry
points; ``PANELS_PLUGINS=kind1,kind2`` allows only those plugin kinds (the
built-ins are always allowed).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import math
import os
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from panels_core.escape import markdown_code
from panels_core.panel import (
    API_VERSION,
    Panel,
    PanelConfig,
    PanelDefinitionError,
    check_panel_class,
    format_validation_error,
    major_version,
)
from panels_core.panel_errors import (
    PLUGIN_FAULTS,
    MissingPanel,
    describe_exception,
    error_card,
    shown_now,
)
from panels_core.types import TableType

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "GROUP",
    "PLUGIN_FAULTS",
    "Match",
    "MissingPanel",
    "PluginStatus",
    "Registry",
    "UnknownPanelError",
    "error_card",
    "registry",
]

GROUP: Final = "typed_panels.panels"
BUILTIN_DISTRIBUTION: Final = "typed-panels"
DISABLE_ENV: Final = "PANELS_DISABLE_PLUGINS"
ALLOW_ENV: Final = "PANELS_PLUGINS"

State = Literal["ok", "failed", "incompatible", "disabled", "duplicate"]


class UnknownPanelError(LookupError):
    """No usable panel of that kind; the message says why and what to do."""


class PluginStatus(BaseModel):
    """One panel kind as discovered: where it comes from and whether it works."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    title: str = ""
    distribution: str | None = None
    version: str | None = None
    value: str | None = None
    state: State = "ok"
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Match:
    """A panel that fits a view type, its score and its default config."""

    kind: str
    panel: type[Panel[Any]]
    score: float
    config: PanelConfig


@dataclasses.dataclass
class _Entry:
    kind: str
    order: int
    distribution: str | None = None
    version: str | None = None
    entry_point: importlib.metadata.EntryPoint | None = None
    cls: type[Panel[Any]] | None = None
    state: State = "ok"
    error: str | None = None

    @property
    def value(self) -> str | None:
        if self.entry_point is not None:
            return self.entry_point.value
        return f"{self.cls.__module__}:{self.cls.__qualname__}" if self.cls else None

    @property
    def usable(self) -> bool:
        return self.state == "ok"

    def status(self) -> PluginStatus:
        title = self.cls.title if self.cls is not None else ""
        return PluginStatus(
            kind=self.kind,
            title=title,
            distribution=self.distribution,
            version=self.version,
            value=self.value,
            state=self.state,
            error=self.error,
        )


def normalize_distribution(name: str | None) -> str:
    """A distribution name in its normalized form (``Typed_Panels`` -> ``typed-panels``)."""
    return re.sub(r"[-_.]+", "-", name or "").lower()


def _is_builtin(distribution: str | None) -> bool:
    return normalize_distribution(distribution) == BUILTIN_DISTRIBUTION


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    name = getattr(dist, "name", None) or dist.metadata["Name"]
    return name, dist.version


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class Registry:
    """Panel kinds -> Panel classes, with discovery, ranking and error isolation."""

    def __init__(self, group: str = GROUP, *, autodiscover: bool = False) -> None:
        self.group = group
        self._entries: dict[str, _Entry] = {}
        self._extra: list[_Entry] = []  # duplicates and disabled entry points, for statuses()
        self._order = 0
        self._autodiscover = autodiscover
        self._discovered = False
        self._warned: set[tuple[str, str]] = set()
        self._runtime_errors: dict[str, str] = {}
        self._lock = threading.RLock()

    # -- registration --------------------------------------------------------------------

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    def register(
        self,
        cls: type[Panel[Any]],
        *,
        distribution: str | None = None,
        version: str | None = None,
        replace: bool = False,
    ) -> type[Panel[Any]]:
        """Add a Panel class (usable as a decorator); checks kind, api_version and config.

        Raises PanelDefinitionError for a bad class, ValueError when another class
        already holds the kind (pass ``replace=True`` to swap it).
        """
        check_panel_class(cls)
        self._check_api(cls)
        with self._lock:
            self._ensure_discovered()
            old = self._entries.get(cls.kind)
            if old is not None and old.cls is not cls and old.usable and not replace:
                raise ValueError(
                    f"panel kind `{cls.kind}` is already registered by {old.value}; "
                    "pass replace=True to replace it"
                )
            order = old.order if old is not None else self._next_order()
            self._entries[cls.kind] = _Entry(
                kind=cls.kind, order=order, distribution=distribution, version=version, cls=cls
            )
        return cls

    def unregister(self, kind: str) -> None:
        """Remove a kind (no error when absent)."""
        with self._lock:
            self._entries.pop(kind, None)

    @staticmethod
    def _check_api(cls: type[Panel[Any]]) -> None:
        if major_version(cls.api_version) != major_version(API_VERSION):
            raise PanelDefinitionError(
                f"panel `{cls.kind}` was written for Panel API {cls.api_version}, but this "
                f"typed-panels provides API {API_VERSION}; install a version of the plugin "
                f"built for API {major_version(API_VERSION)}.x"
            )

    # -- discovery -----------------------------------------------------------------------

    def discover(
        self, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
    ) -> list[PluginStatus]:
        """Read the entry points of the group (without importing them) and record them.

        Replaces what an earlier discover() found; classes registered by hand stay.
        Returns the statuses of what was found (disabled and duplicates included).
        """
        found = self._read_entry_points(entry_points)
        with self._lock:
            manual = {k: e for k, e in self._entries.items() if e.entry_point is None}
            self._entries = {}
            self._extra = []
            self._discovered = True
            for entry in found:
                entry.order = self._next_order()
                winner = self._entries.get(entry.kind) or manual.get(entry.kind)
                if not entry.usable:
                    self._extra.append(entry)
                elif winner is not None:
                    entry.state = "duplicate"
                    where = winner.distribution or winner.value or "a registered class"
                    entry.error = f"kind `{entry.kind}` is also provided by {where}, which wins"
                    self._extra.append(entry)
                    self._warn(
                        entry.kind,
                        "duplicate",
                        f"panel kind `{entry.kind}` is provided by {where} and by "
                        f"{entry.distribution or entry.value}; using {where}",
                    )
                else:
                    self._entries[entry.kind] = entry
            for kind, entry in sorted(manual.items(), key=lambda item: item[1].order):
                entry.order = self._next_order()  # hand registrations rank after entry points
                self._entries.setdefault(kind, entry)
            return [e.status() for e in (*self._entries.values(), *self._extra)]

    def _read_entry_points(
        self, entry_points: Iterable[importlib.metadata.EntryPoint] | None
    ) -> list[_Entry]:
        """The group's entry points as entries (disabled ones marked), built-ins first."""
        if entry_points is None:
            entry_points = importlib.metadata.entry_points(group=self.group)
        disable = _truthy(os.environ.get(DISABLE_ENV))
        allow_text = os.environ.get(ALLOW_ENV, "").strip()
        allow = {k.strip() for k in allow_text.split(",") if k.strip()} if allow_text else None

        found: list[_Entry] = []
        for index, ep in enumerate(entry_points):
            if ep.group and ep.group != self.group:
                continue
            dist, version = _dist_of(ep)
            entry = _Entry(
                kind=ep.name, order=index, distribution=dist, version=version, entry_point=ep
            )
            if not _is_builtin(dist):
                if disable:
                    entry.state, entry.error = "disabled", f"disabled by {DISABLE_ENV}=1"
                elif allow is not None and ep.name not in allow:
                    entry.state, entry.error = "disabled", f"not listed in {ALLOW_ENV}"
            found.append(entry)
        found.sort(
            key=lambda e: (
                not _is_builtin(e.distribution),
                normalize_distribution(e.distribution),
                e.order,
            )
        )
        return found

    def _ensure_discovered(self) -> None:
        if self._autodiscover and not self._discovered:
            self.discover()

    def _warn(self, kind: str, what: str, message: str) -> None:
        if (kind, what) in self._warned:
            return
        self._warned.add((kind, what))
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _load(self, entry: _Entry) -> type[Panel[Any]] | None:
        """The entry's class, importing it on first use; None when it cannot be used."""
        if entry.cls is not None or not entry.usable or entry.entry_point is None:
            return entry.cls if entry.usable else None
        with self._lock:
            if entry.cls is not None or not entry.usable:
                return entry.cls if entry.usable else None
            source = entry.distribution or entry.entry_point.value
            try:
                cls = entry.entry_point.load()
                check_panel_class(cls)
                if cls.kind != entry.kind:
                    raise PanelDefinitionError(
                        f"entry point name `{entry.kind}` differs from the class kind "
                        f"`{cls.kind}`; name the entry point after the kind"
                    )
            except PLUGIN_FAULTS as exc:
                entry.state, entry.error = "failed", describe_exception(exc)
                self._warn(
                    entry.kind,
                    "load",
                    f"panel plugin `{entry.kind}` from {source} failed to load: {entry.error}",
                )
                return None
            try:
                self._check_api(cls)
            except PanelDefinitionError as exc:
                entry.state, entry.error = "incompatible", str(exc)
                self._warn(entry.kind, "api", str(exc))
                return None
            entry.cls = cls
            return cls

    def _ordered(self) -> list[_Entry]:
        self._ensure_discovered()
        return sorted(self._entries.values(), key=lambda e: (e.order, e.kind))

    # -- lookup --------------------------------------------------------------------------

    def kinds(self) -> list[str]:
        """The kinds that are usable or not yet imported, in registration order."""
        return [e.kind for e in self._ordered() if e.usable]

    def get(self, kind: str) -> type[Panel[Any]]:
        """The Panel class of a kind; UnknownPanelError says why it is unavailable."""
        self._ensure_discovered()
        entry = self._entries.get(kind)
        if entry is not None and self._load(entry) is not None:
            return entry.cls  # type: ignore[return-value]
        if entry is not None:
            raise UnknownPanelError(
                f"panel `{kind}` ({entry.distribution or entry.value}) cannot be used "
                f"({entry.state}): {entry.error}"
            )
        extra = next((e for e in self._extra if e.kind == kind), None)
        if extra is not None:
            raise UnknownPanelError(f"panel `{kind}` cannot be used ({extra.state}): {extra.error}")
        close = difflib.get_close_matches(kind, self.kinds(), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(f'`{c}`' for c in close)}?" if close else ""
        raise UnknownPanelError(f"no panel `{kind}` is installed{hint} (see `panels plugins`)")

    def __contains__(self, kind: object) -> bool:
        self._ensure_discovered()
        return isinstance(kind, str) and kind in self._entries

    def status(self, kind: str) -> PluginStatus | None:
        """The status of one kind (loading it), or None when nothing claims it."""
        self._ensure_discovered()
        entry = self._entries.get(kind)
        if entry is not None:
            self._load(entry)
            return self._with_runtime_error(entry.status())
        extra = next((e for e in self._extra if e.kind == kind), None)
        return extra.status() if extra is not None else None

    def statuses(self) -> list[PluginStatus]:
        """Every kind found, loaded to learn its state: ok, failed, incompatible,
        disabled or duplicate, with the error; the last runtime error of a working
        panel (a match or render that raised) is reported as its error."""
        entries = self._ordered()
        for entry in entries:
            self._load(entry)
        result = [self._with_runtime_error(e.status()) for e in entries]
        return result + [e.status() for e in self._extra]

    def _with_runtime_error(self, status: PluginStatus) -> PluginStatus:
        runtime = self._runtime_errors.get(status.kind)
        if runtime and status.state == "ok":
            return status.model_copy(update={"error": runtime})
        return status

    def distribution_of(self, kind: str) -> str | None:
        """The distribution that provides a kind, when known."""
        self._ensure_discovered()
        entry = self._entries.get(kind) or next((e for e in self._extra if e.kind == kind), None)
        return entry.distribution if entry is not None else None

    # -- matching ------------------------------------------------------------------------

    def _runtime_failure(self, entry: _Entry, what: str, exc: BaseException) -> str:
        message = f"{what} raised {describe_exception(exc)}"
        self._runtime_errors[entry.kind] = message
        source = entry.distribution or entry.value
        self._warn(entry.kind, what, f"panel `{entry.kind}` ({source}): {message}")
        return message

    def compatible(self, view_type: Any) -> list[Match]:
        """Every usable panel that fits the view type, best first.

        Ties keep registration order (built-ins first, then plugins by distribution
        name), then kind. A panel whose ``match`` or ``default_config`` raises is
        recorded and left out of this answer.
        """
        matches: list[tuple[float, int, str, Match]] = []
        for entry in self._ordered():
            cls = self._load(entry)
            if cls is None:
                continue
            try:
                score = cls.match(view_type)
                if score is None:
                    continue
                score = float(score)
                if not math.isfinite(score):
                    raise ValueError(f"match returned {score}, not a finite number")
            except PLUGIN_FAULTS as exc:
                self._runtime_failure(entry, "match", exc)
                continue
            try:
                config = cls.default_config(view_type)
            except PLUGIN_FAULTS as exc:
                self._runtime_failure(entry, "default_config", exc)
                continue
            matches.append((-score, entry.order, entry.kind, Match(entry.kind, cls, score, config)))
        matches.sort(key=lambda m: m[:3])
        return [m[3] for m in matches]

    def _first_screen_place(self, match: Match, table_type: Any) -> float | None:
        """``match.panel.first_screen(table_type)``; a panel whose hook raises is recorded
        and left off the first screen."""
        try:
            place = match.panel.first_screen(table_type)
            return None if place is None else float(place)
        except PLUGIN_FAULTS as exc:
            entry = self._entries.get(match.kind)
            if entry is not None:
                self._runtime_failure(entry, "first_screen", exc)
            return None

    def first_screen(self, table_type: Any, matches: list[Match] | None = None) -> list[Match]:
        """The panels a new workspace shows first for a table of ``table_type``.

        The lead is the first of ``matches`` (default: ``compatible(table_type)``) whose
        ``first_screen`` says 0, else the best match unless it gives a positive place
        of its own; then every match that gives a positive place, smaller places first.
        Empty when nothing fits.
        """
        if matches is None:
            matches = self.compatible(table_type)
        places = [(self._first_screen_place(m, table_type), m) for m in matches]
        best = matches[0] if matches and not (places[0][0] or 0) > 0 else None
        lead = next((m for place, m in places if place == 0), best)
        extras = sorted(
            ((place, i, m) for i, (place, m) in enumerate(places) if place and place > 0),
            key=lambda x: x[:2],
        )
        return ([lead] if lead is not None else []) + [m for _, _, m in extras]

    def lead_kind(self) -> str | None:
        """The kind that leads a table's cards when its type is not known (the table
        could not be typed): the first usable kind whose ``first_screen`` says 0 for a
        table of no known columns, else the first usable kind; None when none is installed."""
        unknown = TableType(columns={})
        for entry in self._ordered():
            cls = self._load(entry)
            if cls is None:
                continue
            try:
                if cls.first_screen(unknown) == 0:
                    return entry.kind
            except PLUGIN_FAULTS as exc:
                self._runtime_failure(entry, "first_screen", exc)
        kinds = self.kinds()
        return kinds[0] if kinds else None

    def default(self, view_type: Any) -> Match | None:
        """The best match for the view type, or None when nothing fits."""
        found = self.compatible(view_type)
        return found[0] if found else None

    # -- instances and rendering ---------------------------------------------------------

    def panel_for(
        self,
        kind: str,
        config: Mapping[str, Any] | None = None,
        *,
        view_type: Any = None,
        distribution: str | None = None,
    ) -> Panel[Any] | MissingPanel:
        """A Panel instance for a saved card, or a MissingPanel that keeps its config.

        ``distribution`` is the hint saved with the workspace for a kind that is not
        installed here. A config that no longer validates also gives a MissingPanel
        (with the validation message), so nothing is lost on save.
        """
        self._ensure_discovered()
        entry = self._entries.get(kind) or next((e for e in self._extra if e.kind == kind), None)
        if entry is None:
            return MissingPanel(kind, config, distribution=distribution)
        cls = self._load(entry) if entry.usable else None
        if cls is None:
            reason = f"{entry.state}: {entry.error}"
            return MissingPanel(
                kind, config, distribution=entry.distribution or distribution, reason=reason
            )
        try:
            return cls(cls.validate_config(config or {}, view_type))
        except ValidationError as exc:
            detail = "; ".join(
                f"{k or 'config'}: {v}" for k, v in format_validation_error(exc).items()
            )
            return MissingPanel(kind, config, distribution=entry.distribution, reason=detail)

    def render(
        self, kind: str, view: Any, config: Mapping[str, Any] | PanelConfig | None = None
    ) -> Any:
        """One panel over ``view`` as a ``RenderedPanel`` (``panels_core.static_html``): a
        ``pn.Column`` holding ``render_object``'s result, that shows in a notebook and whose
        ``save(path)`` writes one self-contained HTML file that opens offline."""
        from panels_core.static_html import RenderedPanel

        obj, checked = self._rendered(kind, view, config)
        return RenderedPanel(obj, kind=kind, config=checked, view=view)

    def render_object(
        self, kind: str, view: Any, config: Mapping[str, Any] | PanelConfig | None = None
    ) -> Any:
        """The pn object the panel returns over ``view`` (what a card shows); never raises
        for a panel's fault.

        A kind that is not installed gives the MissingPanel notice; a config that
        does not validate, or a render that raises, gives an error card naming the
        kind, the message and the distribution. ``config`` None uses the default.
        """
        return self._rendered(kind, view, config)[0]

    def _rendered(
        self, kind: str, view: Any, config: Mapping[str, Any] | PanelConfig | None
    ) -> tuple[Any, PanelConfig | None]:
        """(the panel's pn object or an error card, the validated config or None)."""
        self._ensure_discovered()
        entry = self._entries.get(kind)
        if entry is None or self._load(entry) is None:
            raw = config.model_dump() if isinstance(config, BaseModel) else config
            return self.panel_for(kind, raw).render(view), None
        cls = entry.cls
        assert cls is not None
        source = " ".join(x for x in (entry.distribution, entry.version) if x) or entry.value
        try:
            view_type = view.type
            if config is None:
                checked = cls.default_config(view_type)
            else:
                checked = cls.validate_config(config, view_type)
        except ValidationError as exc:
            text = "\n".join(
                f"{k}: {v}" if k else str(v) for k, v in format_validation_error(exc).items()
            )
            head = f"Panel {markdown_code(kind)}: invalid config"
            return error_card(kind, text, source, title=head), None
        except PLUGIN_FAULTS as exc:
            return error_card(kind, describe_exception(exc), source), None
        try:
            return shown_now(cls(checked).render(view)), checked
        except PLUGIN_FAULTS as exc:
            message = self._runtime_failure(entry, "render", exc)
            return error_card(kind, message, source), checked

    def is_plugin(self, kind: str) -> bool:
        """True when ``kind`` comes from a plugin (another distribution, or a class
        registered in-process), False for typed-panels' own panels and unknown kinds."""
        self._ensure_discovered()
        entry = self._entries.get(kind)
        return entry is not None and not _is_builtin(entry.distribution)

    # -- schemas -------------------------------------------------------------------------

    def config_schemas(self) -> dict[str, dict[str, Any]]:
        """The JSON Schema of every usable panel's config, by kind."""
        schemas: dict[str, dict[str, Any]] = {}
        for entry in self._ordered():
            cls = self._load(entry)
            if cls is not None:
                schemas[entry.kind] = cls.config_model.model_json_schema()
        return schemas


registry = Registry(autodiscover=True)
"""The default registry: discovers the ``typed_panels.panels`` entry points on first use."""
