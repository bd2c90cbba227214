"""panels_core.extension: Panel's notebook extension, offline, with what the panels need.
(What it does in a real notebook, with the network blocked: tests/ui/test_offline_ui.py.)"""

from __future__ import annotations

import panel as pn
import pytest

import panels_core
from panels_core.notebook import EXTENSIONS


@pytest.fixture
def calls(monkeypatch):
    """pn.extension recorded instead of run; pn.config.inline restored afterwards."""
    seen: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(pn, "extension", lambda *a, **k: seen.append((a, k)))
    monkeypatch.setattr(pn.config, "inline", False)
    return seen


def test_extension_loads_the_panels_extensions_inline(calls):
    panels_core.extension()
    assert calls == [(("tabulator",), {"inline": True})]
    assert EXTENSIONS == ("tabulator",)
    assert pn.config.inline is True  # later output inlines its resources too


def test_extension_adds_a_plugins_extensions_and_passes_options_on(calls):
    panels_core.extension("vega", "tabulator", sizing_mode="stretch_width", inline=True)
    assert calls == [(("tabulator", "vega"), {"sizing_mode": "stretch_width", "inline": True})]


def test_extension_refuses_cdn_resources_with_what_to_do_instead(calls):
    with pytest.raises(ValueError, match=r"call pn.extension\(...\) yourself"):
        panels_core.extension(inline=False)
    assert calls == [] and pn.config.inline is False
