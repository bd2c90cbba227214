"""Entry-point discovery from real (temporary) installed distributions, and every way a
plugin can break without breaking the others."""

from __future__ import annotations

import html
import importlib.metadata
import sys
import textwrap
import uuid
import warnings
from pathlib import Path
from typing import Any

import panel as pn
import pytest

from panels_core.panel_registry import GROUP, Registry, UnknownPanelError
from panels_core.types import CategoryType, NumberType, TableType

TT = TableType(columns={"score": NumberType(), "label": CategoryType()})

PANEL_SOURCE = """
from typing import Annotated
from panels_core import Column, Panel, PanelConfig
from panels_core.types import NumberType


class Config(PanelConfig):
    column: Annotated[str, Column(accepts=NumberType())]


class Good(Panel[Config]):
    kind = "{kind}"
    title = "Good {kind}"
    api_version = "{api}"

    def render(self, view):
        import panel as pn

        return pn.pane.Markdown("good " + self.config.column)


class MatchRaises(Good):
    @classmethod
    def match(cls, view_type):
        raise ZeroDivisionError("boom in match")


class RenderRaises(Good):
    def render(self, view):
        raise KeyError("boom in render")


class NotAPanel:
    kind = "{kind}"
"""


class FakeView:
    def __init__(self, view_type: Any) -> None:
        self.type = view_type


