"""Reports: `render`, composition into Panel layouts, notebook display, and static HTML
(the written file's Bokeh document holds the engine's bins, no remote resource is left,
tables show their first page, the write is atomic), `Workspace.save_html`, `panels export`."""

from __future__ import annotations

import base64
import contextlib
import gzip
import html as html_lib
import io
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pyarrow as pa
import pytest

from panels_core import Table, Workspace, render
from panels_core.cli import main
from panels_core.export import RenderedPanel, external_references, save_html
from panels_core.panel import Panel, PanelConfig
from panels_core.query.engine import Engine
from panels_core.query.model import Query
from panels_core.view import View
from panels_core.workspace.spec import CardSpec, WorkspaceSpec

RNG = np.random.default_rng(7)
N = 120
FRAME = pd.DataFrame(
    {
        "id": np.arange(N),
        "score": RNG.normal(size=N).round(4),
        "label": RNG.choice(["cat", "dog", "owl"], size=N),
    }
)


# ----------------------------------------------------------------------------- helpers


def _decode(value: Any) -> Any:
    """A Bokeh-serialized value as Python (ndarrays as numpy)."""
    if isinstance(value, dict):
        if value.get("type") == "ndarray":
            array = value["array"]
            if isinstance(array, dict) and array.get("type") == "bytes":
                raw = base64.b64decode(array["data"])
                if raw[:2] == b"\x1f\x8b":  # Bokeh gzips larger buffers
                    raw = gzip.decompress(raw)
                return np.frombuffer(raw, dtype=value["dtype"]).reshape(value["shape"])
            return np.asarray(array, dtype=value.get("dtype"))
        if value.get("type") == "map":
            return {k: _decode(v) for k, v in value.get("entries", [])}
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _documents(text: str) -> list[dict[str, Any]]:
    """The Bokeh documents embedded in a saved file or a notebook bundle."""
    docs = []
    for body in re.findall(
        r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', text, re.S
    ):
        docs.extend(json.loads(html_lib.unescape(body)).values())
    for body in re.findall(r"var docs_json = (\{.*?\});\n", text, re.S):
        docs.extend(json.loads(body).values())
    assert docs, "no Bokeh document found in the HTML"
    return docs


def _objects(node: Any, name: str | None = None) -> list[dict[str, Any]]:
    """Every serialized Bokeh object (optionally of one model name) inside ``node``."""
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object" and (name is None or node.get("name") == name):
            found.append(node)
        for value in node.values():
            found += _objects(value, name)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value, name)
    return found


def _bins_sources(text: str) -> list[dict[str, Any]]:
    sources = []
    for doc in _documents(text):
        for obj in _objects(doc, "ColumnDataSource"):
            attributes = obj.get("attributes", {})
            if attributes.get("name") == "bins":
                sources.append(_decode(attributes["data"]))
    return sources


def _markdown(text: str) -> str:
    """The HTML of every Markdown pane in the page's documents, unescaped, joined."""
    parts = []
    for doc in _documents(text):
        for obj in _objects(doc):
            if obj["name"].endswith("HTML") and isinstance(obj["attributes"].get("text"), str):
                parts.append(html_lib.unescape(html_lib.unescape(obj["attributes"]["text"])))
    return "\n".join(parts)


def _model_names(text: str) -> set[str]:
    return {obj["name"] for doc in _documents(text) for obj in _objects(doc)}


# ----------------------------------------------------------------------------- render


def test_render_fills_defaults_and_keeps_given_fields():
    obj = render(FRAME, "histogram", column="score", bins=8)
    assert isinstance(obj, RenderedPanel) and isinstance(obj, pn.Column)
    assert obj.kind == "histogram"
    assert obj.config.column == "score" and obj.config.bins == 8
    assert obj.view.count() == N
    table = render(Table(dataframe=FRAME), "table")
    assert table.config.page_size == 50


def test_render_accepts_arrow_and_views():
    arrow = pa.Table.from_pandas(FRAME, preserve_index=False)
    assert render(arrow, "histogram", column="score").view.count() == N
    view = View.of(FRAME).with_query(filter="score > 0")
    obj = render(view, "histogram", column="score")
    assert obj.view is view
    assert obj.view.count() == int((FRAME.score > 0).sum())


