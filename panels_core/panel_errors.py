"""What a panel's failure shows: the faults caught, an error card, the missing-panel notice.

A plugin that raises (or calls ``sys.exit``) in ``match``, ``default_config`` or
``render`` is caught as one of ``PLUGIN_FAULTS`` and shown as ``error_card``; a
saved card whose kind is not installed shows ``MissingPanel``'s notice and keeps
its config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from panels_core.escape import markdown_code, markdown_lines, markdown_text

__all__ = ["PLUGIN_FAULTS", "MissingPanel", "describe_exception", "error_card", "shown_now"]


PLUGIN_FAULTS: Final = (Exception, SystemExit)
"""What a panel's own code may raise and the registry turns into an error card or a
recorded failure: any Exception, and SystemExit (a plugin calling ``sys.exit``)."""


def describe_exception(exc: BaseException) -> str:
    """One line for an exception a panel raised: its type and first line (SystemExit says so)."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: sys.exit({exc.code!r}) was called"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_card(kind: str, message: str, distribution: str | None = None, *, title: str = "") -> Any:
    """A red card saying a panel failed, naming the kind, the error and its distribution.

    ``message`` and ``distribution`` are plain text (shown literally); ``title`` is
    Markdown whose data-derived parts the caller escapes (panels_core.escape).
    """
    import panel as pn

    source = f" (from {markdown_text(distribution)})" if distribution else ""
    head = title or f"Panel {markdown_code(kind)} failed"
    return pn.pane.Alert(
        f"**{head}**{source}\n\n{markdown_lines(message)}",
        alert_type="danger",
        sizing_mode="stretch_width",
    )


def shown_now(obj: Any) -> Any:
    """``obj`` as a pn object, its HTML made now: Panel calls an object's ``_repr_html_``
    only when it draws the page, where an error would escape the panel's error card."""
    import panel as pn

    shown = obj if isinstance(obj, pn.viewable.Viewable) else pn.panel(obj)
    select = getattr(shown, "select", None)
    for pane in select(pn.pane.HTML) if select is not None else ():
        if type(pane) is pn.pane.HTML and hasattr(pane.object, "_repr_html_"):
            pane.object = pane.object._repr_html_()
    return shown


class MissingPanel:
    """Stands in for a card whose panel kind is not installed (or not usable).

    It renders a notice saying how to get the panel and keeps the saved config
    exactly as it was, so a workspace saves back unchanged.
    """

    title = "Missing panel"

    def __init__(
        self,
        kind: str,
        config: Mapping[str, Any] | None = None,
        *,
        distribution: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.kind = kind
        self.config: dict[str, Any] = dict(config or {})
        self.distribution = distribution
        self.reason = reason

    @property
    def message(self) -> str:
        """The text shown on the card."""
        if self.reason:
            source = f" (from {self.distribution})" if self.distribution else ""
            return f"panel `{self.kind}`{source} is not available: {self.reason}"
        if self.distribution:
            hint = f"pip install {self.distribution}"
        else:
            hint = "pip install the distribution that provides it; `panels plugins` lists panels"
        return f"panel `{self.kind}` is not installed ({hint})"

    def config_dict(self) -> dict[str, Any]:
        """The saved config, unchanged."""
        return dict(self.config)

    def render(self, view: Any = None) -> Any:
        """A warning card with ``message``."""
        import panel as pn

        return pn.pane.Alert(
            markdown_lines(self.message), alert_type="warning", sizing_mode="stretch_width"
        )

    def __repr__(self) -> str:
        return f"MissingPanel({self.kind!r}, {self.config!r})"
