"""The workspace app without a browser: default cards, swaps, the query bar, specs, saving."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import pytest

from panels_core.data.table import JoinedTable, Table
from panels_core.demo import digits_table, hello_table
from panels_core.panel_registry import registry
from panels_core.query.engine import Engine
from panels_core.query.errors import QueryError
from panels_core.query.model import Query
from panels_core.workspace import CardSpec, TableSource, WorkspaceSpec
from panels_core.workspace.app import Workspace, carry_config, default_cards
from panels_core.workspace.querybar import (
    BOTH_FILTER,
    QueryBar,
    QueryFields,
    build_query,
    fields_of,
)
from panels_core.workspace.saving import SpecError, read_spec, write_spec


def _runs(n: int = 90, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "label": np.array(["cat", "dog", "bird"])[np.arange(n) % 3],
            "score": np.round(rng.random(n), 3),
            "loss": np.round(rng.random(n), 3),
        }
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    a, b = tmp_path / "runs.parquet", tmp_path / "runs_b.parquet"
    _runs().to_parquet(a)
    _runs(60, seed=1).to_parquet(b)
    return {"runs": a, "runs_b": b}


@pytest.fixture
def workspace(files: dict[str, Path]) -> Workspace:
    return Workspace({name: Table.from_parquet(path) for name, path in files.items()})


def test_default_cards_for_the_demo_tables() -> None:
    runs = Table(dataframe=_runs())
    engine = Engine(
        {
            "hello": hello_table(),
            "digits": digits_table(),
            "runs:v0": runs,
            "runs:v1": runs,
            "pair": JoinedTable(runs, Table(dataframe=_runs(seed=2)), "id"),
        }
    )
    cards = [(c.kind, c.input.table) for c in default_cards(engine)]
    projection = "projection" in registry.kinds()
    # an image + embedding table: projection, gallery, its rows last (its 64 number
    # columns are pixels, not a measure worth a histogram)
    expected = [("projection", "digits")] if projection else []
    expected += [("gallery", "digits"), ("table", "digits")]
    expected += [("table", "runs:v1"), ("joined_table", "pair")]  # latest version only
    # three rows: after the others, never the first row of the screen
    expected += [("table", "hello")]
    expected += [("projection", "hello")] if projection else []  # five numeric columns
    assert cards == expected
    for card in default_cards(engine):
        assert card.input == Query(table=card.input.table)
        assert card.config  # the panel's default config, ready to save


def test_swap_keeps_the_input_and_carries_fields_of_the_same_name(workspace: Workspace) -> None:
    card = workspace.cards[0]
    card.querybar.filter_input.value = "score > 0.5"
    query = card.spec.input
    assert "Histogram" in card.selector.options and card.spec.kind == "table"
    card.swap("histogram")
    assert card.spec.input == query
    assert card.spec.config["column"] == "score"  # the default's best column
    card.set_config({**card.spec.config, "column": "loss", "bins": 7})
    card.swap("multi_histogram")
    assert card.spec.config["column"] == "loss"  # same name, still valid: carried
    card.swap("histogram")
    assert card.spec.config["column"] == "loss"
    card.swap("table")
    card.swap("histogram")
    assert card.spec.config["column"] == "score"  # the table had no column to carry back
    assert card.spec.config["bins"] == "auto"
    view_type = card.view.type
    carried = carry_config(registry, "histogram", {"column": "nope", "bins": 7}, view_type)
    assert carried["column"] == "score" and carried["bins"] == 7  # invalid field left behind


def test_query_bar_builds_the_query_and_says_what_is_wrong(workspace: Workspace) -> None:
    engine = workspace.engine
    fields = QueryFields(filter='label == "cat"', sort="score", descending=True, group_by=["label"])
    query = build_query("runs", fields, engine)
    assert query == Query(
        table="runs", filter='label == "cat"', sort=["-score"], group_by=["label"]
    )
    assert fields_of(query) == fields
    compare = QueryFields(
        filter="0.score > 0.5", compare_with="runs_b", compare_on="id", only_both=True
    )
    query = build_query("runs", compare, engine)
    assert query.filter is not None
    assert query.filter.to_text() == f"{BOTH_FILTER} and 0.score > 0.5"
    assert query.compare_with is not None and query.compare_with.on == "id"
    assert fields_of(query) == compare
    frame = _runs()
    assert engine.count(query) == int((frame.score[:60] > 0.5).sum())  # ids 0..59 in both
    both = build_query("runs", QueryFields(compare_with="runs_b", compare_on="id", only_both=True))
    assert engine.count(both) == 60
    with pytest.raises(QueryError, match="expected a value after `>`"):
        build_query("runs", QueryFields(filter="score >"), engine)
    with pytest.raises(QueryError, match="did you mean `score`"):
        build_query("runs", QueryFields(filter="scor > 1"), engine)
    with pytest.raises(QueryError, match="cannot compare"):
        build_query("runs", QueryFields(filter='score > "high"'), engine)


def test_query_bar_widget_passes_only_valid_queries(workspace: Workspace) -> None:
    seen: list[Query] = []
    bar = QueryBar(workspace.engine, Query(table="runs"), on_change=seen.append)
    bar.filter_input.value = "score >"
    assert seen == [] and bar.error is not None and "expected a value" in bar.error
    bar.filter_input.value = "score > 0.5"
    assert bar.error is None
    assert seen == [Query(table="runs", filter="score > 0.5")]
    bar.group_by.value = ["label"]
    assert seen[-1].group_by == ("label",)


def test_card_query_changes_rederive_type_panels_and_count(workspace: Workspace) -> None:
    card = workspace.cards[0]
    frame = _runs()
    card.querybar.filter_input.value = 'label == "cat"'
    assert card.count.object == f"{(frame.label == 'cat').sum()} of 90 rows"
    card.querybar.filter_input.value = ""
    card.querybar.group_by.value = ["label"]
    assert card.count.object == "3 groups · 90 of 90 rows"
    assert card.spec.kind == "table"  # still fits: kept
    assert "multi_histogram" in card.options
    card.querybar.group_by.value = []
    card.querybar.compare_with.value = "runs_b"
    assert card.spec.input.compare_with is not None
    assert card.count.object == "90 rows comparing 0 = runs (90 rows) and 1 = runs_b (60 rows)"


def test_error_stays_in_its_card_and_missing_panels_save_back_unchanged(files) -> None:
    cards = [
        CardSpec(kind="no_such_panel", input=Query(table="runs"), config={"x": [1, 2]}),
        CardSpec(kind="histogram", input=Query(table="runs"), config={"column": "nope"}),
        CardSpec(kind="table", input=Query(table="runs_b")),
    ]
    ws = Workspace({n: Table.from_parquet(p) for n, p in files.items()}, cards)
    missing, broken, fine = ws.cards
    assert "not installed" in missing.body[0].object
    assert "no_such_panel (not installed)" in missing.selector.options
    assert "nope" in broken.body[0].object  # the invalid config's message, in that card
    assert fine.count.object == "60 of 60 rows"
    assert ws.to_spec().cards[0] == cards[0]


def test_workspace_spec_round_trip(tmp_path: Path, workspace: Workspace) -> None:
    workspace.cards[0].querybar.filter_input.value = "score > 0.25"
    workspace.cards[0].swap("histogram")
    workspace.duplicate(workspace.cards[1])
    workspace.add_card("runs")
    spec = workspace.to_spec()
    best = registry.compatible(workspace.engine.result_type(Query(table="runs")))[0].kind
    assert [c.kind for c in spec.cards] == ["histogram", "table", "table", best]
    path = workspace.save(tmp_path / "views" / "ws.json")
    saved = json.loads(path.read_text())
    assert saved["schema_version"] == 1
    assert saved["tables"]["runs"] == "../runs.parquet"  # relative to the spec's folder
    again = Workspace.from_spec(path)
    assert again.to_spec() == spec
    assert again.cards[0].querybar.filter_input.value == "score > 0.25"
    assert Workspace.from_spec(spec, base_dir=tmp_path).to_spec() == spec


def test_save_is_atomic(tmp_path: Path, workspace: Workspace, monkeypatch) -> None:
    path = tmp_path / "ws.json"
    workspace.save(path)
    before = path.read_text()
    workspace.cards[0].swap("histogram")

    def fail(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        workspace.save(path)
    assert path.read_text() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_specs_are_data_newer_versions_refused(tmp_path: Path) -> None:
    path = tmp_path / "ws.json"
    path.write_text(json.dumps({"schema_version": 99, "tables": {}, "cards": []}))
    with pytest.raises(SpecError, match=r"schema_version 99.*upgrade typed-panels"):
        read_spec(path)
    path.write_text(
        json.dumps(
            {
                "tables": {"t": "t.parquet"},
                "cards": [{"kind": "table", "input": {"table": "t", "filter": "__import__('os')"}}],
            }
        )
    )
    with pytest.raises(SpecError, match="not valid"):
        read_spec(path)
    path.write_text("[1, 2]")
    with pytest.raises(SpecError, match="JSON object"):
        read_spec(path)
    spec = WorkspaceSpec(tables={"t": "t.parquet"})
    write_spec(spec, path)
    assert read_spec(path) == spec


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b'{"cards": [], "tables": {"t": "caf\xe9.parquet"}}',
            r"is not UTF-8 text \(byte 34: invalid",
        ),
        (b'{"cards": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "is nested too deeply to read"),
    ],
)
def test_a_workspace_file_that_is_not_text_or_too_deep_names_the_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "ws.json"
    path.write_bytes(content)
    for read in (read_spec, Workspace.from_spec):
        with pytest.raises(SpecError, match=rf"^workspace {path} {problem}"):
            read(path)


def test_an_unreadable_table_shows_in_its_cards_only(tmp_path: Path, files) -> None:
    spec = WorkspaceSpec(
        tables={"runs": str(files["runs"]), "gone": "gone.parquet"},
        cards=[
            CardSpec(kind="table", input=Query(table="gone")),
            CardSpec(kind="table", input=Query(table="runs")),
        ],
    )
    ws = Workspace.from_spec(spec, base_dir=tmp_path)
    gone, runs = ws.cards
    shown = html.unescape(gone._layout[0].object)
    assert "no such file or folder" in shown and "gone.parquet" in shown
    assert runs.count.object == "90 of 90 rows"
    path = ws.save(tmp_path / "ws.json")
    saved = read_spec(path)
    assert saved.cards == spec.cards
    assert saved.tables == {
        "runs": TableSource(path="runs.parquet"),
        "gone": TableSource(path="gone.parquet"),
    }


def test_serve_prepares_stores_and_saved_workspaces(tmp_path: Path, capsys) -> None:
    from panels_core.cli import main
    from panels_core.data.store import Store
    from panels_core.workspace.server import prepare

    store = Store(tmp_path / "store")
    store.add(Table(dataframe=_runs()), "runs")
    store.add(Table(dataframe=_runs(seed=3)), "runs")
    tables, options = prepare([tmp_path / "store"])
    assert list(tables) == ["runs:v0", "runs:v1"]
    ws = Workspace(engine=Engine(tables), **options)
    assert (ws.cards[0].spec.kind, ws.cards[0].spec.input.table) == ("table", "runs:v1")
    ws.cards[0].querybar.compare_with.value = "runs:v0"
    path = ws.save(tmp_path / "ws.json")
    assert json.loads(path.read_text())["tables"] == {"runs:v0": "runs:v0", "runs:v1": "runs:v1"}
    tables, options = prepare([tmp_path / "store"], workspace=path)
    again = Workspace(engine=Engine(tables), **options)
    assert again.to_spec() == ws.to_spec()
    assert again.cards[0].count.object == (
        "90 rows comparing 0 = runs:v1 (90 rows) and 1 = runs:v0 (90 rows)"
    )

    assert main(["serve", str(tmp_path / "missing.parquet")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "new.json").write_text('{"schema_version": 7}')
    assert main(["serve", str(tmp_path / "store"), "--workspace", str(tmp_path / "new.json")]) == 2
    assert "upgrade typed-panels" in capsys.readouterr().err


def test_layout_placements_apply_follow_their_cards_and_round_trip(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    from panels_core.workspace.spec import LayoutSpec, Placement

    tables = {name: Table.from_parquet(path) for name, path in files.items()}
    cards = [CardSpec(kind="table", input=Query(table=n)) for n in ("runs", "runs_b", "runs")]
    layout = LayoutSpec(columns=3, placements=(Placement(card=1, row=0, col=1, width=2),))
    ws = Workspace(tables, cards, layout=layout)
    styles = [c._layout.styles for c in ws.cards]
    assert styles[1]["grid-column"] == "2 / span 2" and styles[1]["grid-row"] == "1 / span 1"
    assert "grid-column" not in styles[0] and "grid-column" not in styles[2]
    assert "repeat(3, minmax(0, 1fr))" in ws.grid.stylesheets[0]
    assert ws.cards[1].wide_button.value

    # ⇔ on the first card: it spans the row (flowing, no fixed cell); off again: one cell
    ws.cards[0].wide_button.value = True
    assert ws.cards[0]._layout.styles["grid-column"] == "span 3"
    ws.cards[0].wide_button.value = False
    assert ws.cards[0].placement is None and "grid-column" not in ws.cards[0]._layout.styles
    ws.cards[2].wide_button.value = True

    # closing card 0 renumbers the placements; a copy keeps the span, not the cell
    ws.close(ws.cards[0])
    ws.duplicate(ws.cards[0])
    spec = ws.to_spec()
    assert spec.layout.placements == (
        Placement(card=0, row=0, col=1, width=2),
        Placement(card=1, width=2),
        Placement(card=2, width=3),
    )
    path = ws.save(tmp_path / "ws.json")
    assert json.loads(path.read_text())["layout"]["placements"][1] == {"card": 1, "width": 2}
    again = Workspace.from_spec(path)
    assert again.to_spec() == spec
    assert again.cards[1]._layout.styles["grid-column"] == "span 2"


def test_layout_specs_refuse_impossible_placements() -> None:
    base = {
        "tables": {"runs": "runs.parquet"},
        "cards": [{"kind": "table", "input": {"table": "runs"}}],
    }
    with pytest.raises(ValueError, match="placed twice"):
        WorkspaceSpec.model_validate(
            {**base, "layout": {"placements": [{"card": 0}, {"card": 0, "width": 2}]}}
        )
    with pytest.raises(ValueError, match="spans past column 2"):
        WorkspaceSpec.model_validate({**base, "layout": {"placements": [{"card": 0, "width": 3}]}})


def test_a_projection_card_starts_the_umap_warm_up_on_a_low_priority_thread(
    monkeypatch,
) -> None:
    import threading

    from panels_builtin.projection import panel as projection_panel
    from panels_core import projection
    from panels_core.projection import shared
    from panels_core.workspace import server

    seen: list[tuple[str, int]] = []

    def fake_warm_up() -> float:
        tid = threading.get_native_id()
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, tid)))
        return 0.0

    monkeypatch.setattr(projection, "warm_up", fake_warm_up)
    monkeypatch.setattr(projection_panel, "warm_up_raster", lambda: None)
    monkeypatch.delenv(server.WARM_UP_ENV, raising=False)
    # projections on threads of this process: the warm-up runs on one of ours
    monkeypatch.setenv("PANELS_PROJECTION_WORKER", "0")
    monkeypatch.setattr(shared, "_SHARED_PROJECTOR", None)
    table_only = [CardSpec(kind="table", input=Query(table="t"))]
    with_projection = [*table_only, CardSpec(kind="projection", input=Query(table="t"))]
    assert server.start_warm_up(table_only) is None
    thread = server.start_warm_up(with_projection)
    assert thread is not None
    thread.join(600)  # a bound for a busy machine: the thread ends at once
    base = os.getpriority(os.PRIO_PROCESS, 0)
    # lowering one's own priority is always allowed on Linux
    assert seen == [("panels-umap-warm-up", min(19, base + 10))]
    monkeypatch.setenv(server.WARM_UP_ENV, "0")
    assert server.start_warm_up(with_projection) is None


def test_with_the_projection_worker_the_warm_up_starts_that_process(monkeypatch) -> None:
    import threading

    from panels_builtin.projection import panel as projection_panel
    from panels_builtin.projection import raster
    from panels_core.projection import shared
    from panels_core.workspace import server

    class FakeWorker:
        started = 0

        def wait_until_warm(self, timeout: float | None = None) -> bool:
            return True

        def start(self) -> None:
            self.started += 1

    fake = FakeWorker()
    monkeypatch.delenv(server.WARM_UP_ENV, raising=False)
    monkeypatch.setattr(shared, "_SHARED_PROJECTOR", fake)
    compiled: list[str] = []

    def warm_up_raster() -> None:
        raster.warm_up_raster()  # the real one: it draws without error
        compiled.append(threading.current_thread().name)

    monkeypatch.setattr(projection_panel, "warm_up_raster", warm_up_raster)
    cards = [CardSpec(kind="projection", input=Query(table="t"))]
    thread = server.start_warm_up(cards)  # UMAP compiles in the worker; the raster here
    assert thread is not None
    thread.join(600)  # a bound for a busy machine
    assert fake.started == 1 and compiled == ["panels-raster-warm-up"]


def test_the_merge_kernels_load_early_when_a_table_is_big_enough(monkeypatch) -> None:
    import threading

    import pyarrow as pa

    from panels_core.query.engine import Engine, pairing
    from panels_core.workspace import server

    loaded: list[str] = []
    monkeypatch.setattr(pairing, "warm_up", lambda: loaded.append(threading.current_thread().name))
    monkeypatch.delenv(server.WARM_UP_ENV, raising=False)
    small = Engine({"t": pa.table({"id": list(range(10))})})
    assert small.warm_up() is None  # a hash join is as fast there
    big = Engine({"t": pa.table({"id": list(range(60_000))})})
    thread = big.warm_up()  # what serve_tables calls
    assert thread is not None
    thread.join(600)  # a bound for a busy machine: the thread ends at once
    assert loaded == ["panels-merge-warm-up"]
    monkeypatch.setenv(server.WARM_UP_ENV, "0")
    assert big.warm_up() is None


def test_a_card_kind_that_cannot_name_a_panel_is_an_error_card(tmp_path: Path, files) -> None:
    bad = CardSpec(kind="bad kind", input=Query(table="runs"), config={"column": "score"})
    good = CardSpec(kind="histogram", input=Query(table="runs"), config={"column": "score"})
    ws = Workspace.from_spec(WorkspaceSpec(tables={"runs": str(files["runs"])}, cards=[bad, good]))
    shown, fine = ws.cards
    assert "the card's kind 'bad kind' cannot name a panel" in html.unescape(
        shown._layout[0].object
    )
    assert "card-kind-bad kind" not in " ".join(shown._layout.css_classes)
    assert fine.count.object == "90 of 90 rows" and fine._classes()[-1] == "card-kind-histogram"
    assert ws.save(tmp_path / "ws.json") and read_spec(tmp_path / "ws.json").cards == (bad, good)


def test_serve_leaves_out_paths_it_cannot_open_and_says_why(tmp_path: Path, capsys) -> None:
    from panels_core.workspace.server import prepare

    _runs().to_parquet(tmp_path / "a.parquet")
    (tmp_path / "b.csv").write_text("x;y\n1;2\n3;4\n")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    paths = [tmp_path / n for n in ("a.parquet", "missing.csv", "broken.parquet", "b.csv")]
    tables, options = prepare(paths)
    assert list(tables) == ["a", "b"] and tables["b"].column_names == ["x", "y"]
    assert list(options["unavailable"]) == ["missing.csv", "broken.parquet"]
    assert options["unavailable"]["missing.csv"].startswith(
        f"cannot open `{tmp_path / 'missing.csv'}`: no such file or folder"
    )
    assert str(tmp_path / "broken.parquet") in options["unavailable"]["broken.parquet"]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith(
        f"typed-panels: cannot open `{tmp_path / 'missing.csv'}`: no such file or folder"
    )
    assert err[1].startswith("typed-panels: ") and str(tmp_path / "broken.parquet") in err[1]
    ws = Workspace(engine=Engine(tables), **options)
    alerts = [o.object for o in ws.sidebar().objects if isinstance(o, pn.pane.Alert)]
    assert [a.split(" cannot be opened: ")[0] for a in alerts] == [
        "`missing.csv`",
        "`broken.parquet`",
    ]
    assert set(ws.to_spec().tables) == {"a", "b"}  # a path that did not open is not saved


def test_serve_says_on_stderr_which_table_of_the_workspace_file_is_missing(
    tmp_path: Path, capsys
) -> None:
    from panels_core.workspace.server import prepare

    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(tmp_path / "here.parquet")
    spec = tmp_path / "ws.json"
    spec.write_text(json.dumps({"tables": {"here": "here.parquet", "gone": "gone.parquet"}}))
    tables, options = prepare([], workspace=spec)
    assert list(tables) == ["here"]
    why = f"table `gone`: no such file or folder: {tmp_path / 'gone.parquet'}"
    assert options["unavailable"] == {"gone": why}
    assert capsys.readouterr().err == f"typed-panels: {spec}: {why}\n"


def test_serve_with_no_readable_table_fails_naming_each_file(tmp_path: Path, capsys) -> None:
    from panels_core.cli import main

    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    assert main(["serve", str(tmp_path / "missing.csv"), str(tmp_path / "broken.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"panels: error: panels serve: no table could be opened: cannot open "
        f"`{tmp_path / 'missing.csv'}`: no such file or folder"
    )
    assert f"; `{tmp_path / 'broken.parquet'}` is not a readable Parquet file" in err
    assert err.count("\n") == 1


def test_serve_command_passes_the_delimiter_and_serves_the_rest(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import panels_core.workspace.server as server
    from panels_core.cli import main

    served: dict[str, Any] = {}
    monkeypatch.setattr(server, "serve_tables", lambda tables, **o: served.update(tables, **o))
    (tmp_path / "b.csv").write_text("x;y,z\n1;2,5\n")
    argv = ["serve", str(tmp_path / "b.csv"), str(tmp_path / "gone.csv"), "--delimiter", ";"]
    status = main(argv)
    assert status == 0 and served["b"].column_names == ["x", "y,z"]
    assert list(served["unavailable"]) == ["gone.csv"]
    assert capsys.readouterr().err.startswith(
        f"typed-panels: cannot open `{tmp_path / 'gone.csv'}`: no such file or folder"
    )