class Site:
    """A temporary site directory of installed distributions (dist-info + modules)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.dists: list[importlib.metadata.Distribution] = []
        self.modules: list[str] = []
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.setattr(importlib.metadata, "entry_points", self.entry_points)
        monkeypatch.delenv("PANELS_DISABLE_PLUGINS", raising=False)
        monkeypatch.delenv("PANELS_PLUGINS", raising=False)

    def module(self, kind: str, api: str = "1.0", source: str = PANEL_SOURCE) -> str:
        name = f"tp_plugin_{kind}_{uuid.uuid4().hex[:8]}"
        (self.root / f"{name}.py").write_text(textwrap.dedent(source.format(kind=kind, api=api)))
        self.modules.append(name)
        return name

    def install(self, dist: str, version: str, entry_points: dict[str, str]) -> None:
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = [f"[{GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        self.dists.append(importlib.metadata.PathDistribution(info))

    def entry_points(self, **select: Any) -> Any:
        eps = [ep for dist in self.dists for ep in dist.entry_points]
        return importlib.metadata.EntryPoints(eps).select(**select)

    def cleanup(self) -> None:
        for name in self.modules:
            sys.modules.pop(name, None)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    s = Site(tmp_path, monkeypatch)
    yield s
    s.cleanup()


def statuses(reg: Registry) -> dict[str, tuple[str, str | None, str | None]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {s.kind: (s.state, s.distribution, s.error) for s in reg.statuses()}


def test_discovery_is_lazy_and_reads_distribution_metadata(site: Site) -> None:
    mod = site.module("good")
    site.install("good-panels", "1.2.3", {"good": f"{mod}:Good"})
    reg = Registry()
    found = reg.discover()
    assert [(s.kind, s.distribution, s.version, s.value) for s in found] == [
        ("good", "good-panels", "1.2.3", f"{mod}:Good")
    ]
    assert reg.kinds() == ["good"]
    assert mod not in sys.modules  # nothing imported yet
    cls = reg.get("good")
    assert mod in sys.modules and cls.title == "Good good"
    assert [m.kind for m in reg.compatible(TT)] == ["good"]
    assert reg.compatible(TT)[0].config.column == "score"


def test_default_call_reads_the_group(site: Site) -> None:
    site.install("good-panels", "1", {"good": f"{site.module('good')}:Good"})
    reg = Registry(autodiscover=True)
    assert reg.kinds() == ["good"]  # discovered on first use


def test_an_empty_group_gives_an_empty_registry(site: Site) -> None:
    reg = Registry(autodiscover=True)
    assert reg.kinds() == [] and reg.statuses() == [] and reg.compatible(TT) == []
    assert reg.default(TT) is None
    with pytest.raises(UnknownPanelError, match="no panel `histogram` is installed"):
        reg.get("histogram")


def test_a_broken_import_is_recorded_once_and_skipped(site: Site) -> None:
    broken = site.module("broken", source="raise ImportError('needs the frobnicate package')")
    site.install("broken-panels", "0.1", {"broken": f"{broken}:Good"})
    site.install("good-panels", "1.0", {"good": f"{site.module('good')}:Good"})
    reg = Registry()
    reg.discover()
    with pytest.warns(RuntimeWarning, match="`broken` from broken-panels failed to load"):
        matches = reg.compatible(TT)
    assert [m.kind for m in matches] == ["good"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        reg.compatible(TT)
    assert statuses(reg)["broken"] == (
        "failed",
        "broken-panels",
        "ImportError: needs the frobnicate package",
    )
    with pytest.raises(UnknownPanelError, match=r"broken-panels.*failed.*frobnicate"):
        reg.get("broken")


def test_missing_module_and_non_panel_objects_fail(site: Site) -> None:
    mod = site.module("thing")
    site.install(
        "odd-panels",
        "1",
        {"gone": "no_such_module_here:Thing", "thing": f"{mod}:NotAPanel", "other": f"{mod}:Good"},
    )
    reg = Registry()
    reg.discover()
    found = statuses(reg)
    assert (
        found["gone"][0] == "failed" and "No module named 'no_such_module_here'" in found["gone"][2]
    )
    assert (
        found["thing"][0] == "failed"
        and "is not a subclass of panels_core.Panel" in found["thing"][2]
    )
    assert found["other"][0] == "failed"
    assert "entry point name `other` differs from the class kind `thing`" in found["other"][2]


def test_api_major_version_is_checked(site: Site) -> None:
    site.install("old-panels", "1", {"future": f"{site.module('future', api='2.0')}:Good"})
    site.install("minor-panels", "1", {"minor": f"{site.module('minor', api='1.7')}:Good"})
    reg = Registry()
    reg.discover()
    with pytest.warns(RuntimeWarning, match="written for Panel API 2.0"):
        kinds = [m.kind for m in reg.compatible(TT)]
    assert kinds == ["minor"]
    state, dist, error = statuses(reg)["future"]
    assert (state, dist) == ("incompatible", "old-panels")
    assert "this typed-panels provides API 1.0" in error


def test_match_raising_is_skipped_for_that_call(site: Site) -> None:
    mod = site.module("flaky")
    site.install("flaky-panels", "1", {"flaky": f"{mod}:MatchRaises"})
    site.install("good-panels", "1", {"good": f"{site.module('good')}:Good"})
    reg = Registry()
    reg.discover()
    with pytest.warns(
        RuntimeWarning, match=r"`flaky` \(flaky-panels\): match raised ZeroDivisionError"
    ):
        assert [m.kind for m in reg.compatible(TT)] == ["good"]
    assert statuses(reg)["flaky"] == (
        "ok",
        "flaky-panels",
        "match raised ZeroDivisionError: boom in match",
    )
    assert reg.get("flaky").kind == "flaky"  # still usable by kind


def test_render_raising_gives_an_error_card(site: Site) -> None:
    mod = site.module("crashy")
    site.install("crashy-panels", "0.3", {"crashy": f"{mod}:RenderRaises"})
    reg = Registry()
    reg.discover()
    with pytest.warns(RuntimeWarning, match="render raised KeyError"):
        card = reg.render_object("crashy", FakeView(TT), {"column": "score"})
    assert isinstance(card, pn.pane.Alert) and card.alert_type == "danger"
    assert "`crashy`" in card.object
    assert "boom in render" in html.unescape(card.object)
    assert "crashy-panels 0.3" in html.unescape(card.object)


def test_render_with_a_bad_config_gives_an_error_card(site: Site) -> None:
    site.install("good-panels", "1", {"good": f"{site.module('good')}:Good"})
    reg = Registry()
    reg.discover()
    card = reg.render_object("good", FakeView(TT), {"column": "label"})
    assert isinstance(card, pn.pane.Alert)
    assert "invalid config" in card.object
    assert "column `label` is category, but this slot accepts number" in html.unescape(card.object)
    good = reg.render_object("good", FakeView(TT))
    assert isinstance(good, pn.pane.Markdown) and good.object == "good score"


def test_duplicates_resolve_deterministically(site: Site) -> None:
    # entry-point order puts the losers first; the winner must not depend on it
    site.install("zeta-panels", "1", {"dup": f"{site.module('dup')}:Good"})
    site.install("beta-panels", "1", {"twice": f"{site.module('twice')}:Good"})
    site.install("alpha-panels", "1", {"twice": f"{site.module('twice')}:Good"})
    site.install("typed-panels", "0.1.0", {"dup": f"{site.module('dup')}:Good"})
    reg = Registry()
    with pytest.warns(RuntimeWarning) as record:
        reg.discover()
    messages = sorted(str(w.message) for w in record)
    assert messages == [
        "panel kind `dup` is provided by typed-panels and by zeta-panels; using typed-panels",
        "panel kind `twice` is provided by alpha-panels and by beta-panels; using alpha-panels",
    ]
    found = reg.statuses()
    by = {(s.kind, s.distribution): s.state for s in found}
    assert by == {
        ("dup", "typed-panels"): "ok",
        ("twice", "alpha-panels"): "ok",
        ("dup", "zeta-panels"): "duplicate",
        ("twice", "beta-panels"): "duplicate",
    }
    assert reg.kinds() == ["dup", "twice"]  # built-ins first, then by distribution name


def test_disable_plugins_keeps_only_builtins(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.install("typed-panels", "0.1.0", {"builtin": f"{site.module('builtin')}:Good"})
    site.install("extra-panels", "1", {"extra": f"{site.module('extra')}:Good"})
    monkeypatch.setenv("PANELS_DISABLE_PLUGINS", "1")
    reg = Registry()
    reg.discover()
    assert reg.kinds() == ["builtin"]
    assert statuses(reg)["extra"] == (
        "disabled",
        "extra-panels",
        "disabled by PANELS_DISABLE_PLUGINS=1",
    )
    assert [m.kind for m in reg.compatible(TT)] == ["builtin"]
    missing = reg.panel_for("extra", {"column": "score"})
    assert "disabled by PANELS_DISABLE_PLUGINS=1" in missing.message


def test_allow_list_names_plugin_kinds(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.install("typed-panels", "0.1.0", {"builtin": f"{site.module('builtin')}:Good"})
    site.install("a-panels", "1", {"a": f"{site.module('a')}:Good"})
    site.install("b-panels", "1", {"b": f"{site.module('b')}:Good"})
    monkeypatch.setenv("PANELS_PLUGINS", " a , zzz")
    reg = Registry()
    reg.discover()
    assert reg.kinds() == ["builtin", "a"]
    assert statuses(reg)["b"] == ("disabled", "b-panels", "not listed in PANELS_PLUGINS")


def test_rediscovery_keeps_manual_registrations(site: Site) -> None:
    site.install("good-panels", "1", {"good": f"{site.module('good')}:Good"})
    reg = Registry()
    reg.discover()
    manual = reg.get("good")

    class Local(manual):  # type: ignore[misc, valid-type]
        kind = "local"

    reg.register(Local)
    reg.discover()
    assert reg.kinds() == ["good", "local"]


def test_rendering_a_failed_plugin_names_it_and_its_distribution(site: Site) -> None:
    broken = site.module("broken", source="raise ImportError('needs the frobnicate package')")
    site.install("broken-panels", "0.1", {"broken": f"{broken}:Good"})
    reg = Registry()
    reg.discover()
    with pytest.warns(RuntimeWarning):
        card = reg.render_object("broken", FakeView(TT), {"column": "score"})
    assert isinstance(card, pn.pane.Alert)
    assert html.unescape(card.object) == (
        "panel `broken` (from broken-panels) is not available: "
        "failed: ImportError: needs the frobnicate package"
    )
