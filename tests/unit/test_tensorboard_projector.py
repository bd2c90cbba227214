"""TensorBoard projector folders as PyTorch's ``add_embedding`` and TensorFlow's projector
plugin write them: every embedding of a config, ``.bytes`` tensors, sprite sheets; and the
display names of Hugging Face-style Parquet shards."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage

from panels_core.data.sources import open_table, projector_embeddings
from panels_core.data.sources.pbtxt import parse_pbtxt
from panels_core.panel_registry import registry
from panels_core.query.engine import Engine
from panels_core.types import EmbeddingType, ImageType
from panels_core.workspace import TableSource
from panels_core.workspace.app import Workspace
from panels_core.workspace.loading import display_name, load_sources, open_source
from panels_core.workspace.saving import read_spec
from panels_core.workspace.server import prepare

TILE_W, TILE_H = 4, 3  # single_image_dim is width first; unequal sides catch a swap


def tile_colour(i: int) -> tuple[int, int, int]:
    return (10 + 40 * i, 250 - 30 * i, 7 * i)


def _sprite(path: Path, n: int, per_row: int | None = None) -> None:
    """A sprite sheet as TensorBoard expects it: ceil(sqrt(n)) tiles per row, row-major,
    tile i filled with its own colour."""
    per_row = per_row or math.ceil(math.sqrt(n))
    rows = math.ceil(n / per_row)
    sheet = PILImage.new("RGB", (per_row * TILE_W, rows * TILE_H), (0, 0, 0))
    for i in range(n):
        r, c = divmod(i, per_row)
        box = (c * TILE_W, r * TILE_H, (c + 1) * TILE_W, (r + 1) * TILE_H)
        sheet.paste(tile_colour(i), box)
    sheet.save(path)


def _tsv(path: Path, rows: list[list[float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(repr(v) for v in row) + "\n" for row in rows))


def add_embedding(
    root: Path, tag: str, step: int, vectors: list[list[float]], labels: list[str] | None
) -> None:
    """What ``SummaryWriter.add_embedding`` writes: ``{step:05d}/{tag}/`` files and one more
    ``embeddings { ... }`` block appended to ``projector_config.pbtxt``."""
    sub = f"{step:05d}/{tag}"
    _tsv(root / sub / "tensors.tsv", vectors)
    block = (
        f'embeddings {{\n  tensor_name: "{tag}:{step:05d}"\n  tensor_path: "{sub}/tensors.tsv"\n'
    )
    if labels is not None:
        (root / sub / "metadata.tsv").write_text("".join(f"{x}\n" for x in labels))
        block += f'  metadata_path: "{sub}/metadata.tsv"\n'
        _sprite(root / sub / "sprite.png", len(vectors))
        block += (
            f'  sprite {{\n    image_path: "{sub}/sprite.png"\n'
            f"    single_image_dim: {TILE_W}\n    single_image_dim: {TILE_H}\n  }}\n"
        )
    with (root / "projector_config.pbtxt").open("a") as config:
        config.write(block + "}\n")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A PyTorch-style projector folder with two embeddings, the first with labels and sprites."""
    root = tmp_path / "runs"
    root.mkdir()
    digits = [[float(i), float(i % 3), 0.5] for i in range(7)]
    add_embedding(root, "default", 0, digits, [f"d{i}" for i in range(7)])
    add_embedding(root, "words", 3, [[1.0, 2.0], [3.0, 4.0]], None)
    return root


def _pixels(image) -> set[tuple[int, ...]]:
    with PILImage.open(io.BytesIO(image.data)) as img:
        return {tuple(int(v) for v in p) for p in np.asarray(img.convert("RGB")).reshape(-1, 3)}


# --------------------------------------------------------------------------- every embedding


def test_every_embedding_of_a_config_is_listed_and_opens_by_name(runs: Path) -> None:
    assert projector_embeddings(runs) == ["default:00000", "words:00003"]
    digits = open_table(runs, tensor_name="default:00000")
    assert digits.columns == ["embedding", "label", "sprite"]
    assert digits.get_column("label") == [f"d{i}" for i in range(7)]
    assert digits.get_column("embedding")[6] == [6.0, 0.0, 0.5]
    words = open_table(runs / "projector_config.pbtxt", tensor_name="words:00003")
    assert words.columns == ["embedding"]
    assert words.get_column("embedding") == [[1.0, 2.0], [3.0, 4.0]]


