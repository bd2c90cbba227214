"""docs/plugins.md: the files the guide tells a newcomer to write work as the guide says."""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import sys
import tomllib
from pathlib import Path

import panel as pn
import pytest

from panels_core import View, open_table
from panels_core.export import external_references
from panels_core.panel_registry import Registry, registry

GUIDE = Path(__file__).parents[2] / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"```\w+ file=(\S+)\n(.*?)```", re.S)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The guide's folder, written from its code blocks, importable."""
    text = GUIDE.read_text()
    files = dict(FILE_BLOCK.findall(text))
    assert set(files) == {"pyproject.toml", "panels_top_values/__init__.py", "pets.csv"}
    for name, body in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("panels_top_values", None)
    yield tmp_path
    sys.modules.pop("panels_top_values", None)


@pytest.fixture
def guide_panel(project: Path):
    """The guide's panel in the default registry (what `render` uses), as `pip install -e .`
    of the guide's folder would put it; removed afterwards."""
    from panels_top_values import TopValues

    registry.register(TopValues, distribution="panels-top-values", version="0.1.0")
    yield TopValues
    registry.unregister("top_values")


def test_entry_point_names_the_class_and_its_kind(project: Path) -> None:
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    ((name, value),) = meta["project"]["entry-points"]["typed_panels.panels"].items()
    module, _, attr = value.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    assert cls.kind == name == "top_values"
    assert meta["build-system"]["build-backend"] == "hatchling.build"


def test_the_guide_panel_fits_renders_and_tests_as_written(project: Path) -> None:
    from panels_top_values import TopValues

    reg = Registry()
    reg.register(TopValues, distribution="panels-top-values", version="0.1.0")
    view = View.of(open_table("pets.csv"))
    (match,) = reg.compatible(view.type)
    assert (match.kind, match.score) == ("top_values", 1.0)
    assert match.config.model_dump() == {"column": "animal", "top": 10}

    card = reg.render_object("top_values", view, {"column": "animal", "top": 2})
    assert isinstance(card, pn.Column)
    figure = card[0].object
    bars = figure.renderers[0].data_source.data
    assert list(figure.y_range.factors) == ["dog", "cat"]
    assert list(bars["right"]) == [2, 3]
    assert card[1].object == "1 rows hold other values, 0 are empty"

    bad = reg.render_object("top_values", view, {"column": "animal", "top": 0})
    assert isinstance(bad, pn.pane.Alert) and "greater than or equal to 1" in bad.object


def test_the_guide_testing_example_passes(project: Path) -> None:
    text = GUIDE.read_text()
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "assert TopValues" in b
    )
    with contextlib.redirect_stdout(None):
        exec(compile(block, "plugins.md", "exec"), {"__name__": "__guide__"})  # our own docs


def _python_block(containing: str) -> str:
    text = GUIDE.read_text()
    return next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if containing in b)


def test_the_guide_saves_its_panel_as_one_offline_file(project: Path, guide_panel) -> None:
    block = _python_block('.save("top_values.html")')
    exec(compile(block, "plugins.md", "exec"), {"__name__": "__guide__"})  # our own docs
    page = (project / "top_values.html").read_text(encoding="utf-8")
    assert external_references(page) == []
    assert '"factors":["dog","cat"]' in page.replace(" ", "")  # the bars it drew travel in it


def test_the_view_fields_example_prints_what_it_says(project: Path) -> None:
    csv = project / "pets.csv"
    csv.write_text(csv.read_text().replace("Kit,cat,1", "Kit,cat,"))  # as the guide says
    text = GUIDE.read_text()
    block, expected = re.search(
        r"```python\n([^`]*?strip_optional[^`]*?)```\n\nprints[^\n]*\n\n```\n(.*?)```", text, re.S
    ).groups()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "plugins.md", "exec"), {"__name__": "__guide__"})  # our own docs
    assert out.getvalue() == expected


def test_the_view_reference_lists_every_view_call() -> None:
    """Each public View method and property is a row of the guide's table, and each row is one."""
    text = GUIDE.read_text()
    section = text[text.index("## What `render` reads: the View") : text.index("**Fields, types")]
    documented = re.findall(r"^\| `view\.(\w+)", section, re.M)
    public = {n for n in vars(View) if not n.startswith("_")} - {"of"}  # `of` builds a view
    assert sorted(documented) == sorted(public | {"query"})


def test_the_example_plugin_install_line_names_a_real_plugin() -> None:
    """README and guide tell how to get the example plugin; that folder is the plugin."""
    root = GUIDE.parents[1]
    readme = (root / "README.md").read_text()
    assert "pip install -e plugins/confusion_matrix" in readme
    assert "pip install -e /path/to/typed-panels/plugins/confusion_matrix" in GUIDE.read_text()
    meta = tomllib.loads((root / "plugins/confusion_matrix/pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["typed_panels.panels"] == {
        "confusion_matrix": "panels_confusion_matrix:ConfusionMatrix"
    }
