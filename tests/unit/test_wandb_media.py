"""Every W&B media ``_type`` is a typed column with a real cell: audio, video, HTML, 3D
objects, Bokeh and Plotly plots, molecules.

The fixtures are small files in the shapes W&B writes (a real PCM WAV, a few bytes
named ``.mp4``, an HTML page with a script, ``.pts.json`` point lists, a PDB and an SDF
file) under ``media/...`` beside a ``*.table.json`` export.
"""

from __future__ import annotations

import base64
import io
import json
import re
import warnings
import wave
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
from PIL import Image as PILImage

from panels_builtin.cells import CellRenderer, cell_columns
from panels_builtin.media_cells import media_cell
from panels_core import open_table
from panels_core.data.media_files import EMBED_BYTES, MediaFile
from panels_core.data.table import Table
from panels_core.panel import Panel, PanelConfig
from panels_core.slots import Column, specificity
from panels_core.types import (
    AudioType,
    HtmlType,
    ImageType,
    MoleculeType,
    Object3DType,
    OptionalType,
    PlotType,
    TableType,
    VideoType,
    describe,
    is_assignable,
    parse_type,
    type_of,
)

PWN = "<script>window.__pwned='html cell';parent.__pwned='html cell'</script>"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
PDB = (
    "HEADER    TEST\n"
    "ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00           N\n"
    "ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00  0.00           C\n"
    "HETATM    3  O   HOH A   2       1.000   2.000   3.000  1.00  0.00           O\n"
    "END\n"
)
SDF = "water\n  made by hand\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n"


def write_wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> bytes:
    """A mono 16-bit WAV: a 440 Hz tone rising from silence to loud; its bytes."""
    t = np.arange(int(seconds * rate)) / rate
    samples = np.sin(2 * np.pi * 440 * t) * np.linspace(0, 1, t.size) * 20000
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path.read_bytes()


def _write(folder: Path, relative: str, data: bytes | str) -> None:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def write_media_export(folder: Path) -> Path:
    """``media.table.json``: row 0 holds one cell of every media kind, row 1 nulls."""
    write_wav(folder / "media/audio/tone.wav")
    _write(folder, "media/videos/clip.mp4", MP4)
    _write(folder, "media/html/page.html", f"<p>hello</p>{PWN}")
    _write(folder, "media/object3D/cloud.pts.json", json.dumps([[0, 0, 0], [1, 0, 1, 3]]))
    _write(folder, "media/bokeh/fig.bokeh.json", '{"doc": "<script>alert(1)</script>"}')
    _write(folder, "media/plotly/fig.plotly.json", '{"data": []}')
    _write(folder, "media/molecule/ala.pdb", PDB)
    row = [
        0,
        {"_type": "audio-file", "path": "media/audio/tone.wav", "sample_rate": 8000,
         "caption": "tone <b>", "sha256": "x", "size": 8044},
        {"_type": "video-file", "path": "media/videos/clip.mp4", "width": 2, "height": 2},
        {"_type": "html-file", "path": "media/html/page.html"},
        {"_type": "object3D-file", "path": "media/object3D/cloud.pts.json"},
        {"_type": "bokeh-file", "path": "media/bokeh/fig.bokeh.json"},
        {"_type": "plotly-file", "path": "media/plotly/fig.plotly.json"},
        {"_type": "molecule-file", "path": "media/molecule/ala.pdb"},
    ]  # fmt: skip
    names = ["id", "audio", "video", "html", "cloud", "bokeh", "plotly", "molecule"]
    export = {"_type": "table", "columns": names, "data": [row, [1] + [None] * 7]}
    path = folder / "media.table.json"
    path.write_text(json.dumps(export), "utf-8")
    return path


def _export(folder: Path, column: str, cells: list, wb_type: dict | None = None) -> Path:
    export = {"_type": "table", "columns": [column], "data": [[c] for c in cells]}
    if wb_type is not None:
        export["column_types"] = {
            "wb_type": "typedDict",
            "params": {"type_map": {column: wb_type}},
        }
    path = folder / "t.table.json"
    path.write_text(json.dumps(export), "utf-8")
    return path


