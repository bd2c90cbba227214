"""Media that data names is read only inside its own folder: W&B image-file cells in the
export's folder, Store media references in the store's media/ folder.

Each test puts a readable image (``secret.png``) outside that folder and references
to it by ``..``, an absolute path and a symlink: those cells come back empty, the
table loads, and a warning names the rows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage

from panels_core.data.media import Image
from panels_core.data.sources import open_table
from panels_core.data.store import Store
from panels_core.data.table import Table
from panels_core.paths import OutsideFolder, resolve_inside


def png(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.full((4, 4), value, dtype=np.uint8)).save(path)
    return path


def test_resolve_inside_refuses_each_way_out(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "out").symlink_to(tmp_path, target_is_directory=True)
    assert resolve_inside(folder, "sub/a.png") == folder / "sub" / "a.png"
    cases = {
        "../a.png": "`../a.png` contains `..`, which could leave the folder",
        "sub/../../a.png": "contains `..`",
        "/etc/passwd": "`/etc/passwd` is an absolute path, not a file in the folder",
        "out/a.png": "`out/a.png` leads out of the folder through a symlink",
        "": "an empty path",
    }
    for relative, why in cases.items():
        with pytest.raises(OutsideFolder, match=why.replace("(", r"\(")):
            resolve_inside(folder, relative, "the folder")


def test_wandb_image_paths_outside_the_export_leave_their_cells_empty(tmp_path: Path) -> None:
    export = tmp_path / "export"
    png(export / "media/images/ok.png", 10)
    secret = png(tmp_path / "secret.png", 250)
    (export / "media/images/link.png").symlink_to(secret)
    ok = {"_type": "image-file", "path": "media/images/ok.png"}
    refs = [
        ok,
        {"_type": "image-file", "path": "../secret.png"},
        {"_type": "image-file", "path": str(secret)},
        {"_type": "image-file", "path": "media/images/link.png"},
        {"_type": "image-file", "path": "media/../../secret.png"},
        {**ok, "masks": {"seg": {"_type": "mask", "path": "../secret.png"}}},
        {**ok, "classes": {"type": "classes-file", "path": str(tmp_path / "x.json")}},
    ]
    path = export / "t.table.json"
    path.write_text(
        json.dumps({"columns": ["id", "img"], "data": [[i, r] for i, r in enumerate(refs)]})
    )

    with pytest.warns(RuntimeWarning) as caught:
        table = open_table(path)
    (warning,) = [w for w in caught if "image cells left empty" in str(w.message)]
    assert str(warning.message).startswith(
        f"`{path}`: 6 image cells left empty (`img` row 1, `img` row 2, `img` row 3, `img` row 4,"
        " `img` row 5, `img` row 6): `../secret.png` contains `..`, which could leave the "
        "export's folder; media files are read only inside the export's folder"
    )
    images = table.get_column("img")
    assert isinstance(images[0], Image) and images[0].to_numpy()[0, 0] == 10
    assert images[1:] == [None] * 6
    assert table.get_column("id") == list(range(7))


def test_wandb_files_a_table_reads_whole_refuse_paths_outside_naming_the_export(
    tmp_path: Path,
) -> None:
    """A numpy column's .npz and a joined table's sides are read only inside the export's
    folder; one outside is refused with a message naming the export and the column/key."""
    export = tmp_path / "export"
    export.mkdir()
    np.savez(tmp_path / "secret.npz", emb=np.zeros((2, 3)))
    column_type = {
        "wb_type": "ndarray",
        "params": {"serialization_path": {"key": "emb", "path": "../secret.npz"}},
    }
    numpy_table = export / "n.table.json"
    numpy_table.write_text(
        json.dumps(
            {
                "columns": ["emb"],
                "data": [[None], [None]],
                "column_types": {
                    "wb_type": "typedDict",
                    "params": {"type_map": {"emb": column_type}},
                },
            }
        )
    )
    with pytest.raises(ValueError) as caught:
        open_table(numpy_table)
    assert str(caught.value) == (
        f"`{numpy_table}`, column `emb`: `../secret.npz` contains `..`, which could leave "
        "the export's folder"
    )
    joined = export / "j.joined-table.json"
    secret_table = tmp_path / "s.table.json"
    secret_table.write_text(json.dumps({"columns": ["a"], "data": [[1]]}))
    joined.write_text(
        json.dumps(
            {
                "_type": "joined-table",
                "table1": str(secret_table),
                "table2": "n.table.json",
                "join_key": "a",
            }
        )
    )
    with pytest.raises(ValueError) as caught:
        open_table(joined)
    assert str(caught.value) == (
        f"`{joined}`: `table1`: `{secret_table}` is an absolute path, not a file in the "
        "export's folder"
    )


def test_store_media_references_outside_media_leave_their_cells_empty(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    images = [Image(np.full((3, 3, 3), v, dtype=np.uint8)) for v in (1, 2, 3, 4)]
    store.add(Table(columns=["id", "image"], data=[[i, im] for i, im in enumerate(images)]), "t")
    secret = png(tmp_path / "secret.png", 250)
    fake = hashlib.sha256(b"not stored").hexdigest()
    (tmp_path / "store/media" / f"{fake}.png").symlink_to(secret)

    file = tmp_path / "store/tables/t/v0/table.parquet"
    raw = pq.read_table(file)
    column = raw.column("image").combine_chunks()
    names = [column.type.field(i).name for i in range(column.type.num_fields)]
    children = column.flatten()
    hashes = children[names.index("sha256")].to_pylist()
    hashes[1], hashes[2] = "../../../secret", fake
    children[names.index("sha256")] = pa.array(hashes, pa.string())
    tampered = pa.StructArray.from_arrays(children, fields=list(column.type))
    pq.write_table(
        raw.set_column(raw.schema.get_field_index("image"), raw.field("image"), tampered), file
    )

    with pytest.warns(RuntimeWarning) as caught:
        table = store.get("t:v0")
    (warning,) = [w for w in caught if "image cells left empty" in str(w.message)]
    assert str(warning.message) == (
        f"`{file}`: 2 image cells left empty (rows 1, 2): `../../../secret` is not a sha256 of "
        "the store's media"
    )
    got = table.get_column("image")
    assert got[1] is None and got[2] is None
    assert [im.to_numpy()[0, 0, 0] for im in (got[0], got[3])] == [1, 4]
