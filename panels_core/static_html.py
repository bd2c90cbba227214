"""Self-contained static HTML of Panel objects: what a saved panel or report is.

``html_text(obj)`` is the page of any pn object with everything it needs inside:
Bokeh and Panel JS/CSS inlined (``resources=INLINE``), Panel's stylesheets (which
Panel leaves as CDN links even with INLINE) read from the installed package and
inlined, the favicon a data URI. Plots keep pan/zoom/hover (their Bokeh tools travel
in the document JSON); widgets whose changes only reach Python (pager buttons,
selectors) are shown disabled and tables show the page they were rendered with.
``save_html(obj, path)`` writes it atomically; ``report_layout`` is the plain page
around saved objects (title, a "first N of M rows" note above a table, the note on
what needs ``panels serve``). ``RenderedPanel`` is one panel's rendering, whose
``save(path)`` writes such a page.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import io
import mimetypes
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import panel as pn

from panels_core.escape import markdown_text
from panels_core.paths import write_text_atomic
from panels_core.view import View

__all__ = [
    "STATIC_NOTE",
    "RenderedPanel",
    "external_references",
    "html_text",
    "report_layout",
    "rows_note",
    "save_html",
]

STATIC_NOTE = (
    "Static report: plots keep pan, zoom and hover; tables show their first page. "
    "Paging, sorting, filters, projections recomputed and swapping panels need a live "
    "server (`panels serve`)."
)


class RenderedPanel(pn.Column):
    """What ``render`` and ``registry.render`` return: a ``pn.Column`` holding one panel's
    rendering (or its error card).

    It composes into any Panel layout and shows inline in a notebook. ``kind``,
    ``config`` (the validated config; None when it did not validate or the kind is
    not installed) and ``view`` say what it shows;
    ``save(path)`` writes a self-contained offline HTML file (``save_html``);
    pass ``resources=...`` to get Panel's own ``save`` instead.
    """

    def __init__(self, *objects: Any, kind: str, config: Any, view: View, **params: Any) -> None:
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(*objects, **params)
        self.kind = kind
        self.config = config
        self.view = view

    def save(self, filename: Any, title: str | None = None, resources: Any = None, **kwargs: Any):
        """Write self-contained HTML (no ``resources``), or defer to Panel's ``save``."""
        if resources is None and not kwargs and isinstance(filename, str | os.PathLike):
            return save_html(self, filename, title=title or self.kind)
        return super().save(filename, title=title, resources=resources, **kwargs)


# ----------------------------------------------------------------------------- layouts


def _tabulators(obj: Any) -> list[Any]:
    select = getattr(obj, "select", None)
    found = select(pn.widgets.Tabulator) if select is not None else []
    return [t for t in found if t.visible and t.value is not None]


def rows_note(obj: Any, view: View | None) -> Any | None:
    """A "first N of M rows" note above a panel that shows a table page, or None."""
    tables = _tabulators(obj)
    if not tables or view is None:
        return None
    try:
        total = view.count()
    except Exception:
        return None
    shown = max(len(t.value) for t in tables)
    unit = "groups" if view.query.group_by else "rows"
    if shown >= total:
        text = f"*Static copy: all {total:,} {unit}.*"
    else:
        text = (
            f"*Static copy: first {shown:,} of {total:,} {unit}; paging and sorting need "
            "`panels serve`.*"
        )
    return pn.pane.Markdown(
        text,
        margin=(0, 10),
        css_classes=["static-rows-note"],
    )


def report_layout(*objects: Any, title: str | None = None, note: bool = True) -> pn.Column:
    """A plain report page: an optional title, the objects, and the static-report note."""
    parts: list[Any] = []
    if title:
        parts.append(pn.pane.Markdown(f"# {markdown_text(title)}", margin=(0, 10)))
    for obj in objects:
        if isinstance(obj, RenderedPanel):
            row_note = rows_note(obj, obj.view)
            if row_note is not None:
                parts.append(row_note)
        parts.append(obj)
    if note:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        parts.append(
            pn.pane.Markdown(
                f"<small>{STATIC_NOTE} Written {stamp} by typed-panels.</small>",
                margin=(10, 10),
                css_classes=["static-note"],
            )
        )
    return pn.Column(*parts, sizing_mode="stretch_width")