def _cells(table: Table, column: str) -> list[str]:
    """The cells the table panel draws for ``column``, row by row."""
    (shown,) = cell_columns(table.type, [column])
    return list(CellRenderer().column(shown, table.to_arrow().column(column).to_pylist()))


# --------------------------------------------------------------------------- types


def test_every_media_kind_is_a_typed_column(tmp_path) -> None:
    table = open_table(write_media_export(tmp_path))
    shown = {name: describe(t) for name, t in table.type.columns.items()}
    assert shown == {
        "id": "integer",
        "audio": "optional[audio]",
        "video": "optional[video]",
        "html": "optional[html]",
        "cloud": "optional[object3d]",
        "bokeh": "optional[plot[bokeh]]",
        "plotly": "optional[plot[plotly]]",
        "molecule": "optional[molecule]",
    }
    audio = table.get_column("audio")[0]
    assert (audio.name, audio.format, audio.caption) == ("tone.wav", "wav", "tone <b>")
    assert (audio.sample_rate, audio.duration) == (8000.0, 0.5)
    assert audio.data == (tmp_path / "media/audio/tone.wav").read_bytes()
    assert table.get_column("cloud")[0].count == 2
    assert table.get_column("molecule")[0].count == 3
    assert table.get_column("bokeh")[0].data is None  # a plot's script never reaches a page
    assert table.get_column("audio")[1] is None


def test_column_types_type_a_column_of_nulls() -> None:
    from panels_core.data.sources.wandb_json import wandb_type_to_datatype

    assert wandb_type_to_datatype({"wb_type": "audio-file"}) == AudioType()
    assert wandb_type_to_datatype({"wb_type": "object3D-file"}) == Object3DType()
    assert wandb_type_to_datatype({"wb_type": "molecule-file"}) == MoleculeType()


def test_all_null_media_column_keeps_its_wandb_type(tmp_path) -> None:
    table = open_table(_export(tmp_path, "clip", [None, None], {"wb_type": "video-file"}))
    assert table.type.columns["clip"] == OptionalType(inner=VideoType())
    assert table.get_column("clip") == [None, None]


def test_media_types_serialize_and_match_slots() -> None:
    for t in (AudioType(), VideoType(), HtmlType(), Object3DType(), MoleculeType()):
        assert parse_type(t.model_dump_json()) == t
        assert parse_type(t.kind) == t
        assert is_assignable(t, t) and is_assignable(OptionalType(inner=t), OptionalType(inner=t))
        assert not is_assignable(t, ImageType())
        assert specificity(t) == 8.0
    assert not is_assignable(AudioType(), VideoType())
    assert parse_type('{"kind": "plot", "library": "plotly"}') == PlotType(library="plotly")
    assert is_assignable(PlotType(library="plotly"), PlotType())
    assert not is_assignable(PlotType(library="plotly"), PlotType(library="bokeh"))
    assert not is_assignable(PlotType(), PlotType(library="bokeh"))


class ListenConfig(PanelConfig):
    clip: Annotated[str, Column(accepts=AudioType())]


class Listen(Panel[ListenConfig]):
    """A plugin's panel whose one slot takes an audio column."""

    kind = "listen"

    def render(self, view: Any) -> Any:
        return None


def test_a_plugin_slot_targets_audio(tmp_path) -> None:
    table = open_table(write_media_export(tmp_path))
    assert Listen.match(table.type) == 8.0
    assert Listen.default_config(table.type).clip == "audio"
    no_audio = TableType(columns={k: v for k, v in table.type.columns.items() if k != "audio"})
    assert Listen.match(no_audio) is None