def test_a_config_with_several_embeddings_names_the_choices(runs: Path) -> None:
    config = runs / "projector_config.pbtxt"
    with pytest.raises(ValueError) as error:
        open_table(runs)
    assert str(error.value) == (
        f"`{config}` lists 2 embeddings: 'default:00000', 'words:00003'; open one with "
        "open_table(path, tensor_name='default:00000') (`panels info --tensor-name`), or serve "
        "the folder (`panels serve FOLDER` shows each as its own table)"
    )
    with pytest.raises(ValueError) as error:
        open_table(runs, tensor_name="default")
    assert str(error.value) == (
        f"`{config}` has no embedding named 'default'; it has 'default:00000', 'words:00003'"
    )


def test_serving_the_folder_gives_one_table_per_embedding_and_saves_the_choice(
    runs: Path, tmp_path: Path
) -> None:
    tables, options = prepare([runs])
    assert list(tables) == ["default:00000", "words:00003"]
    assert len(tables["default:00000"]) == 7 and len(tables["words:00003"]) == 2
    assert options["sources"]["words:00003"] == TableSource(
        path=str(runs.resolve()), tensor_name="words:00003"
    )
    ws = Workspace(engine=Engine(tables), **options)
    saved = ws.save(tmp_path / "ws.json")
    assert json.loads(saved.read_text())["tables"]["words:00003"] == {
        "path": "runs",
        "tensor_name": "words:00003",
    }
    source = read_spec(saved).tables["words:00003"]
    again = open_source("words:00003", source, tmp_path)
    assert again.table.get_column("embedding") == [[1.0, 2.0], [3.0, 4.0]]


def test_one_broken_embedding_leaves_the_others_served(runs: Path) -> None:
    (runs / "00003/words/tensors.tsv").write_text("1.0\t2.0\n3.0\n")
    failed: dict[str, str] = {}
    loaded = load_sources([runs], failed=failed)
    assert list(loaded) == ["default:00000"]
    assert list(failed) == ["runs: words:00003"]
    assert re.search(
        r"words/tensors\.tsv`: line 2 has 1 values, the others 2", failed["runs: words:00003"]
    )


def test_a_single_embedding_config_opens_without_a_name(tmp_path: Path) -> None:
    add_embedding(tmp_path, "emb", 1, [[0.0, 1.0]], None)
    assert open_table(tmp_path).get_column("embedding") == [[0.0, 1.0]]
    assert list(load_sources([tmp_path])) == [tmp_path.name]


# --------------------------------------------------------------------------- .bytes tensors


def _bytes_config(folder: Path, shape: str) -> None:
    (folder / "projector_config.pbtxt").write_text(
        "# written by the TensorFlow projector plugin\n"
        f"embeddings {{\n  tensor_name: 'vectors'\n  tensor_path: 'vecs.bytes'\n{shape}}}\n"
    )


def test_bytes_tensor_opens_with_the_configs_shape(tmp_path: Path) -> None:
    vectors = np.arange(12, dtype="<f4").reshape(3, 4) / 4
    vectors.tofile(tmp_path / "vecs.bytes")
    (tmp_path / "metadata.tsv").write_text("a\nb\nc\n")
    _bytes_config(tmp_path, "  tensor_shape: [3, 4]\n")
    table = open_table(tmp_path)
    assert table.type.columns["embedding"] == EmbeddingType(dim=4)
    assert table.get_column("embedding", convert_to="numpy").tolist() == vectors.tolist()
    _bytes_config(tmp_path, "  tensor_shape: 6\n  tensor_shape: 2\n")  # the repeated-field form
    assert open_table(tmp_path).get_column("embedding")[5] == [2.5, 2.75]


def test_bytes_tensor_of_the_wrong_size_names_file_and_sizes(tmp_path: Path) -> None:
    np.zeros(10, dtype="<f4").tofile(tmp_path / "vecs.bytes")
    _bytes_config(tmp_path, "  tensor_shape: [3, 4]\n")
    with pytest.raises(ValueError) as error:
        open_table(tmp_path)
    assert str(error.value) == (
        f"`{tmp_path / 'vecs.bytes'}` is 40 bytes, but tensor_shape [3, 4] of float32 needs "
        "3 x 4 x 4 = 48 bytes; fix tensor_shape or rewrite the file"
    )
    _bytes_config(tmp_path, "")
    with pytest.raises(ValueError, match=r"needs its shape in the config: tensor_shape: \[N, D\]"):
        open_table(tmp_path)


# --------------------------------------------------------------------------- sprites


