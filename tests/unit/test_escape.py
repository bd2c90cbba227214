"""The escaping helpers: each output context gets hostile text back as literal text.

Markdown is checked through the renderer Panel's Markdown pane uses, Bokeh tooltip
templates against the placeholder syntax Bokeh replaces.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import panel as pn
import pytest

from panels_core.escape import (
    choice_options,
    html_attr,
    html_text,
    markdown_block,
    markdown_code,
    markdown_lines,
    markdown_text,
    tooltip_text,
)

IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=1</script>"
BREAK_OUT = "`a`b <img src=x onerror=window.__pwned=1> `c"
LINK = "[x](javascript:window.__pwned=1)"
PAYLOADS = [
    IMG,
    SCRIPT,
    BREAK_OUT,
    LINK,
    '"><script>window.__pwned=1</script>',
    "# heading\n\n- item\n\n    code\n| a | b |\n|---|---|",
    "*em* __strong__ ~~del~~ ![i](x) <b>b</b> &lt;kept&gt; $$x$$ :smile: \\",
    "``` fence\n<img src=x onerror=1>\n```",
    "   leading spaces\r\nand a CR\rline",
    "",
]


class _Tags(HTMLParser):
    """The tags and attributes of an HTML fragment, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text += data


def _parse(fragment: str) -> _Tags:
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    return parser


def _markdown(source: str) -> str:
    """HTML as Panel's Markdown pane renders ``source``."""
    return html.unescape(pn.pane.Markdown(source).get_root().text)


def _spaced(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_html_text_is_only_text(payload: str) -> None:
    parsed = _parse(f"<div>{html_text(payload)}</div>")
    assert parsed.tags == ["div"] and parsed.text == payload


@pytest.mark.parametrize("payload", PAYLOADS)
def test_html_attr_stays_inside_its_attribute(payload: str) -> None:
    for quote in "\"'":
        parsed = _parse(f"<span title={quote}{html_attr(payload)}{quote} class=x>t</span>")
        assert parsed.tags == ["span"]
        assert parsed.attrs == [("title", payload), ("class", "x")]
    assert "`" not in html_attr("a`b")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_text_renders_as_the_literal_text(payload: str) -> None:
    for source in (
        markdown_text(payload),
        f"- {markdown_text(payload)}",
        f"#### {markdown_text(payload)}",
    ):
        rendered = _markdown(source)
        parsed = _parse(rendered)
        assert set(parsed.tags) <= {"p", "ul", "li", "h4"}, rendered
        assert parsed.attrs == []
        assert _spaced(parsed.text) == _spaced(payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_lines_keep_line_breaks_and_nothing_else(payload: str) -> None:
    rendered = _markdown(f"**head**\n\n{markdown_lines(payload)}")
    parsed = _parse(rendered)
    assert set(parsed.tags) <= {"p", "strong", "br"}, rendered
    lines = [_spaced(line) for line in re.split(r"\r\n|\r|\n", payload)]
    assert parsed.tags.count("br") == len(lines) - 1
    assert _spaced(parsed.text) == _spaced("head " + " ".join(lines))


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_code_is_one_code_span(payload: str) -> None:
    rendered = _markdown(f"- the column {markdown_code(payload)} here")
    parsed = _parse(rendered)
    assert parsed.tags == ["ul", "li", "code"], rendered
    code = re.search(r"<code>(.*)</code>", rendered, re.S).group(1)
    expected = re.sub(r"\r\n|\r|\n", " ", payload)
    assert html.unescape(code).strip(" ") == expected.strip(" ")


def test_markdown_code_of_a_plain_name_is_the_usual_code_span() -> None:
    assert markdown_code("score") == "`score`"
    assert markdown_code("a`b") == "``a`b``"
    assert markdown_code("`x") == "`` `x ``"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markdown_block_cannot_be_closed_from_inside(payload: str) -> None:
    rendered = _markdown(markdown_block(payload) + "\n\nafter")
    assert rendered.count("<pre>") >= 1
    before, _, after = rendered.rpartition("</pre>")
    assert "<img" not in before and "<script" not in before
    assert html.unescape(re.sub(r"<[^>]+>", "", before)).strip("\n") == payload.replace(
        "\r\n", "\n"
    ).replace("\r", "\n")
    assert _parse(after).text.strip() == "after"


@pytest.mark.parametrize(
    "payload",
    [IMG, "@{x} $index $x{0.0} @c0{custom}", "price {0,0} @name", '"><b>bold</b>'],
)
def test_tooltip_text_has_no_placeholder_and_no_tag(payload: str) -> None:
    escaped = tooltip_text(payload)
    # Bokeh replaces @name, @{name}, $name and {format} in a tooltip template
    assert not re.search(r"[@${}<>]", escaped)
    assert html.unescape(escaped) == payload


def test_choice_options_label_each_name_as_html_text() -> None:
    options = choice_options([IMG, "a & b", "score"])
    assert options == {
        "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;": IMG,
        "a &amp; b": "a & b",
        "score": "score",
    }