def test_media_files_build_a_table_and_survive_parquet(tmp_path) -> None:
    write_wav(tmp_path / "a.wav")
    clip = MediaFile.from_path(tmp_path / "a.wav", AudioType(), caption="a")
    assert type_of(clip) == AudioType()
    table = Table(columns=["id", "clip"], data=[[0, clip], [1, None]])
    assert describe(table.type.columns["clip"]) == "optional[audio]"
    back = Table.from_parquet(table.save(tmp_path / "t.parquet"))
    assert back.type == table.type
    assert back.get_column("clip") == [clip, None]
    assert [row["clip"] for row in back.iter_rows()] == [clip, None]
    assert back.to_pandas()["clip"].tolist() == [clip, None]


def test_a_column_of_two_media_kinds_names_the_row(tmp_path) -> None:
    write_wav(tmp_path / "media/audio/a.wav")
    _write(tmp_path, "media/videos/v.mp4", MP4)
    cells = [
        {"_type": "audio-file", "path": "media/audio/a.wav"},
        {"_type": "video-file", "path": "media/videos/v.mp4"},
    ]
    with pytest.raises(TypeError, match=r"column `m`, row 1: video value .* of audio values"):
        open_table(_export(tmp_path, "m", cells))


def test_an_override_cannot_make_text_audio(tmp_path) -> None:
    write_wav(tmp_path / "media/audio/a.wav")
    path = _export(tmp_path, "m", [{"_type": "audio-file", "path": "media/audio/a.wav"}])
    with pytest.raises(TypeError, match="column `m`: cannot treat audio values as video"):
        open_table(path, dtypes={"m": "video"}).type  # the type is checked lazily


# --------------------------------------------------------------------------- cells


def _png_pixels(cell: str, alt: str) -> np.ndarray:
    match = re.search(rf'<img src="data:image/png;base64,([^"]+)" alt="{alt}"', cell)
    assert match, cell[:300]
    return np.asarray(PILImage.open(io.BytesIO(base64.b64decode(match.group(1)))))


def test_audio_cell_plays_the_file_and_draws_its_waveform(tmp_path) -> None:
    table = open_table(write_media_export(tmp_path))
    cell, empty = _cells(table, "audio")
    wav = base64.b64encode((tmp_path / "media/audio/tone.wav").read_bytes()).decode()
    assert f'<audio controls preload="none" style="height:28px;width:180px" src="data:audio/wav;base64,{wav}"></audio>' in cell  # fmt: skip
    assert "tone.wav · <i>tone &lt;b&gt;</i> · 8000 Hz 0.50 s" in cell
    pixels = _png_pixels(cell, "waveform")
    assert pixels.shape == (24, 96)
    dark = (pixels < 128).sum(axis=0)  # the tone rises from silence: the bars grow
    assert dark[0] <= 2 and dark[-1] >= 20 and dark[48] < dark[-1]
    assert empty == '<span style="color:#999">no audio</span>'