def test_render_unknown_kind_names_it_and_the_available_kinds():
    with pytest.raises(ValueError) as info:
        render(FRAME, "histo", column="score")
    text = str(info.value)
    assert text.startswith("render: unknown panel kind `histo`; did you mean `histogram`? Avail")
    for kind in ("table", "histogram", "multi_histogram"):
        assert f"`{kind}`" in text.split("Available panel kinds:")[1]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"column": "nope"}, "`column`: unknown column `nope`"),
        ({"colour": "red"}, "`colour` is not a field"),
        ({"column": "score", "bins": "many"}, "`bins`"),
    ],
)
def test_render_invalid_config_names_the_field(config, expected):
    with pytest.raises(ValueError) as info:
        render(FRAME, "histogram", **config)
    assert "invalid config for panel `histogram`" in str(info.value)
    assert expected in str(info.value)


def test_render_panel_that_does_not_fit_the_table():
    with pytest.raises(ValueError, match="panel `projection` does not fit this table"):
        render(pd.DataFrame({"name": ["a", "b"]}), "projection")


def test_render_refuses_what_is_not_a_table():
    with pytest.raises(ValueError, match="cannot read int as a table"):
        render(42, "histogram")
    with pytest.raises(ValueError, match="kind must be a string"):
        render(FRAME, None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- layouts


def test_render_composes_into_a_panel_layout(tmp_path):
    hist = render(FRAME, "histogram", column="score", bins=6)
    table = render(FRAME, "table", page_size=10)
    layout = pn.Column("# Results", hist, pn.Row(table))
    assert layout.objects[1] is hist
    assert hist in layout.select(RenderedPanel) and table in layout.select(RenderedPanel)
    # the layout renders to Bokeh models without a server, and saves
    path = save_html(layout, tmp_path / "layout.html", title="Results")
    text = path.read_text(encoding="utf-8")
    (bins,) = _bins_sources(text)
    expected, _ = np.histogram(FRAME.score, bins=6)
    np.testing.assert_array_equal(bins["count"], expected)
    assert "Results" in text


def test_notebook_bundle_holds_the_plot():
    pn.extension("tabulator")
    obj = render(FRAME, "histogram", column="score", bins=5)
    with pn.config.set(console_output="disable"):
        bundle = obj._repr_mimebundle_()
    assert bundle is not None, "Panel could not display the object in a notebook"
    data, _metadata = bundle
    assert "application/vnd.holoviews_exec.v0+json" in data
    (bins,) = _bins_sources(data["text/html"])
    np.testing.assert_array_equal(bins["count"], np.histogram(FRAME.score, bins=5)[0])
    # pn.panel() wraps it as itself: it is already a Panel layout
    assert pn.panel(obj) is obj


# ----------------------------------------------------------------------------- static HTML


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("report") / "hist.html"
    obj = render(FRAME, "histogram", column="score", bins=12)
    written = obj.save(path)
    assert written == path
    return path, path.read_text(encoding="utf-8")


def test_saved_html_holds_the_engines_counts(saved):
    _, text = saved
    (bins,) = _bins_sources(text)
    engine = Engine({"t": FRAME})
    hist = engine.histogram(Query(table="t"), "score", bins=12)
    np.testing.assert_array_equal(bins["count"], hist.counts)
    np.testing.assert_allclose(bins["left"], hist.edges[:-1])
    np.testing.assert_allclose(bins["right"], hist.edges[1:])
    assert int(bins["count"].sum()) == N


def test_saved_html_keeps_pan_zoom_and_hover(saved):
    _, text = saved
    names = _model_names(text)
    assert {"HoverTool", "PanTool", "WheelZoomTool", "BoxZoomTool", "ResetTool"} <= names


def test_saved_html_has_no_remote_resources(saved):
    _, text = saved
    assert external_references(text) == []
    assert not re.search(r"""<(script|link)\b[^>]*\b(src|href)=["']https?:""", text)
    for doc in _documents(text):
        for sheet in _objects(doc, "ImportedStyleSheet"):
            assert not sheet["attributes"]["url"].startswith(("http:", "https:"))
    # Panel's own stylesheets are inlined (it leaves them as CDN links with INLINE)
    assert "InlineStyleSheet" in _model_names(text)
    # the relative images and fonts those stylesheets name do not dangle
    assert "../assets/" not in text and "../webfonts/" not in text
    assert "bokeh" in text.lower() and '<script type="text/javascript">' in text


def test_external_references_finds_remote_resources():
    page = (
        '<script src="https://cdn.example.org/a.js"></script>'
        '<link rel="stylesheet" href="http://cdn.example.org/b.css">'
        '{"type":"object","name":"ImportedStyleSheet","id":"p1","attributes":'
        '{"url":"https://cdn.example.org/c.css"}}'
        "<style>@import url(https://cdn.example.org/d.css);</style>"
        '<a href="https://example.org/not-a-resource">x</a>'
    )
    assert external_references(page) == [
        "http://cdn.example.org/b.css",
        "https://cdn.example.org/a.js",
        "https://cdn.example.org/c.css",
        "https://cdn.example.org/d.css",
    ]


def test_saved_html_size_is_sane(saved):
    path, _ = saved
    size = path.stat().st_size
    assert 500_000 < size < 15_000_000, size  # the inlined JS/CSS, not megabytes of data


def test_static_table_shows_its_first_page_with_a_note(tmp_path):
    obj = render(FRAME, "table", page_size=25)
    text = save_html(obj, tmp_path / "table.html").read_text(encoding="utf-8")
    assert "first 25 of 120 rows" in text
    (doc,) = _documents(text)
    (tabulator,) = _objects(doc, "panel.models.tabulator.DataTabulator")
    source = _decode(_objects(tabulator["attributes"]["source"])[0]["attributes"]["data"])
    np.testing.assert_array_equal(source["id"], FRAME.id[:25])
    np.testing.assert_allclose(source["score"], FRAME.score[:25])
    # header sorting would only sort this page: turned off in the static copy
    columns = tabulator["attributes"]["configuration"]
    columns = _decode(columns)["columns"]
    assert columns and all(c.get("headerSort") is False for c in columns)
    # the pager buttons only reach Python: hidden
    buttons = [b for b in _objects(doc) if b["name"].endswith("widgets.Button")]
    assert buttons and all(b["attributes"].get("visible") is False for b in buttons)


def test_small_table_says_all_rows(tmp_path):
    text = save_html(render(FRAME.head(7), "table"), tmp_path / "t.html").read_text()
    assert "all 7 rows" in text and "first 7" not in text


def test_save_html_is_atomic(tmp_path, monkeypatch):
    import panels_core.static_html as static_html

    target = tmp_path / "out.html"
    target.write_text("old report", encoding="utf-8")

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(static_html, "html_text", broken)
    with pytest.raises(RuntimeError, match="rendering failed"):
        save_html(render(FRAME, "histogram", column="score"), target)
    assert target.read_text(encoding="utf-8") == "old report"
    monkeypatch.undo()
    save_html(render(FRAME, "histogram", column="score"), target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.html"]  # no temp file left
    fresh = save_html(render(FRAME, "histogram", column="score"), tmp_path / "new.html")
    umask = os.umask(0o022)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_saving_leaves_bokehs_empty_layout_check_as_it_was(tmp_path, caplog):
    from bokeh.core.validation import check
    from bokeh.core.validation.warnings import EMPTY_LAYOUT

    with caplog.at_level("WARNING", logger="bokeh"):
        save_html(render(FRAME, "table"), tmp_path / "t.html")  # the pager has an empty row
    assert "EMPTY_LAYOUT" not in caplog.text
    assert EMPTY_LAYOUT not in check.__silencers__


def test_save_html_wants_an_html_file(tmp_path):
    with pytest.raises(ValueError, match=r"write to a \.html file"):
        save_html(render(FRAME, "histogram", column="score"), tmp_path / "out.png")


def test_templates_are_refused_they_need_the_network(tmp_path):
    template = pn.template.FastListTemplate(title="t", main=[render(FRAME, "table")])
    with pytest.raises(ValueError, match=r"templates load their JS/CSS .*\(pn\.Column\)"):
        save_html(template, tmp_path / "t.html")
    assert not (tmp_path / "t.html").exists()


def test_panel_save_with_resources_is_panels_own(tmp_path):
    obj = render(FRAME, "histogram", column="score")
    obj.save(str(tmp_path / "cdn.html"), resources="cdn")
    assert external_references((tmp_path / "cdn.html").read_text())  # CDN links, as asked


# ----------------------------------------------------------------------------- workspaces


def _workspace() -> Workspace:
    cards = [
        CardSpec(kind="histogram", input=Query(table="pets"), config={"column": "score"}),
        CardSpec(
            kind="histogram",
            input=Query(table="pets", filter="label == 'cat'"),
            config={"column": "score", "bins": 5},
            title="Cats only",
        ),
        CardSpec(kind="table", input=Query(table="pets"), config={"page_size": 20}),
    ]
    return Workspace(tables={"pets": FRAME}, cards=cards, title="Pets report")


def test_workspace_save_html(tmp_path):
    path = _workspace().save_html(tmp_path / "ws.html")
    text = path.read_text(encoding="utf-8")
    assert external_references(text) == []
    shown = _markdown(text)
    assert "<title>Pets report</title>" in text and "<h1" in shown and "Pets report" in shown
    assert "Cats only" in shown and 'filter <code>label == "cat"</code>' in shown
    # the tables summary names the table, its rows and its columns with their types
    assert re.search(r"<td><code>pets</code></td>\s*<td[^>]*>120</td>", shown)
    assert "<code>score</code> number" in shown
    assert "first 20 of 120 rows" in shown
    whole, cats = _bins_sources(text)
    assert int(whole["count"].sum()) == N
    cat_scores = FRAME.score[FRAME.label == "cat"]
    np.testing.assert_array_equal(cats["count"], np.histogram(cat_scores, bins=5)[0])


# ----------------------------------------------------------------------------- CLI


def _spec_file(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    FRAME.to_parquet(data / "pets.parquet")
    spec = WorkspaceSpec(
        tables={"pets": "data/pets.parquet"},
        cards=(
            CardSpec(
                kind="histogram",
                input=Query(table="pets", filter="score > 0"),
                config={"column": "score", "bins": 4},
            ),
        ),
    )
    path = tmp_path / "ws.json"
    path.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    return path


def test_cli_export_writes_the_report(tmp_path):
    spec = _spec_file(tmp_path)
    out = io.StringIO()
    target = tmp_path / "out" / "report.html"
    assert main(["export", str(spec), "-o", str(target), "--title", "Scores"], out=out) == 0
    assert f"wrote {target}" in out.getvalue()
    text = target.read_text(encoding="utf-8")
    assert external_references(text) == [] and "Scores" in text
    (bins,) = _bins_sources(text)
    positive = FRAME.score[FRAME.score > 0]
    np.testing.assert_array_equal(bins["count"], np.histogram(positive, bins=4)[0])


def test_cli_export_of_table_files_builds_a_default_workspace(tmp_path):
    FRAME.to_parquet(tmp_path / "pets.parquet")
    target = tmp_path / "pets.html"
    assert (
        main(["export", str(tmp_path / "pets.parquet"), "-o", str(target)], out=io.StringIO()) == 0
    )
    text = target.read_text(encoding="utf-8")
    assert re.search(r"<td><code>pets</code></td>\s*<td[^>]*>120</td>", _markdown(text))
    assert "first 50 of 120 rows" in _markdown(text)  # the default card: a table


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.json"), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("panels: error: export: no such file or folder") and err.count("\n") == 1
    spec = _spec_file(tmp_path)
    assert main(["export", str(spec), "-o", str(tmp_path / "r.txt")]) == 2
    assert "write to a .html file" in capsys.readouterr().err
    FRAME.to_parquet(tmp_path / "more.parquet")
    assert main(["export", str(spec), str(tmp_path / "more.parquet"), "-o", "x.html"]) == 2
    assert "give one workspace spec" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_cli_export_of_a_workspace_naming_a_missing_table_fails_naming_it(tmp_path, capsys):
    FRAME.to_parquet(tmp_path / "pets.parquet")
    spec = WorkspaceSpec(
        tables={"pets": "pets.parquet", "gone": "gone.parquet"},
        cards=(
            CardSpec(kind="table", input=Query(table="pets")),
            CardSpec(kind="table", input=Query(table="gone")),
        ),
    )
    path = tmp_path / "ws.json"
    path.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    target = tmp_path / "report.html"
    assert main(["export", str(path), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"panels: error: export: {path}: table `gone`: no such file or folder: "
        f"{tmp_path / 'gone.parquet'}; "
        "fix the paths in the workspace file, or pass --store for Store tables\n"
    )
    assert not target.exists()  # no report that looks complete but is not


class _Exits(Panel[PanelConfig]):
    kind = "test_export_exits"

    def render(self, view: Any) -> Any:
        sys.exit(3)


class _Raises(Panel[PanelConfig]):
    kind = "test_export_raises"

    def render(self, view: Any) -> Any:
        raise KeyError("boom in render")


class _BadModel(pn.pane.Markdown):
    priority = False  # never picked by pn.panel() for other tests' strings

    def _get_model(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no model for this pane")


class _ReturnsBadModel(Panel[PanelConfig]):
    kind = "test_export_bad_model"

    def render(self, view: Any) -> Any:
        return _BadModel("never drawn")


_RELEASE = threading.Event()


class _Hangs(Panel[PanelConfig]):
    kind = "test_export_hangs"

    def render(self, view: Any) -> Any:
        _RELEASE.wait()
        return pn.pane.Markdown("released")


@pytest.fixture
def misbehaving() -> Any:
    """Plugin panels that exit, raise or hang, in the default registry for this test."""
    from panels_core.panel_registry import registry

    _RELEASE.clear()
    for cls in (_Exits, _Raises, _Hangs, _ReturnsBadModel):
        registry.register(cls, distribution="misbehaving-panels", version="0.1")
    yield
    _RELEASE.set()
    for cls in (_Exits, _Raises, _Hangs, _ReturnsBadModel):
        registry.unregister(cls.kind)


def _export_with(tmp_path: Path, kind: str) -> tuple[int, Path]:
    """``panels export`` of a workspace with a ``kind`` card, then a histogram card."""
    FRAME.to_parquet(tmp_path / "pets.parquet")
    spec = WorkspaceSpec(
        tables={"pets": "pets.parquet"},
        cards=(
            CardSpec(kind=kind, input=Query(table="pets"), title="The plugin"),
            CardSpec(kind="histogram", input=Query(table="pets"), config={"column": "score"}),
        ),
    )
    path = tmp_path / "ws.json"
    path.write_text(json.dumps(spec.to_dict()), encoding="utf-8")
    target = tmp_path / "report.html"
    quiet = kind in ("test_export_hangs", "test_export_bad_model")
    with contextlib.nullcontext() if quiet else pytest.warns(RuntimeWarning):
        status = main(["export", str(path), "-o", str(target)], out=io.StringIO())
    return status, target


@pytest.mark.parametrize(
    "kind, error",
    [
        ("test_export_exits", "render raised SystemExit: sys.exit(3) was called"),
        ("test_export_raises", "render raised KeyError: 'boom in render'"),
        ("test_export_bad_model", "cannot be shown: RuntimeError('no model for this pane')"),
    ],
)
def test_cli_export_of_a_failing_plugin_writes_the_other_cards(tmp_path, misbehaving, kind, error):
    status, target = _export_with(tmp_path, kind)
    assert status == 0  # a report with error cards is still a report
    text = target.read_text(encoding="utf-8")
    shown = _markdown(text)
    assert f"Panel <code>{kind}</code> failed" in shown and "misbehaving-panels 0.1" in shown
    assert error in shown
    (bins,) = _bins_sources(text)
    np.testing.assert_array_equal(
        bins["count"], np.histogram(FRAME.score, bins=bins_edges(bins))[0]
    )


def test_cli_export_of_a_hung_plugin_gives_the_deadline_message(tmp_path, misbehaving, monkeypatch):
    monkeypatch.setenv("PANELS_RENDER_TIMEOUT", "1")
    status, target = _export_with(tmp_path, "test_export_hangs")
    assert status == 0
    text = target.read_text(encoding="utf-8")
    assert "This panel did not finish within 1 s" in _markdown(text)
    (bins,) = _bins_sources(text)
    assert int(bins["count"].sum()) == N


def bins_edges(bins: dict[str, Any]) -> np.ndarray:
    return np.append(bins["left"], bins["right"][-1])


# ----------------------------------------------------------------------------- docs

DOC = Path(__file__).resolve().parents[2] / "docs" / "reports.md"
BLOCK = re.compile(r"```python\n(.*?)```(?:\n\nprints\n\n```\n(.*?)```)?", re.S)


def test_reports_doc_examples_run_and_print_what_they_say(tmp_path, monkeypatch):
    """docs/reports.md's Python blocks, run in order in one namespace (our own docs)."""
    import contextlib

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pn.config, "inline", pn.config.inline)  # extension() sets it
    namespace: dict[str, Any] = {"__name__": "__doc_example__"}
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    for i, (code, expected) in enumerate(blocks):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"reports.md block {i}", "exec"), namespace)
        if expected:
            assert out.getvalue().strip() == expected.strip(), f"block {i}"
    assert external_references((tmp_path / "scores.html").read_text(encoding="utf-8")) == []
    assert (tmp_path / "pets.html").is_file()


def test_a_report_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    old = os.umask(0o022)
    try:
        fresh = save_html(pn.pane.Markdown("one"), tmp_path / "new.html")
        assert oct(fresh.stat().st_mode & 0o777) == oct(0o644)  # as open() would give
        fresh.chmod(0o640)
        save_html(pn.pane.Markdown("two"), fresh)
    finally:
        os.umask(old)
    assert oct(fresh.stat().st_mode & 0o777) == oct(0o640)
    assert "two" in fresh.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["new.html"]  # no temp file left
