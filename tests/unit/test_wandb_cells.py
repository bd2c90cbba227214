"""A W&B table with one bad cell loads: the cell's bad box or mask layer is dropped (or its
mask resized), one note per column and layer names the rows, and ``--strict`` refuses as before.

The fixtures are W&B exports as wandb writes them: ``<name>.table.json`` with image-file
cells whose masks are PNGs of class ids under ``media/images/mask/``. One mask was saved
from an RGBA array (shape (24, 36, 4), as a segmentation logged as colours is), one at
twice and one at half the image's size, one at a size that is no multiple of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from panels_core.cli import main
from panels_core.data.cell_notes import CellWarning
from panels_core.data.media import Image
from panels_core.data.sources import open_table
from panels_core.data.sources.wandb_json import read_wandb
from panels_core.view import View
from panels_core.workspace.server import prepare

H, W = 24, 36  # the images' height and width

RGBA_NOTE = (
    "column `image`: mask layer `ground_truth` dropped on 2 rows (1, 4): "
    f"shape ({H}, {W}, 4) is not HxW class ids"
)
OLD_RGBA_ERROR = (
    "column `image`, row 1: mask layer `ground_truth`: a mask must be an HxW array of class "
    f"ids, got shape ({H}, {W}, 4)"
)


def _save(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(array).save(path)
    return str(path)


def _halves(height: int, width: int) -> np.ndarray:
    """Class ids: 1 in the top half, 2 in the bottom half."""
    mask = np.full((height, width), 1, dtype=np.uint8)
    mask[height // 2 :, :] = 2
    return mask


def _cell(folder: Path, row: int, mask: np.ndarray | None, boxes: list | None = None) -> dict:
    image = f"media/images/{row}.png"
    _save(folder / image, np.full((H, W, 3), 10 * row, dtype=np.uint8))
    cell: dict = {"_type": "image-file", "path": image, "format": "png", "width": W, "height": H}
    if mask is not None:
        path = f"media/images/mask/{row}.mask.png"
        _save(folder / path, mask)
        cell["masks"] = {"ground_truth": {"_type": "mask", "path": path}}
    if boxes is not None:
        cell["boxes"] = {"predictions": {"box_data": boxes, "class_labels": {"1": "sky"}}}
    return cell


def _box(**changes: object) -> dict:
    box = {
        "position": {"minX": 0.1, "maxX": 0.5, "minY": 0.2, "maxY": 0.6},
        "class_id": 1,
        "scores": {"conf": 0.9},
    }
    return {**box, **changes}


def write_export(folder: Path, masks: dict[int, np.ndarray], boxes: dict[int, list] | None = None):
    """A W&B table export of rows 0..5 with an `image` column (masks and boxes by row;
    a row without its own mask gets a good one) and an `id` column."""
    boxes = boxes or {}
    rows = [
        [row, _cell(folder, row, masks.get(row, _halves(H, W)), boxes.get(row, [_box()]))]
        for row in range(6)
    ]
    image_type = {
        "wb_type": "image-file",
        "params": {
            "box_layers": {"predictions": {}},
            "mask_layers": {"ground_truth": {}},
            "class_map": {"1": "sky", "2": "road"},
        },
    }
    doc = {
        "_type": "table",
        "columns": ["id", "image"],
        "data": rows,
        "ncols": 2,
        "nrows": len(rows),
        "column_types": {
            "wb_type": "typedDict",
            "params": {"type_map": {"id": {"wb_type": "number"}, "image": image_type}},
        },
    }
    path = folder / "segments.table.json"
    path.write_text(json.dumps(doc))
    return path


def rgba_export(folder: Path) -> Path:
    rgba = np.zeros((H, W, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    return write_export(folder, {1: rgba, 4: rgba})


def test_an_rgba_mask_drops_that_cells_layer_and_the_table_loads(tmp_path: Path) -> None:
    path = rgba_export(tmp_path)
    with pytest.warns(CellWarning) as caught:
        table = open_table(path)
    assert [str(w.message) for w in caught] == [f"`{path}`: {RGBA_NOTE}"]
    assert table.notes == [RGBA_NOTE]
    assert len(table) == 6 and table.get_column("id") == [0, 1, 2, 3, 4, 5]
    images = table.get_column("image")
    assert [list(image.masks_png) for image in images] == [
        ["ground_truth"],
        [],
        ["ground_truth"],
        ["ground_truth"],
        [],
        ["ground_truth"],
    ]
    assert images[0].mask("ground_truth")[:, 0].tolist() == [1] * (H // 2) + [2] * (H // 2)
    assert all(len(image.boxes["predictions"]) == 1 for image in images)  # boxes kept
    assert images[1].to_numpy()[0, 0].tolist() == [10, 10, 10]  # the image itself kept
    assert table.type.columns["image"].mask_layers == ("ground_truth",)


def test_a_mask_at_twice_or_half_the_size_is_resized_nearest_neighbour(tmp_path: Path) -> None:
    big = np.kron(_halves(H, W), np.ones((2, 2), dtype=np.uint8))  # every pixel as 2x2
    big[0:2, 0:2] = 3  # the top-left pixel of the image: class 3
    small = _halves(H // 2, W // 2)
    small[0, 0] = 4  # the top-left 2x2 pixels of the image: class 4
    path = write_export(tmp_path, {2: big, 3: small})
    with pytest.warns(CellWarning):
        table = open_table(path)
    assert table.notes == [
        "column `image`: mask layer `ground_truth` resized on 2 rows (2, 3): "
        f"from {2 * H}x{2 * W} to {H}x{W} (nearest neighbour) (row 2); "
        f"from {H // 2}x{W // 2} to {H}x{W} (nearest neighbour) (row 3)"
    ]
    images = table.get_column("image")
    shrunk, grown = (images[i].mask("ground_truth").copy() for i in (2, 3))
    expected = _halves(H, W)
    assert shrunk.shape == grown.shape == (H, W)
    assert shrunk[0, 0] == 3 and shrunk[0, 1] == 1 and shrunk[1, 0] == 1
    shrunk[0, 0] = 1
    assert (shrunk == expected).all()
    assert grown[:2, :2].tolist() == [[4, 4], [4, 4]] and grown[2, 2] == 1
    grown[:2, :2] = 1
    assert (grown == expected).all()


def test_a_mask_of_another_size_and_a_malformed_box_drop_their_layers(tmp_path: Path) -> None:
    odd = _halves(H + 5, W)  # no integer multiple: dropped
    bad_boxes = [_box(), {"position": {"minX": 0.1}, "class_id": 1}]
    no_class = {key: value for key, value in _box().items() if key != "class_id"}
    path = write_export(tmp_path, {0: odd}, {2: bad_boxes, 5: [no_class]})
    with pytest.warns(CellWarning):
        table = open_table(path)
    assert table.notes == [
        "column `image`: mask layer `ground_truth` dropped on 1 row (0): "
        f"shape ({H + 5}, {W}) does not match the image's {H}x{W}",
        "column `image`: box layer `predictions` dropped on 2 rows (2, 5): "
        "box 1: a box position needs minX/maxX/minY/maxY or middle/width/height, got keys "
        "['minX'] (row 2); box 0: a box needs a 'class_id' (row 5)",
    ]
    images = table.get_column("image")
    assert [list(image.boxes) for image in images] == [["predictions"]] * 2 + [[]] + [
        ["predictions"]
    ] * 2 + [[]]
    assert list(images[0].masks_png) == [] and list(images[1].masks_png) == ["ground_truth"]


def test_strict_refuses_with_the_message_it_always_gave(tmp_path: Path) -> None:
    path = rgba_export(tmp_path)
    for opened in (lambda: open_table(path, strict=True), lambda: read_wandb(path, strict=True)):
        with pytest.raises(ValueError) as refused:
            opened()
        assert str(refused.value) == f"`{path}`, {OLD_RGBA_ERROR}"


def test_image_without_problems_list_still_raises() -> None:
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"a mask must be an HxW array of class ids"):
        Image(np.zeros((4, 6), dtype=np.uint8), masks={"gt": rgba})
    problems: list = []
    image = Image(np.zeros((4, 6), dtype=np.uint8), masks={"gt": rgba}, problems=problems)
    assert image.masks_png == {} and [p.what for p in problems] == ["mask layer `gt` dropped"]


def test_a_joined_table_names_the_side_of_each_note(tmp_path: Path) -> None:
    rgba_export(tmp_path)
    (tmp_path / "labels.table.json").write_text(
        json.dumps({"columns": ["id", "label"], "data": [[i, f"l{i}"] for i in range(6)]})
    )
    joined = tmp_path / "j.joined-table.json"
    joined.write_text(
        json.dumps(
            {
                "_type": "joined-table",
                "table1": "segments.table.json",
                "table2": "labels.table.json",
                "join_key": "id",
            }
        )
    )
    with pytest.warns(CellWarning):
        table = open_table(joined)
    assert table.notes == [f"table1: {RGBA_NOTE}"]
    with pytest.raises(ValueError, match="a mask must be an HxW array"):
        open_table(joined, strict=True)


def test_view_notes_name_the_table_when_a_view_reads_two(tmp_path: Path) -> None:
    with pytest.warns(CellWarning):
        table = open_table(rgba_export(tmp_path))
    view = View.of(table, "segments")
    assert view.notes() == [RGBA_NOTE]
    view.engine.add_table("other", open_table(write_export(tmp_path / "b", {})))
    compared = view.with_query(compare_with={"table": "other"})
    assert compared.notes() == [f"`segments`: {RGBA_NOTE}"]


# --------------------------------------------------------------------------- the command


def _panels(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panels_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_panels_info_prints_the_notes_and_strict_refuses(tmp_path: Path) -> None:
    path = rgba_export(tmp_path)
    shown = _panels("info", str(path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"\nnote: {RGBA_NOTE}\n" in shown.stdout
    assert shown.stdout.startswith(f"{path}: 6 rows, 2 columns\n")
    assert shown.stderr == ""  # the note is said once, not warned too
    as_json = _panels("info", "--json", str(path), cwd=tmp_path)
    assert json.loads(as_json.stdout)["notes"] == [RGBA_NOTE]
    refused = _panels("info", "--strict", str(path), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr == f"panels: error: `{path}`, {OLD_RGBA_ERROR}\n"


def test_panels_serve_strict_refuses_before_serving(tmp_path: Path) -> None:
    path = rgba_export(tmp_path)
    refused = _panels("serve", "--strict", str(path), "--port", "1", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"panels: error: panels serve: no table could be opened: `{path}`, {OLD_RGBA_ERROR}\n"
    )


def test_serve_says_the_notes_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tables, _ = prepare([rgba_export(tmp_path)])
    assert tables["segments"].notes == [RGBA_NOTE]
    assert capsys.readouterr().err == f"typed-panels: table `segments`: {RGBA_NOTE}\n"


def test_panels_export_shows_the_notes_and_strict_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = rgba_export(tmp_path)
    report = tmp_path / "report.html"
    assert main(["export", str(path), "-o", str(report)]) == 0
    assert capsys.readouterr().err == f"panels: note: `{path}`: {RGBA_NOTE}\n"
    html = report.read_text()
    assert "mask layer" in html and "dropped on 2 rows (1, 4)" in html
    assert "shape (24, 36, 4) is not HxW class ids" in html
    report.unlink()
    assert main(["export", "--strict", str(path), "-o", str(report)]) == 2
    assert capsys.readouterr().err == f"panels: error: `{path}`, {OLD_RGBA_ERROR}\n"
    assert not report.exists()


def test_an_unreadable_image_or_mask_file_empties_only_its_cell(tmp_path: Path) -> None:
    path = write_export(tmp_path, {})
    (tmp_path / "media/images/2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "media/images/mask/3.mask.png").write_text("not a picture")
    with pytest.warns(CellWarning):
        table = open_table(path)
    assert table.notes == [
        "column `image`: image left empty on 1 row (2): its file is not an image that can be read",
        "column `image`: mask layer `ground_truth` dropped on 1 row (3): "
        "its file is not an image that can be read",
    ]
    images = table.get_column("image")
    assert images[2] is None and images[1] is not None and images[4] is not None
    assert list(images[3].masks_png) == [] and list(images[3].boxes) == ["predictions"]
    with pytest.raises(ValueError, match=r"column `image`, row 2: image file `.*2\.png` is not"):
        open_table(path, strict=True)


def test_the_card_shows_the_notes_as_text(tmp_path: Path) -> None:
    from panels_core.workspace.app import Workspace

    rgba = np.zeros((H, W, 4), dtype=np.uint8)
    path = write_export(tmp_path, {0: rgba})
    doc = json.loads(path.read_text())  # a layer name from the file that is markup
    doc["data"][0][1]["masks"] = {"<b>gt</b>": doc["data"][0][1]["masks"]["ground_truth"]}
    path.write_text(json.dumps(doc))
    with pytest.warns(CellWarning):
        table = open_table(path)
    workspace = Workspace({"segments": table})
    expected = (
        "⚠ column `image`: mask layer `&lt;b&gt;gt&lt;/b&gt;` dropped on 1 row (0): "
        f"shape ({H}, {W}, 4) is not HxW class ids"
    )
    assert workspace.cards and all(card.notes.visible for card in workspace.cards)
    assert {card.notes.object for card in workspace.cards} == {expected}
    plain = Workspace({"clean": open_table(write_export(tmp_path / "clean", {}))})
    assert not any(card.notes.visible or card.notes.object for card in plain.cards)
