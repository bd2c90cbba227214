"""Registry basics: register, get, replace, placeholders for missing kinds, card round trips."""

from __future__ import annotations

import html
from typing import Annotated, Any

import panel as pn
import pytest

from panels_core.panel import Column, Panel, PanelConfig, PanelDefinitionError
from panels_core.panel_registry import MissingPanel, Registry, UnknownPanelError, error_card
from panels_core.types import NumberType, TableType
from panels_core.workspace import CardSpec

TT = TableType(columns={"score": NumberType(), "loss": NumberType()})


class HistConfig(PanelConfig):
    column: Annotated[str, Column(accepts=NumberType())]
    bins: int = 20


class Hist(Panel[HistConfig]):
    kind = "hist"
    title = "Histogram"

    def render(self, view: Any) -> Any:
        return pn.pane.Markdown(f"{self.config.column}:{self.config.bins}")


class FakeView:
    type = TT


def test_register_get_and_kinds() -> None:
    reg = Registry()
    assert reg.register(Hist) is Hist
    assert reg.get("hist") is Hist
    assert reg.kinds() == ["hist"]
    assert "hist" in reg and "nope" not in reg
    assert reg.register(Hist) is Hist  # the same class again is fine
    status = reg.status("hist")
    assert (status.kind, status.title, status.state) == ("hist", "Histogram", "ok")
    assert status.value == f"{Hist.__module__}:{Hist.__qualname__}"


def test_register_works_as_a_decorator() -> None:
    reg = Registry()

    @reg.register
    class Tiny(Panel[PanelConfig]):
        kind = "tiny"

        def render(self, view: Any) -> Any:
            return None

    assert reg.get("tiny") is Tiny


def test_a_second_class_for_a_kind_needs_replace() -> None:
    reg = Registry()
    reg.register(Hist)

    class Other(Hist):
        pass

    with pytest.raises(ValueError, match=r"`hist` is already registered by .*pass replace=True"):
        reg.register(Other)
    reg.register(Other, replace=True)
    assert reg.get("hist") is Other
    assert reg.kinds() == ["hist"]


def test_register_refuses_bad_classes() -> None:
    reg = Registry()

    class Future(Hist):
        kind = "future"
        api_version = "2.1"

    with pytest.raises(PanelDefinitionError, match=r"written for Panel API 2\.1"):
        reg.register(Future)

    class Shouting(Hist):
        kind = "Loud Panel"

    with pytest.raises(PanelDefinitionError, match="kind must be a lower-case name"):
        reg.register(Shouting)
    assert reg.kinds() == []


def test_unknown_kind_suggests_close_names() -> None:
    reg = Registry()
    reg.register(Hist)
    with pytest.raises(
        UnknownPanelError, match="no panel `hsit` is installed; did you mean `hist`"
    ):
        reg.get("hsit")


def test_render_default_and_given_config() -> None:
    reg = Registry()
    reg.register(Hist)
    assert reg.render_object("hist", FakeView()).object == "score:20"
    assert reg.render_object("hist", FakeView(), {"column": "loss", "bins": 5}).object == "loss:5"
    assert reg.render_object("hist", FakeView(), HistConfig(column="loss")).object == "loss:20"


def test_render_gives_a_rendered_panel_whose_save_writes_an_offline_page(tmp_path) -> None:
    from panels_core.export import external_references
    from panels_core.static_html import RenderedPanel

    reg = Registry()
    reg.register(Hist)
    view = FakeView()
    card = reg.render("hist", view, {"column": "loss", "bins": 5})
    assert isinstance(card, RenderedPanel) and isinstance(card, pn.Column)
    assert (card.kind, card.config, card.view) == ("hist", HistConfig(column="loss", bins=5), view)
    assert [o.object for o in card.objects] == ["loss:5"]  # what render_object gives, inside
    page = card.save(tmp_path / "hist.html").read_text(encoding="utf-8")
    assert "loss:5" in page and "Bokeh.embed" in page and external_references(page) == []
    bad = reg.render("hist", view, {"column": "loss", "bins": "many"})
    assert bad.config is None and isinstance(bad.objects[0], pn.pane.Alert)
    assert "invalid config" in bad.objects[0].object


def test_render_of_a_missing_kind_says_how_to_install() -> None:
    reg = Registry()
    card = reg.render_object("confusion_matrix_xl", FakeView(), {"a": 1})
    assert isinstance(card, pn.pane.Alert) and card.alert_type == "warning"
    shown = html.unescape(card.object)
    assert "panel `confusion_matrix_xl` is not installed" in shown
    assert "pip install the distribution that provides it" in shown


def test_missing_panel_names_the_distribution_when_known() -> None:
    missing = MissingPanel("cm", {"x": 1}, distribution="typed-panels-confusion-matrix")
    assert (
        missing.message == "panel `cm` is not installed (pip install typed-panels-confusion-matrix)"
    )
    assert html.unescape(missing.render().object) == missing.message


def test_card_with_missing_kind_saves_back_unchanged() -> None:
    reg = Registry()
    reg.register(Hist)
    saved = {
        "kind": "not_installed_panel",
        "input": {"table": "preds", "sort": [{"column": "score", "descending": True}], "limit": 10},
        "config": {"column": "score", "nested": {"a": [1, 2, None]}, "flag": True},
        "title": "My card",
    }
    card = CardSpec.model_validate(saved)
    panel = reg.panel_for(card.kind, card.config, distribution="some-dist")
    assert isinstance(panel, MissingPanel)
    assert "pip install some-dist" in panel.message
    again = card.model_copy(update={"config": panel.config_dict()})
    assert again.to_dict() == saved


def test_card_whose_config_no_longer_validates_keeps_it() -> None:
    reg = Registry()
    reg.register(Hist)
    config = {"column": "score", "bins": 20, "removed_option": 3}
    panel = reg.panel_for("hist", config, view_type=TT)
    assert isinstance(panel, MissingPanel)
    assert panel.config_dict() == config
    assert "removed_option: Extra inputs are not permitted" in panel.message


def test_card_with_installed_kind_builds_the_panel() -> None:
    reg = Registry()
    reg.register(Hist)
    panel = reg.panel_for("hist", {"column": "loss"}, view_type=TT)
    assert isinstance(panel, Hist)
    assert panel.config_dict() == {"column": "loss", "bins": 20}


def test_error_card_names_kind_message_and_distribution() -> None:
    card = error_card("histogram", "ValueError: no rows", "typed-panels 0.1.0")
    assert isinstance(card, pn.pane.Alert)
    assert (
        html.unescape(card.object)
        == "**Panel `histogram` failed** (from typed-panels 0.1.0)\n\nValueError: no rows"
    )


def test_config_schemas_by_kind() -> None:
    reg = Registry()
    reg.register(Hist)
    schemas = reg.config_schemas()
    assert list(schemas) == ["hist"]
    assert schemas["hist"]["required"] == ["column"]
    assert schemas["hist"]["additionalProperties"] is False


def test_the_package_registry_is_the_default_registry() -> None:
    import panels_core
    import panels_core.panel_registry as module
    from panels_core import registry

    # the module holding Registry has its own name, so `panels_core.registry` is always
    # the default registry (no module stands in for it)
    assert registry is module.registry
    assert panels_core.registry is module.registry
    assert registry.kinds() == module.registry.kinds()
    assert registry.compatible(TT) == module.registry.compatible(TT)
    assert ("no_such_kind_here" in registry) is False
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        module.nope
