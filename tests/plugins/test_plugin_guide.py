"""docs/plugins.md: the files the guide tells a newcomer to write work as the guide says."""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import tomllib
from pathlib import Path

import panel as pn
import pytest

from panels_core import View, open_table
from panels_core.panel_registry import Registry

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

    card = reg.render("top_values", view, {"column": "animal", "top": 2})
    assert isinstance(card, pn.Column)
    figure = card[0].object
    bars = figure.renderers[0].data_source.data
    assert list(figure.y_range.factors) == ["dog", "cat"]
    assert list(bars["right"]) == [2, 3]
    assert card[1].object == "1 rows hold other values, 0 are empty"

    bad = reg.render("top_values", view, {"column": "animal", "top": 0})
    assert isinstance(bad, pn.pane.Alert) and "greater than or equal to 1" in bad.object


def test_the_guide_testing_example_passes(project: Path) -> None:
    text = GUIDE.read_text()
    block = next(
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "assert TopValues" in b
    )
    with contextlib.redirect_stdout(None):
        exec(compile(block, "plugins.md", "exec"), {"__name__": "__guide__"})  # our own docs