def test_sprite_tiles_become_an_image_column_cut_row_major(runs: Path) -> None:
    table = open_table(runs, tensor_name="default:00000")
    assert isinstance(table.type.columns["sprite"], ImageType)
    tiles = table.get_column("sprite")
    assert [(t.width, t.height) for t in tiles] == [(TILE_W, TILE_H)] * 7
    assert _pixels(tiles[0]) == {tile_colour(0)}
    assert _pixels(tiles[3]) == {tile_colour(3)}  # first tile of the second row (3 per row)
    assert _pixels(tiles[6]) == {tile_colour(6)}
    fitting = {panel.kind: panel for panel in registry.compatible(table.type)}
    assert fitting["projection"].config.image == "sprite"  # the hover
    assert fitting["gallery"].config.image == "sprite"


def test_pytorch_sprite_sheet_that_is_not_square(tmp_path: Path) -> None:
    # torchvision's make_grid: ceil(sqrt(n)) tiles per row, only as many rows as needed
    add_embedding(tmp_path, "default", 0, [[float(i)] for i in range(5)], list("abcde"))
    with PILImage.open(tmp_path / "00000/default/sprite.png") as sheet:
        assert sheet.size == (3 * TILE_W, 2 * TILE_H)
    tiles = open_table(tmp_path).get_column("sprite")
    assert [_pixels(t) for t in tiles] == [{tile_colour(i)} for i in range(5)]


def test_palette_and_cmyk_sprites_keep_their_colours(tmp_path: Path) -> None:
    add_embedding(tmp_path, "default", 0, [[float(i)] for i in range(4)], list("abcd"))
    sprite = tmp_path / "00000/default/sprite.png"
    with PILImage.open(sprite) as sheet:
        sheet.convert("P", palette=PILImage.Palette.ADAPTIVE, colors=8).save(sprite)
    assert [_pixels(t) for t in open_table(tmp_path).get_column("sprite")] == [
        {tile_colour(i)} for i in range(4)
    ]
    jpeg = tmp_path / "00000/default/sprite.jpg"
    PILImage.new("CMYK", (2 * TILE_W, 2 * TILE_H), (0, 255, 255, 0)).save(jpeg)
    config = tmp_path / "projector_config.pbtxt"
    config.write_text(config.read_text().replace("sprite.png", "sprite.jpg"))
    reds = [_pixels(t) for t in open_table(tmp_path).get_column("sprite")]
    assert all(len(p) == 1 and next(iter(p))[0] > 200 > next(iter(p))[1] for p in reds)
    sprite.write_bytes(b"not a png")
    config.write_text(config.read_text().replace("sprite.jpg", "sprite.png"))
    with pytest.raises(ValueError, match=r"^cannot read the sprite image `.*sprite\.png`: cannot"):
        open_table(tmp_path)


def test_sprite_with_too_few_tiles_is_refused(tmp_path: Path) -> None:
    add_embedding(tmp_path, "default", 0, [[float(i)] for i in range(5)], list("abcde"))
    _sprite(tmp_path / "00000/default/sprite.png", 3, per_row=2)
    with pytest.raises(ValueError) as error:
        open_table(tmp_path)
    assert str(error.value) == (
        f"the sprite image `{tmp_path / '00000/default/sprite.png'}` is 8x6 pixels: 2 x 2 tiles "
        "of 4x3, fewer than the 5 vectors; the sheet needs one tile per vector, row by row"
    )


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("tensor_path", "../outside.tsv", "contains `..`"),
        ("metadata_path", "/etc/passwd", "is an absolute path"),
        ("image_path", "../sprite.png", "contains `..`"),
    ],
)
def test_config_paths_stay_in_the_folder(tmp_path: Path, field: str, value: str, why: str) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    _tsv(tmp_path / "outside.tsv", [[1.0]])
    _tsv(folder / "tensors.tsv", [[1.0]])
    _sprite(tmp_path / "sprite.png", 1)
    paths = {"tensor_path": "tensors.tsv", field: value}
    lines = "".join(f'  {k}: "{v}"\n' for k, v in paths.items() if k != "image_path")
    if field == "image_path":
        lines += f'  sprite {{ image_path: "{value}" single_image_dim: [4, 3] }}\n'
    (folder / "projector_config.pbtxt").write_text(
        f'embeddings {{\n  tensor_name: "t"\n{lines}}}\n'
    )
    with pytest.raises(ValueError) as error:
        open_table(folder)
    config = folder / "projector_config.pbtxt"
    assert str(error.value) == (
        f"`{config}`: embedding 't': {field} `{value}` {why}, "
        f"{'which could leave' if why.startswith('contains') else 'not a file in'} the folder "
        f"of `{config}`; keep the projector's files in its folder"
    )