# ----------------------------------------------------------------------------- HTML


_WIDGET_TYPES: tuple[type, ...] | None = None


def _python_only_widget_types() -> tuple[type, ...]:
    global _WIDGET_TYPES
    if _WIDGET_TYPES is None:
        from bokeh.models import AbstractButton, InputWidget
        from bokeh.models.widgets.groups import AbstractGroup
        from bokeh.models.widgets.sliders import AbstractSlider

        _WIDGET_TYPES = (AbstractButton, InputWidget, AbstractGroup, AbstractSlider)
    return _WIDGET_TYPES


def _data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".woff2":
        kind = "font/woff2"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}")
_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""")


def _inline_css(css: str, folder: Path) -> str:
    """CSS text with relative ``url()``s made data URIs; ``@font-face`` rules dropped
    (fonts declared inside a component's shadow root are not used by browsers)."""
    css = _FONT_FACE.sub("", css)

    def replace(match: re.Match[str]) -> str:
        target = match.group(2).strip()
        if target.startswith(("data:", "#")) or re.match(r"^[a-z]+:", target):
            return match.group(0)
        local = (folder / target.split("?")[0].split("#")[0]).resolve()
        if local.is_file():
            return f'url("{_data_uri(local)}")'
        return match.group(0)

    return _CSS_URL.sub(replace, css)


def _local_stylesheet(url: str) -> Path | None:
    """The installed file behind one of Panel's (or Bokeh's) CDN stylesheet URLs."""
    from panel.io.resources import CDN_DIST, DIST_DIR

    bare = url.split("?")[0].split("#")[0]
    for prefix in (CDN_DIST, "static/extensions/panel/"):
        if bare.startswith(prefix):
            path = (DIST_DIR / bare.removeprefix(prefix)).resolve()
            return path if path.is_file() else None
    return None


def _make_static(doc: Any) -> None:
    """Patch a Bokeh document for a file: stylesheets inlined, Python-only buttons hidden and
    inputs disabled, table headers not sortable (the page holds only the rendered rows)."""
    from bokeh.models import AbstractButton, ImportedStyleSheet, InlineStyleSheet

    inlined: dict[str, Any] = {}
    missing: set[str] = set()

    def replacement(sheet: Any) -> Any:
        if not isinstance(sheet, ImportedStyleSheet):
            return sheet
        url = sheet.url
        if url not in inlined:
            local = _local_stylesheet(url)
            if local is None:
                if re.match(r"^https?://", url):
                    missing.add(url)
                inlined[url] = None
            else:
                css = _inline_css(local.read_text(encoding="utf-8"), local.parent)
                inlined[url] = InlineStyleSheet(css=css)
        return inlined[url] if inlined[url] is not None else sheet

    widget_types = _python_only_widget_types()
    for model in list(doc.models):
        sheets = getattr(model, "stylesheets", None)
        if sheets:
            new = [replacement(s) for s in sheets]
            if any(a is not b for a, b in zip(new, sheets)):
                model.stylesheets = new
        python_only = not (model.js_property_callbacks or model.js_event_callbacks)
        if isinstance(model, widget_types) and python_only:
            # a button only reaches Python: hidden; an input shows its value, disabled
            if isinstance(model, AbstractButton):
                model.visible = False
            else:
                model.disabled = True
        if type(model).__name__ == "DataTabulator":
            configuration = dict(model.configuration or {})
            if "columns" in configuration:
                configuration["columns"] = _unsortable(configuration["columns"])
                model.configuration = configuration
    if missing:
        warnings.warn(
            "static HTML: stylesheets left as links (no local copy found): "
            + ", ".join(sorted(missing)),
            RuntimeWarning,
            stacklevel=3,
        )


def _unsortable(columns: Iterable[Any]) -> list[Any]:
    out = []
    for column in columns:
        if isinstance(column, Mapping):
            column = dict(column)
            if "columns" in column:
                column["columns"] = _unsortable(column["columns"])
            else:
                column["headerSort"] = False
        out.append(column)
    return out


_ATTR_URL = re.compile(
    r"""<(script|link|img|iframe|source|video|audio|embed)\b[^>]*?\b(src|href)\s*=\s*["']"""
    r"""(https?://[^"']+)["']""",
    re.IGNORECASE,
)
_JSON_SHEET_URL = re.compile(r'"name":\s*"ImportedStyleSheet"[^{}]*\{[^{}]*"url":\s*"([^"]+)"')
_CSS_REMOTE = re.compile(r"""(?:@import\s+|url\(\s*)\\?["']?(https?://[^"')\\\s]+)""")


def external_references(html: str) -> list[str]:
    """The remote resources a page would load: ``src``/``href`` of scripts, stylesheets,
    icons and images, Bokeh ``ImportedStyleSheet`` URLs, and CSS ``url()``/``@import``."""
    found = [m.group(3) for m in _ATTR_URL.finditer(html)]
    found += [u for u in _JSON_SHEET_URL.findall(html) if not u.startswith("data:")]
    found += _CSS_REMOTE.findall(html)
    return sorted(set(found))


def _favicon() -> str:
    from panel.io.resources import DIST_DIR

    icon = DIST_DIR / "images" / "icon-32x32.png"
    return _data_uri(icon) if icon.is_file() else ""


@contextlib.contextmanager
def _quiet_empty_layouts() -> Iterator[None]:
    """Bokeh's EMPTY_LAYOUT check silenced while saving (an empty toolbar row is harmless)."""
    from bokeh.core.validation import check, silence
    from bokeh.core.validation.warnings import EMPTY_LAYOUT

    already = EMPTY_LAYOUT in getattr(check, "__silencers__", set())
    silence(EMPTY_LAYOUT, True)
    try:
        yield
    finally:
        if not already:
            silence(EMPTY_LAYOUT, False)


def html_text(obj: Any, title: str = "typed-panels report") -> str:
    """The self-contained HTML of any pn-displayable object (nothing is written)."""
    from bokeh.document import Document
    from bokeh.resources import INLINE
    from panel.io.model import add_to_doc
    from panel.io.resources import set_resource_mode
    from panel.io.save import save
    from pyviz_comms import Comm

    if isinstance(obj, pn.template.BaseTemplate):
        raise ValueError(
            "static HTML: Panel templates load their JS/CSS and fonts from a CDN even with "
            "inline resources, so the file would not work offline; put the objects in a "
            "layout (pn.Column) instead"
        )
    viewable = pn.panel(obj)
    doc = Document()
    with set_resource_mode("inline"):
        model = viewable.get_root(doc, Comm())
    add_to_doc(model, doc, True)
    with doc.models.freeze():  # one recompute of the model graph, not one per change
        _make_static(doc)
    buffer = io.StringIO()
    with _quiet_empty_layouts():
        save(
            doc,
            buffer,
            resources=INLINE,
            title=title,
            template_variables={"app_favicon": _favicon(), "apple_icon": ""},
        )
    text = buffer.getvalue()
    remote = external_references(text)
    if remote:
        warnings.warn(
            "static HTML still refers to remote resources (it needs the network for them): "
            + ", ".join(remote),
            RuntimeWarning,
            stacklevel=2,
        )
    return text


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def save_html(obj: Any, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write ``obj`` (any pn object, a RenderedPanel, a layout) as one self-contained HTML
    file that works offline; written atomically (temp file + rename). Returns the path."""
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"save_html: write to a .html file, got {target}")
    if isinstance(obj, RenderedPanel):
        obj = report_layout(obj, title=title)
    _write(target, html_text(obj, title=title or "typed-panels report"))
    return target