def test_audio_over_the_cap_is_named_not_embedded(tmp_path) -> None:
    seconds = (EMBED_BYTES // 16000) + 1  # 8000 Hz x 2 bytes: just over the cap
    write_wav(tmp_path / "media/audio/long.wav", seconds=seconds)
    table = open_table(_export(tmp_path, "a", [{"_type": "audio-file", "path": "media/audio/long.wav"}]))  # fmt: skip
    (cell,) = _cells(table, "a")
    assert "<audio" not in cell and "data:audio" not in cell
    assert "long.wav · " in cell
    assert "1.1 MB: too large to embed (over 1.0 MB); open the file from the export&#x27;s folder" in cell  # fmt: skip
    assert _png_pixels(cell, "waveform").shape == (24, 96)  # the waveform still shows


def test_video_cell_plays_the_file(tmp_path) -> None:
    table = open_table(write_media_export(tmp_path))
    cell = _cells(table, "video")[0]
    uri = "data:video/mp4;base64," + base64.b64encode(MP4).decode()
    assert f'<video controls preload="metadata" width="160" src="{uri}"></video>' in cell
    assert "clip.mp4" in cell


def test_html_cell_is_a_sandboxed_frame_never_markup(tmp_path) -> None:
    table = open_table(write_media_export(tmp_path))
    cell = _cells(table, "html")[0]
    assert cell.count("<iframe") == 1 and '<iframe sandbox=""' in cell
    assert "allow-" not in cell and "<script" not in cell and "<p>" not in cell
    srcdoc = re.search(r'srcdoc="([^"]*)"', cell).group(1)
    assert srcdoc == (
        "&lt;p&gt;hello&lt;/p&gt;&lt;script&gt;window.__pwned=&#x27;html cell&#x27;;"
        "parent.__pwned=&#x27;html cell&#x27;&lt;/script&gt;"
    )


def test_point_cloud_cell_is_a_front_view_thumbnail(tmp_path) -> None:
    table = open_table(write_media_export(tmp_path))
    cell = _cells(table, "cloud")[0]
    assert "cloud.pts.json · 2 points" in cell
    pixels = _png_pixels(cell, "3D points")
    drawn = {tuple(p) for p in np.argwhere(pixels < 255).tolist()}
    # (0, 0, 0) bottom left and (1, 0, 1) top right, each a 2x2 dot
    assert drawn == {(62, 0), (62, 1), (63, 0), (63, 1), (0, 62), (0, 63), (1, 62), (1, 63)}


def test_lidar_point_cloud_and_mesh(tmp_path) -> None:
    lidar = {"type": "lidar/beta", "points": [[0, 0, 0], [1, 1, 1], [2, 0, 1]], "boxes": []}
    _write(tmp_path, "media/object3D/scan.pts.json", json.dumps(lidar))
    _write(tmp_path, "media/object3D/duck.glb", b"glTF\x02\x00\x00\x00")
    cells = [
        {"_type": "object3D-file", "path": "media/object3D/scan.pts.json"},
        {"_type": "object3D-file", "path": "media/object3D/duck.glb"},
    ]
    table = open_table(_export(tmp_path, "o", cells))
    scan, duck = _cells(table, "o")
    assert "scan.pts.json · 3 points" in scan and 'alt="3D points"' in scan
    assert duck == '<div style="color:#777;font-size:11px">duck.glb</div>'


def test_plot_cells_are_file_names_without_script(tmp_path) -> None:
    table = open_table(write_media_export(tmp_path))
    bokeh, plotly = _cells(table, "bokeh")[0], _cells(table, "plotly")[0]
    assert bokeh == (
        '<div style="color:#777;font-size:11px">fig.bokeh.json · bokeh plot: open the file '
        "from the export&#x27;s folder</div>"
    )
    assert "fig.plotly.json · plotly plot" in plotly
    assert "<script" not in bokeh + plotly


def test_molecule_cells_count_atoms(tmp_path) -> None:
    _write(tmp_path, "media/molecule/ala.pdb", PDB)
    _write(tmp_path, "media/molecule/water.sdf", SDF)
    _write(tmp_path, "media/molecule/x.mol2", "@<TRIPOS>MOLECULE\n")
    cells = [
        {"_type": "molecule-file", "path": f"media/molecule/{name}"}
        for name in ("ala.pdb", "water.sdf", "x.mol2")
    ]
    shown = _cells(open_table(_export(tmp_path, "m", cells)), "m")
    assert [re.sub("<[^>]+>", "", c) for c in shown] == [
        "ala.pdb · 3 atoms",
        "water.sdf · 3 atoms",
        "x.mol2",
    ]


def test_a_gif_video_is_an_image() -> None:
    gif = b"GIF89a\x01\x00\x01\x00"
    cell = media_cell({"name": "run.gif", "format": "gif", "size": 10, "data": gif}, VideoType())
    uri = "data:image/gif;base64," + base64.b64encode(gif).decode()
    assert f'<img src="{uri}" alt="video"' in cell and "<video" not in cell


def test_a_hostile_file_name_is_text() -> None:
    name = "<img src=x onerror=alert(1)>.wav"
    cell = media_cell({"name": name, "size": 10, "data": None}, AudioType())
    assert "<img" not in cell and "&lt;img src=x onerror=alert(1)&gt;.wav" in cell


# --------------------------------------------------------------------------- bad files


def test_media_outside_the_export_is_left_empty_with_a_warning(tmp_path) -> None:
    export = tmp_path / "export"
    write_wav(tmp_path / "secret.wav")
    write_wav(export / "media/audio/ok.wav")
    (export / "media/audio/link.wav").symlink_to(tmp_path / "secret.wav")
    cells = [
        {"_type": "audio-file", "path": "media/audio/ok.wav"},
        {"_type": "audio-file", "path": "../secret.wav"},
        {"_type": "audio-file", "path": str(tmp_path / "secret.wav")},
        {"_type": "audio-file", "path": "media/audio/link.wav"},
    ]
    path = _export(export, "a", cells)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = open_table(path)
    values = table.get_column("a")
    assert values[0].name == "ok.wav" and values[1:] == [None, None, None]
    (warning,) = [w for w in caught if "cells left empty" in str(w.message)]
    assert str(warning.message) == (
        f"`{path}`: 3 media cells left empty (`a` row 1, `a` row 2, `a` row 3): `../secret.wav` "
        "contains `..`, which could leave the export's folder; media files are read only "
        "inside the export's folder"
    )


def test_a_missing_media_file_names_the_row(tmp_path) -> None:
    path = _export(tmp_path, "a", [None, {"_type": "html-file", "path": "media/html/gone.html"}])
    with pytest.raises(FileNotFoundError) as raised:
        open_table(path)
    assert str(raised.value) == (
        f"`{path}`, column `a`, row 1: html-file `media/html/gone.html` not found next to the "
        "export; download the artifact's media folder with it, or pass missing_media='null' "
        "to open the table with those cells empty"
    )
    from panels_core.data.sources.wandb_json import read_wandb

    assert read_wandb(path, missing_media="null").get_column("a") == [None, None]


def test_a_damaged_wav_keeps_its_player_and_warns(tmp_path) -> None:
    _write(tmp_path, "media/audio/bad.wav", b"RIFF\x00\x00\x00\x00WAVEjunk")
    path = _export(tmp_path, "a", [{"_type": "audio-file", "path": "media/audio/bad.wav"}])
    with pytest.warns(RuntimeWarning) as caught:
        table = open_table(path)
    (message,) = [str(w.message) for w in caught if "no preview" in str(w.message)]
    assert message.startswith(f"`{path}`, column `a`: no preview for rows 0: `bad.wav`: not a PCM WAV")  # fmt: skip
    assert message.endswith("; the cells show the file name")
    (cell,) = _cells(table, "a")
    assert "data:audio/wav;base64," in cell and "waveform" not in cell


def test_grouped_and_filtered_media_through_the_engine(tmp_path) -> None:
    from panels_core import Query, View
    from panels_core.query.engine import Engine

    for i in range(4):
        write_wav(tmp_path / f"media/audio/{i}.wav", seconds=0.1 * (i + 1))
    cells = [[["a", "b"][i % 2], {"_type": "audio-file", "path": f"media/audio/{i}.wav"}] for i in range(4)]  # fmt: skip
    export = {"columns": ["label", "clip"], "data": cells}
    (tmp_path / "t.table.json").write_text(json.dumps(export), "utf-8")
    engine = Engine({"t": open_table(tmp_path / "t.table.json")})

    long = View(engine, Query(table="t", filter="clip.duration > 0.25"))
    assert [r["name"] for r in long.page(0, 10).column("clip").to_pylist()] == ["2.wav", "3.wav"]

    grouped = View(engine, Query(table="t", group_by=["label"], sort=[{"column": "label"}]))
    assert describe(grouped.type.columns["clip"]) == "list[audio]"
    (shown,) = cell_columns(grouped.type, ["clip"])
    page = grouped.page(0, 10).column("clip").to_pylist()
    count = " <span style='color:#999'>(2)</span>"
    drawn = CellRenderer().column(shown, page)
    assert all(cell.endswith(count) for cell in drawn)  # names, in the group's order
    assert [set(cell.removesuffix(count).split(", ")) for cell in drawn] == [
        {"0.wav x1", "2.wav x1"},
        {"1.wav x1", "3.wav x1"},
    ]