def test_a_sprite_symlinked_out_of_the_folder_or_missing_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    add_embedding(folder, "default", 0, [[1.0], [2.0]], ["a", "b"])
    sprite = folder / "00000/default/sprite.png"
    config = folder / "projector_config.pbtxt"
    sprite.rename(tmp_path / "elsewhere.png")
    with pytest.raises(FileNotFoundError) as error:
        open_table(folder)
    assert str(error.value) == (
        f"`{config}`: embedding 'default:00000': image_path `{sprite}` does not exist"
    )
    sprite.symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(ValueError) as error:
        open_table(folder)
    assert str(error.value) == (
        f"`{config}`: embedding 'default:00000': image_path `00000/default/sprite.png` leads "
        f"out of the folder of `{config}` through a symlink; keep the projector's files in its "
        "folder"
    )


def test_absolute_paths_inside_the_folder_are_read(tmp_path: Path) -> None:
    _tsv(tmp_path / "logs" / "tensors.tsv", [[1.0, 2.0]])
    (tmp_path / "logs" / "metadata.tsv").write_text("only\n")
    (tmp_path / "logs" / "projector_config.pbtxt").write_text(
        f'embeddings {{ tensor_name: "t" tensor_path: "{tmp_path / "logs" / "tensors.tsv"}"\n'
        f'  metadata_path: "{tmp_path / "logs" / "metadata.tsv"}" }}\n'
    )
    assert open_table(tmp_path / "logs").get_column("label") == ["only"]


# --------------------------------------------------------------------------- protobuf text


def test_pbtxt_forms() -> None:
    text = (
        "# comment\nembeddings {\n  tensor_name: 'a' \"b\"\n  tensor_shape: [2, 3]\n"
        '  sprite: { single_image_dim: 28 single_image_dim: 28 }\n}\nembeddings < tensor_name: "c\\"" >\n'
    )
    assert parse_pbtxt(text) == {
        "embeddings": [
            {
                "tensor_name": ["ab"],
                "tensor_shape": [2, 3],
                "sprite": [{"single_image_dim": [28, 28]}],
            },
            {"tensor_name": ['c"']},
        ]
    }
    with pytest.raises(ValueError, match=r"^`p.pbtxt` ends inside a field or block; is a closing"):
        parse_pbtxt("embeddings { tensor_name: 'a'", "p.pbtxt")
    with pytest.raises(ValueError, match=r"^`p.pbtxt`: line 2: cannot read '@x'"):
        parse_pbtxt("a: 1\n@x", "p.pbtxt")
    with pytest.raises(ValueError, match=r"^`p.pbtxt` nests blocks more than 50 deep$"):
        parse_pbtxt("a {" * 5000, "p.pbtxt")


# --------------------------------------------------------------------------- display names


def _parquet(path: Path, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": list(range(rows))}), path)
    return path


def test_hugging_face_shards_are_named_by_dataset_and_split(tmp_path: Path) -> None:
    mnist = tmp_path / "mnist" / "data"
    paths = [
        _parquet(mnist / "train-00000-of-00002.parquet", 3),
        _parquet(mnist / "train-00001-of-00002.parquet", 2),
        _parquet(mnist / "test-00000-of-00001.parquet", 1),
        _parquet(tmp_path / "Downloads" / "validation-00000-of-00003.parquet", 4),
        _parquet(tmp_path / "scores.parquet", 5),
    ]
    loaded = load_sources(paths)
    assert {name: len(item.table) for name, item in loaded.items()} == {
        "mnist/train": 3,
        "mnist/train-2": 2,
        "mnist/test": 1,
        "validation": 4,
        "scores": 5,
    }
    assert display_name("imdb/plain_text/train-00000-of-00001.parquet") == "plain_text/train"
    assert display_name("run.table.json") == "run"


def test_panels_info_picks_an_embedding_with_tensor_name(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from panels_core.cli import main

    out = io.StringIO()
    assert main(["info", str(runs), "--json", "--tensor-name", "words:00003"], out=out) == 0
    info = json.loads(out.getvalue())
    assert (info["rows"], [c["name"] for c in info["columns"]]) == (2, ["embedding"])
    assert main(["info", str(runs)], out=io.StringIO()) == 2
    assert "lists 2 embeddings: 'default:00000', 'words:00003'" in capsys.readouterr().err
    csv = tmp_path / "x.csv"
    csv.write_text("a\n1\n")
    assert main(["info", str(csv), "--tensor-name", "words:00003"], out=io.StringIO()) == 2
    assert capsys.readouterr().err == (
        "panels: error: --tensor-name applies to TensorBoard projector configs; "
        f"`{csv}` is read as csv\n"
    )
