"""What the page's Save may write: a *.json file inside the workspace folder, nothing else.

Each test builds its own folders under tmp_path: ``root`` is the workspace folder,
``outside`` a sibling the page must never write into.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from panels_core.data.table import Table
from panels_core.workspace.app import Workspace
from panels_core.workspace.saving import SaveRefused, confined_target, write_spec
from panels_core.workspace.server import prepare


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): the workspace folder holding runs.parquet, and a sibling folder."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    frame = pd.DataFrame({"id": np.arange(20), "score": np.linspace(0, 1, 20)})
    frame.to_parquet(root / "runs.parquet")
    return root, outside


@pytest.fixture
def workspace(folders: tuple[Path, Path]) -> Workspace:
    root, _ = folders
    table = Table.from_parquet(root / "runs.parquet")
    return Workspace({"runs": table}, save_root=root)


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("../outside/x.json", "contains `..`"),
        ("sub/../x.json", "contains `..`"),
        ("x.txt", "is not a .json file"),
        ("x.json.sh", "is not a .json file"),
        (".json", "is not a .json file"),
        ("", "no file name given"),
        ("   ", "no file name given"),
        ("a\0.json", "no file name given"),
    ],
)
def test_a_bad_name_is_refused_with_its_reason(folders, text: str, why: str) -> None:
    root, _ = folders
    with pytest.raises(SaveRefused, match=re.escape(why)) as info:
        confined_target(text, root)
    assert f"give a .json file name inside the workspace folder {root}" in str(info.value)


def test_an_absolute_path_outside_is_refused(folders) -> None:
    root, outside = folders
    text = str(outside / "x.json")
    with pytest.raises(SaveRefused, match=re.escape(f"`{text}` is outside the workspace folder")):
        confined_target(text, root)
    with pytest.raises(SaveRefused, match="outside the workspace folder"):
        confined_target("/etc/x.json", root)


def test_a_symlink_that_leads_out_is_refused(folders) -> None:
    root, outside = folders
    (root / "link_dir").symlink_to(outside, target_is_directory=True)
    (root / "link.json").symlink_to(outside / "target.json")  # dangling: would be created
    for text in ("link_dir/x.json", "link_dir/new/x.json", "link.json"):
        with pytest.raises(
            SaveRefused, match="leads out of the workspace folder through a symlink"
        ):
            confined_target(text, root)
    (root / "inner").mkdir()
    (root / "link_in").symlink_to(root / "inner", target_is_directory=True)
    assert confined_target("link_in/ok.json", root) == root / "link_in" / "ok.json"


def test_names_inside_are_accepted(folders) -> None:
    root, _ = folders
    assert confined_target("my.json", root) == root / "my.json"
    assert confined_target(" sub/My.JSON ", root) == root / "sub" / "My.JSON"
    assert confined_target(str(root / "abs.json"), root) == root / "abs.json"


def test_write_spec_with_a_root_writes_nothing_outside(folders, workspace) -> None:
    root, outside = folders
    (root / "link_dir").symlink_to(outside, target_is_directory=True)
    before = files_in(root.parent)
    for text in ("../outside/x.json", "../made/x.json", str(outside / "y.json"), "link_dir/z.json"):
        with pytest.raises(SaveRefused):
            write_spec(workspace.to_spec(), text, root=root)
    assert files_in(root.parent) == before  # no file, no folder
    path = write_spec(workspace.to_spec(), "views/ws.json", root=root)
    assert path == root / "views" / "ws.json"
    assert json.loads(path.read_text())["tables"] == {"runs": "../runs.parquet"}


def test_overwriting_keeps_the_files_mode(folders, workspace) -> None:
    root, _ = folders
    target = root / "ws.json"
    target.write_text("{}")
    target.chmod(0o640)
    write_spec(workspace.to_spec(), "ws.json", root=root)
    assert oct(target.stat().st_mode & 0o777) == oct(0o640)
    target.chmod(0o604)
    workspace.save(target)  # the Python API too
    assert oct(target.stat().st_mode & 0o777) == oct(0o604)
    assert json.loads(target.read_text())["cards"]


def test_a_new_file_gets_the_mode_open_would_give_it(folders, workspace) -> None:
    root, _ = folders
    old = os.umask(0o022)
    try:
        path = write_spec(workspace.to_spec(), "fresh.json", root=root)
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # not mkstemp's 0600
    assert not [p.name for p in root.iterdir() if p.name.endswith(".tmp")]


def test_the_page_save_refuses_and_says_why(folders, workspace) -> None:
    root, outside = folders
    before = files_in(root.parent)
    workspace.save_input.value = "../outside/x.json"
    workspace.save_button.clicks += 1
    status = workspace.save_status.object
    assert status.startswith("<b>Not saved:</b> `../outside/x.json` contains `..`")
    workspace.save_input.value = "<img src=x onerror=alert(1)>.txt"
    workspace.save_button.clicks += 1
    assert "&lt;img src=x onerror=alert(1)&gt;.txt` is not a .json file" in (
        workspace.save_status.object
    )
    assert files_in(root.parent) == before

    workspace.save_input.value = "my.json"
    workspace.save_button.clicks += 1
    assert workspace.save_status.object == f"<b>Saved</b> 1 cards to {root / 'my.json'}"
    assert json.loads((root / "my.json").read_text())["tables"] == {"runs": "runs.parquet"}
    assert files_in(outside) == []


def test_python_save_still_writes_where_it_is_told(folders, workspace) -> None:
    _, outside = folders
    path = workspace.save(outside / "mine.json")
    assert json.loads(path.read_text())["tables"] == {"runs": "../root/runs.parquet"}


def test_read_only_has_no_save_controls_and_refuses(folders) -> None:
    root, _ = folders
    table = Table.from_parquet(root / "runs.parquet")
    ws = Workspace({"runs": table}, save_root=root, read_only=True)
    shown = list(ws.sidebar().objects)
    assert ws.save_input not in shown and ws.save_button not in shown
    ws.save_input.value = "my.json"
    ws.save_button.clicks += 1
    assert ws.save_status.object == "<b>Not saved:</b> this workspace is served read-only"
    assert not (root / "my.json").exists()


def test_the_page_save_folder_defaults_to_the_files_folder_else_the_current_one(folders, monkeypatch) -> None:
    root, _ = folders
    monkeypatch.chdir(root)
    ws = Workspace({"runs": Table.from_parquet(root / "runs.parquet")})
    assert ws.save_root == root.resolve()
    assert ws.save_input.value == "workspace.json"
    ws = Workspace({"runs": ws.engine.table("runs")}, save_path=root / "views" / "ws.json")
    assert ws.save_root == (root / "views").resolve()
    assert ws.save_input.value == "ws.json"


def test_serve_saves_in_the_workspace_files_folder_else_the_current_one(
    folders, monkeypatch
) -> None:
    root, outside = folders
    monkeypatch.chdir(outside)
    _, options = prepare([root / "runs.parquet"])
    assert options["save_root"] == outside.resolve()
    _, options = prepare([root / "runs.parquet"], workspace=root / "views" / "ws.json")
    assert options["save_root"] == (root / "views").resolve()
    ws = Workspace(
        {"runs": Table.from_parquet(root / "runs.parquet")},
        save_path=options["save_path"],
        save_root=options["save_root"],
    )
    assert ws.save_input.value == "ws.json"
    assert os.path.isabs(ws.save_input.value) is False
