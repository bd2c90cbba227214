"""Text from data, shown as text: one escaping helper per output context.

Names, values, titles and messages read from tables, file names, workspace files
or plugins never become markup. Use the helper of the place the text goes:

- ``html_text``: element content of HTML (``pn.pane.HTML``, Tabulator titles and
  cells, SVG ``<title>``/``<text>``, MultiChoice labels, Card titles);
  ``choice_options`` gives MultiChoice options whose labels are escaped names;
- ``html_attr``: a quoted HTML attribute value;
- ``markdown_text`` / ``markdown_lines``: plain text inside Markdown
  (``pn.pane.Markdown``, ``pn.pane.Alert``); ``markdown_code``: a name shown as
  inline code; ``markdown_block``: a preformatted block;
- ``tooltip_text``: literal text inside a Bokeh tooltip template, where ``@``,
  ``$`` and ``{}`` name fields as well.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Iterable
from typing import Any

__all__ = [
    "choice_options",
    "html_attr",
    "html_text",
    "markdown_block",
    "markdown_code",
    "markdown_lines",
    "markdown_text",
    "tooltip_text",
]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LEADING_SPACE = re.compile(r"^[ \t]+")
_MARKDOWN_SPECIAL = {ord(c): f"&#{ord(c)};" for c in string.punctuation}
_TOOLTIP_SPECIAL = {ord(c): f"&#{ord(c)};" for c in "@${}"}


def html_text(value: Any) -> str:
    """``value`` as HTML element content: ``&``, ``<``, ``>`` and quotes escaped."""
    return html.escape(str(value), quote=True)


def html_attr(value: Any) -> str:
    """``value`` inside a double- or single-quoted HTML attribute (also escapes backticks)."""
    return html.escape(str(value), quote=True).replace("`", "&#96;")


def _markdown_line(line: str) -> str:
    escaped = line.translate(_MARKDOWN_SPECIAL)
    return _LEADING_SPACE.sub(lambda m: "".join(f"&#{ord(c)};" for c in m.group()), escaped)


def markdown_text(value: Any) -> str:
    """``value`` as literal text in Markdown, on one line.

    Every ASCII punctuation character becomes a numeric character reference
    (Markdown shows those as the character, never as syntax: no HTML, emphasis,
    links, code spans, headings, lists or table cells), and line breaks become
    ``&#10;`` (shown as a space), so the text cannot start a block either.
    """
    return "&#10;".join(_markdown_line(line) for line in _LINE_BREAK.split(str(value)))


def markdown_lines(value: Any) -> str:
    """``value`` as literal text in Markdown, keeping its line breaks (as hard breaks)."""
    return "<br>\n".join(markdown_text(line) for line in _LINE_BREAK.split(str(value)))


def markdown_code(value: Any) -> str:
    """``value`` as an inline code span, whatever backticks or line breaks it holds.

    The fence is one backtick longer than the longest run inside; line breaks
    become spaces (a code span cannot hold them). Inside a GFM table cell also
    escape ``|`` (``\\|``), as the table splits cells before reading code spans.
    """
    text = _LINE_BREAK.sub(" ", str(value))
    runs = [len(run) for run in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    if not text or text[0] in "` " or text[-1] in "` ":
        text = f" {text} "
    return f"{fence}{text}{fence}"


def markdown_block(value: Any, info: str = "text") -> str:
    """``value`` as a fenced code block (shown as is, line breaks and spacing kept).

    The fence is longer than any backtick run in the text, so no line of it can close it.
    """
    text = str(value)
    runs = [len(run) for run in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def tooltip_text(value: Any) -> str:
    """``value`` as literal text inside a Bokeh tooltip template (HTML whose ``@name``,
    ``@{name}``, ``$name`` and ``{format}`` are replaced by values)."""
    return html_text(value).translate(_TOOLTIP_SPECIAL)


def choice_options(names: Iterable[str]) -> dict[str, str]:
    """Options for Panel's MultiChoice, whose labels the browser renders as HTML: each
    label is the name as ``html_text`` (shown literally), mapping back to the name."""
    return {html_text(name): name for name in names}
