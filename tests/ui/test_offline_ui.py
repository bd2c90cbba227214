"""Offline, as the docs show it: a panel saved with the guide's `save` call, and a notebook run
with nbclient after `panels_core.extension()`, open in Chromium with the network blocked, draw
their data (Bokeh data sources, Tabulator cells) and ask no remote host for anything."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.plugins.test_plugin_guide import guide_panel, project  # noqa: F401 (fixtures)

pytest.importorskip("playwright")
from playwright.sync_api import expect

from tests.ui.conftest import block_network, eventually

pytestmark = [
    pytest.mark.ui,
    # nbconvert says so of the output Panel sends to its comm, which carries no data to show
    pytest.mark.filterwarnings("ignore:Your element with mimetype:UserWarning"),
]

DOCS = Path(__file__).resolve().parents[2] / "docs"

# Every ColumnDataSource of every Bokeh document of the page, as {column: [values]}.
SOURCES_JS = """() => {
  const out = [];
  for (const doc of (window.Bokeh ? window.Bokeh.documents : [])) {
    for (const model of doc._all_models.values()) {
      if (model.constructor.__name__ !== "ColumnDataSource") continue;
      const data = model.data instanceof Map ? Object.fromEntries(model.data) : model.data;
      const plain = {};
      for (const [name, values] of Object.entries(data)) plain[name] = Array.from(values);
      plain.__source_name__ = model.name;
      out.push(plain);
    }
  }
  return out;
}"""


def _doc_block(doc: str, containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), re.S)
    return next(b for b in blocks if containing in b)


def _sources_with(page, column: str) -> list[dict]:
    return eventually(
        page,
        lambda: [s for s in page.evaluate(SOURCES_JS) if column in s],
        f"a Bokeh data source with a `{column}` column",
    )


def _cells(page) -> list[str]:
    cells = page.locator(".tabulator-row .tabulator-cell[tabulator-field='label']")
    eventually(page, lambda: cells.count() > 0, "the Tabulator's rows")
    return cells.all_inner_texts()


FRAME = pd.DataFrame(
    {"score": [0.5, 1.5, 2.5, 3.5, 3.75, 0.25], "label": ["cat", "dog", "owl", "emu", "yak", "gnu"]}
)


def test_the_guides_saved_panel_draws_offline(page, project, guide_panel):  # noqa: F811
    """docs/plugins.md: `render(view, "top_values", ...).save("top_values.html")`."""
    exec(  # our own docs, as a plugin author runs them
        compile(_doc_block("plugins.md", '.save("top_values.html")'), "plugins.md", "exec"),
        {"__name__": "__guide__"},
    )
    asked = block_network(page)
    page.goto((project / "top_values.html").as_uri())
    (bars,) = _sources_with(page, "right")
    assert bars["right"] == [2, 3] and bars["y"] == ["dog", "cat"]  # 2 dogs, 3 cats: top 2
    expect(page.locator("canvas").first).to_be_visible()
    expect(page.get_by_text("1 rows hold other values, 0 are empty")).to_be_visible()
    assert asked == [] and page.console_errors == []


def test_a_saved_table_panel_shows_its_rows_offline(page, tmp_path):
    """docs/reports.md: `render(...)` then `.save(path)` of one rendered panel."""
    from panels_core import render

    path = render(FRAME, "table", page_size=4).save(tmp_path / "table.html")
    asked = block_network(page)
    page.goto(path.resolve().as_uri())
    assert _cells(page) == ["cat", "dog", "owl", "emu"]
    expect(page.get_by_text("first 4 of 6 rows")).to_be_visible()
    assert asked == [] and page.console_errors == []


def _run_notebook(folder: Path, setup: str, monkeypatch) -> Path:
    """A notebook of three cells (the data, ``setup``, a histogram) run by nbclient in a kernel
    of this Python, converted to HTML by nbconvert; returns the page."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    from ipykernel.kernelspec import install

    # a kernel spec of our own (this interpreter), whatever kernels the machine lists
    monkeypatch.setenv("JUPYTER_PATH", str(folder / "jupyter" / "share" / "jupyter"))
    install(kernel_name="typed-panels-test", prefix=str(folder / "jupyter"))
    cell = nbformat.v4.new_code_cell
    notebook = nbformat.v4.new_notebook(
        cells=[
            cell(f"import pandas as pd\n\nframe = pd.DataFrame({FRAME.to_dict('list')!r})"),
            cell(setup),
            cell('render(frame, "histogram", column="score", bins=4)'),
        ]
    )
    nbclient.NotebookClient(
        notebook,
        kernel_name="typed-panels-test",
        timeout=600,
        resources={"metadata": {"path": str(folder)}},
    ).execute()
    nbformat.write(notebook, folder / "panels.ipynb")
    # nbconvert's own page loads require.js and MathJax from a CDN: those two blocks emptied
    (folder / "offline.html.j2").write_text(
        "{%- extends 'lab/index.html.j2' -%}\n"
        "{%- block html_head_js_requirejs -%}{%- endblock -%}\n"
        "{%- block html_head_js_mathjax -%}{%- endblock -%}\n"
    )
    exporter = nbconvert.HTMLExporter(template_file=str(folder / "offline.html.j2"))
    html, _ = exporter.from_notebook_node(notebook)
    page_path = folder / "panels.html"
    page_path.write_text(html, encoding="utf-8")
    return page_path


def test_a_notebook_after_extension_shows_its_panels_offline(page, tmp_path, monkeypatch):
    """docs/reports.md's notebook cell (`extension()` then a table), run with nbclient."""
    path = _run_notebook(tmp_path, _doc_block("reports.md", "extension()"), monkeypatch)
    asked = block_network(page)
    page.goto(path.as_uri())
    assert _cells(page) == ["cat", "dog", "owl", "emu", "yak"]  # page_size=5 of 6 rows
    # the full series; the histogram also carries its (hidden) linked-selection series
    sources = _sources_with(page, "count")
    (bins,) = [s for s in sources if s["__source_name__"] != "selected"]
    assert bins["count"] == [2, 1, 1, 2] and bins["left"][0] == 0.25
    assert asked == [] and page.console_errors == []


def test_a_notebook_with_panels_default_extension_needs_the_network(page, tmp_path, monkeypatch):
    """The bug `extension()` fixes: plain `pn.extension("tabulator")` draws nothing offline."""
    setup = 'import panel as pn\nfrom panels_core import render\n\npn.extension("tabulator")\n'
    path = _run_notebook(tmp_path, setup + 'render(frame, "table", page_size=5)', monkeypatch)
    asked = block_network(page)
    page.goto(path.as_uri())
    eventually(page, lambda: any("cdn" in url for url in asked), "a request to a CDN")
    assert page.evaluate(SOURCES_JS) == []  # Bokeh never loaded: no plot, no table
