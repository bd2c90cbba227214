"""The `panels` command: plugins, info, schema, and one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import panels_core.panel_registry as registry_module
from panels_core.cli import SIGPIPE_STATUS, main
from panels_core.panel import Column, Panel, PanelConfig, Prefer
from panels_core.panel_registry import Registry
from panels_core.types import AnyType, CategoryType, EmbeddingType, NumberType

BIN = Path(sys.executable).parent / "panels"


class TablePanel(Panel[PanelConfig]):
    kind = "table"
    title = "Table"

    def render(self, view: Any) -> Any:
        return None


class HistConfig(PanelConfig):
    column: Annotated[str, Column(accepts=NumberType())]
    bins: int = 20


class Hist(Panel[HistConfig]):
    kind = "histogram"
    title = "Histogram"

    def render(self, view: Any) -> Any:
        return None


class ProjConfig(PanelConfig):
    columns: Annotated[
        list[str],
        Column(
            accepts=[EmbeddingType(), NumberType()],
            multiple=True,
            prefer=[Prefer(EmbeddingType(), max=1), Prefer(NumberType(), min=2)],
        ),
    ]
    color_by: Annotated[
        str | None, Column(accepts=AnyType(), required=False, prefer=[CategoryType()])
    ] = None


class Proj(Panel[ProjConfig]):
    kind = "projection"
    title = "2D projection"

    def render(self, view: Any) -> Any:
        return None


@pytest.fixture
def reg(monkeypatch: pytest.MonkeyPatch) -> Registry:
    test_registry = Registry()
    for cls in (TablePanel, Hist, Proj):
        test_registry.register(cls, distribution="typed-panels", version="0.1.0")
    monkeypatch.setattr(registry_module, "registry", test_registry)
    return test_registry


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "preds.parquet"
    table = pa.table(
        {
            "score": [0.1, 0.9, None, 0.4],
            "label": ["cat", "dog", "cat", "cat"],
            "emb": pa.array([[1.0, 0.0, 2.0]] * 4, pa.list_(pa.float32(), 3)),
        }
    )
    pq.write_table(table, path)
    return path


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def test_plugins_table(reg: Registry) -> None:
    status, text = run("plugins")
    assert status == 0
    assert text.splitlines() == [
        "KIND        TITLE          DISTRIBUTION  VERSION  STATUS  ERROR",
        "table       Table          typed-panels  0.1.0    ok",
        "histogram   Histogram      typed-panels  0.1.0    ok",
        "projection  2D projection  typed-panels  0.1.0    ok",
    ]


def test_plugins_json(reg: Registry) -> None:
    status, text = run("plugins", "--json")
    assert status == 0
    rows = json.loads(text)
    assert [r["kind"] for r in rows] == ["table", "histogram", "projection"]
    assert rows[1] == {
        "kind": "histogram",
        "title": "Histogram",
        "distribution": "typed-panels",
        "version": "0.1.0",
        "value": f"{Hist.__module__}:Hist",
        "state": "ok",
        "error": None,
    }


def test_info_text(reg: Registry, parquet: Path) -> None:
    status, text = run("info", str(parquet))
    assert status == 0
    assert text == (
        f"{parquet}: 4 rows, 3 columns\n\n"
        "COLUMN  TYPE\n"
        "score   optional[number]\n"
        "label   category(2)\n"
        "emb     embedding[3]\n\n"
        "compatible panels, best first:\n"
        '  1. projection (2D projection, score 6)  {"columns": ["emb"], "color_by": "label"}\n'
        '  2. histogram (Histogram, score 2)  {"column": "score", "bins": 20}\n'
        "  3. table (Table, score 0)  {}\n"
    )


def test_info_json(reg: Registry, parquet: Path) -> None:
    status, text = run("info", str(parquet), "--json")
    assert status == 0
    data = json.loads(text)
    assert data["rows"] == 4
    assert data["columns"] == [
        {"name": "score", "type": "optional[number]"},
        {"name": "label", "type": "category(2)"},
        {"name": "emb", "type": "embedding[3]"},
    ]
    assert data["type"]["columns"]["emb"] == {"kind": "embedding", "dim": 3}
    assert [(p["kind"], p["score"]) for p in data["panels"]] == [
        ("projection", 6.0),
        ("histogram", 2.0),
        ("table", 0.0),
    ]
    assert data["panels"][0]["config"] == {"columns": ["emb"], "color_by": "label"}


def test_info_reads_csv(reg: Registry, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2.5\n3,4.5\n")
    status, text = run("info", str(path), "--json")
    assert status == 0
    assert [p["kind"] for p in json.loads(text)["panels"]] == ["histogram", "projection", "table"]


def test_schema_lists_workspace_and_panel_configs(reg: Registry) -> None:
    status, text = run("schema")
    assert status == 0
    data = json.loads(text)
    assert data["workspace"]["title"] == "WorkspaceSpec"
    assert list(data["panels"]) == ["table", "histogram", "projection"]
    assert data["panels"]["histogram"]["properties"]["bins"]["default"] == 20


def test_schema_to_a_file(reg: Registry, tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    status, text = run("schema", "-o", str(target))
    assert status == 0 and text == f"wrote {target}\n"
    assert "workspace" in json.loads(target.read_text())


def test_errors_are_one_line_with_status_2(
    reg: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run("info", str(tmp_path / "missing.parquet"))
    assert status == 2
    assert (
        capsys.readouterr().err == f"panels: error: no such file: {tmp_path / 'missing.parquet'}\n"
    )
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    status, _ = run("info", str(bad))
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("panels: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_no_command_prints_help() -> None:
    status, text = run()
    assert status == 2 and "plugins" in text and "info" in text and "schema" in text


@pytest.mark.skipif(not BIN.exists(), reason="the console script is not installed")
def test_console_script_lists_the_installed_plugin(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN), "plugins", "--json"], capture_output=True, text=True, check=True, timeout=600
    )
    rows = {r["kind"]: r for r in json.loads(result.stdout)}
    assert rows["confusion_matrix"]["distribution"] == "typed-panels-confusion-matrix"
    assert rows["confusion_matrix"]["state"] == "ok"
    missing = subprocess.run(
        [str(BIN), "info", str(tmp_path / "nope.csv")], capture_output=True, text=True, timeout=600
    )
    assert missing.returncode == 2
    assert missing.stderr == f"panels: error: no such file: {tmp_path / 'nope.csv'}\n"


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["info"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "panels info: error: the following arguments are required: path "
        "(see `panels info --help`)\n"
    )


@pytest.mark.skipif(not BIN.exists(), reason="the console script is not installed")
def test_info_on_binary_garbage_is_one_clean_line(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.csv"
    # random bytes: before, pyarrow's row handler failed to decode them ("Exception ignored")
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    result = subprocess.run(
        [str(BIN), "info", str(garbage)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 2
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith(
        f"panels: error: cannot read CSV `{garbage}`: it is binary data, not text (byte "
    )
    assert result.stderr.count("\n") == 1


def test_info_says_which_columns_show_under_another_name(reg: Registry, tmp_path: Path) -> None:
    path = tmp_path / "named.parquet"
    arrays = [pa.array([1]), pa.array([2]), pa.array([3])]
    pq.write_table(pa.Table.from_arrays(arrays, ["a", "a", ""]), path)
    status, text = run("info", str(path))
    assert status == 0
    assert "a (2)    integer\n(empty)  integer\n" in text
    assert text.endswith(
        "note: the file repeats a column name or leaves one empty; shown as "
        "`a (2)` (`a` in the file), `(empty)` (no name in the file)\n"
    )
    status, text = run("info", str(path), "--json")
    assert json.loads(text)["renamed"] == {"a (2)": "a", "(empty)": ""}


def test_info_closed_early_by_its_reader_exits_quietly(tmp_path: Path) -> None:
    # `panels info wide.parquet | head -1`: the reader goes after one line
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"column_{i:04d}": [float(i)] for i in range(3000)}), path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "panels_core.cli", "info", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == f"{path}: 1 rows, 3000 columns\n".encode()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == SIGPIPE_STATUS == 141  # what a shell shows for `seq | head`
    assert err == ""


def test_info_on_a_pipe_closed_at_the_final_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    class Gone(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    assert main(["plugins"], out=Gone()) == SIGPIPE_STATUS


def test_info_delimiter_is_sniffed_or_forced(reg: Registry, tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b,c\n1;2,5\n3;4,5\n")
    status, text = run("info", str(path), "--json")
    assert status == 0 and [c["name"] for c in json.loads(text)["columns"]] == ["a;b", "c"]
    status, text = run("info", str(path), "--json", "--delimiter", ";")
    assert status == 0 and [c["name"] for c in json.loads(text)["columns"]] == ["a", "b,c"]
    tabbed = tmp_path / "tabbed.csv"
    tabbed.write_text("a\tb;c\n1\t2;3\n")
    status, text = run("info", str(tabbed), "--json", "--delimiter", "\\t")
    assert status == 0 and [c["name"] for c in json.loads(text)["columns"]] == ["a", "b;c"]


def test_info_delimiter_errors(
    reg: Registry, parquet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("info", str(parquet), "--delimiter", ";")[0] == 2
    assert capsys.readouterr().err == (
        f"panels: error: --delimiter applies to CSV files; `{parquet}` is read as parquet\n"
    )
    with pytest.raises(SystemExit):
        main(["info", str(parquet), "--delimiter", ";;"])
    assert capsys.readouterr().err == (
        "panels info: error: argument --delimiter: ';;' is not one character; give e.g. "
        "';', '|', or '\\t' (or tab) for a tab (see `panels info --help`)\n"
    )


def test_warm_up_compiles_umap_into_the_cache_folder_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import panels_core.projection as projection

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    calls: list[str] = []
    monkeypatch.setattr(projection, "warm_up", lambda: calls.append("warm_up") or 41.6)
    status, text = run("warm-up")
    assert status == 0 and calls == ["warm_up"]
    assert text == (
        f"UMAP's kernels are compiled and kept in {tmp_path / 'numba'} (42 s); "
        "a server's first UMAP on this machine loads them instead of compiling\n"
    )


def test_warm_up_without_umap_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import panels_core.projection as projection

    def missing() -> float:
        raise ImportError("No module named 'umap'")

    monkeypatch.setattr(projection, "warm_up", missing)
    status, text = run("warm-up")
    assert status == 1 and text == ""
    assert capsys.readouterr().err == (
        "panels: error: UMAP cannot run here (No module named 'umap'); install typed-panels' "
        "dependencies (umap-learn, faiss-cpu) and try again\n"
    )
