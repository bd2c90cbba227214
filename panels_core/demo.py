"""Demo data: sklearn's digits, a tiny embedding table, and versioned synthetic predictions.

``python -m panels_core.demo [--out DIR]`` (or ``write_demo(out_dir)``) writes,
with no network and the same values on every run:

- ``digits.parquet``: the 1797 8x8 digits, with ``image``, ``target``
  (category), the 64 ``pixel_<row>_<col>`` numbers and an ``embedding``;
- ``hello.parquet``: the three 5-dimensional embeddings D1..D5 of W&B's
  embedding-projector example;
- ``store/``: a Store holding ``predictions:v0`` and ``predictions:v1`` (a
  detector's predictions on 2,000 generated shape images, the second version
  better), ``ground_truth:v0`` and ``joined:v0`` (predictions v1 joined with
  the ground truth on ``id``).

Running it again adds nothing: files that exist are kept and versions already
in the store are not added twice.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from panels_core.data.media import Classes, Image
from panels_core.data.store import Store
from panels_core.data.table import JoinedTable, Table

__all__ = [
    "SHAPES",
    "digits_table",
    "ground_truth_table",
    "hello_table",
    "main",
    "predictions_table",
    "write_demo",
]

SHAPES = ("circle", "square", "triangle", "cross")
"""The classes of the generated shape images (class id = index)."""
SHAPE_CLASSES = Classes([{"id": i, "name": name} for i, name in enumerate(SHAPES)])
N_PREDICTIONS = 2000
IMAGE_SIZE = 32
SEED = 20240


def hello_table() -> Table:
    """The three 5-dimensional embeddings of W&B's embedding-projector example."""
    embeddings = [
        [0.2, 0.4, 0.1, 0.7, 0.5],
        [0.3, 0.1, 0.9, 0.2, 0.7],
        [0.4, 0.5, 0.2, 0.2, 0.1],
    ]
    return Table(columns=["D1", "D2", "D3", "D4", "D5"], data=embeddings)


def digits_table() -> Table:
    """sklearn's digits: image, target (category), 64 pixel columns and an embedding."""
    import pandas as pd
    from sklearn.datasets import load_digits

    digits = load_digits(as_frame=True)
    pixels = digits.data.to_numpy(dtype=np.float64)
    df = pd.DataFrame(
        {
            "image": [Image(row.reshape(8, 8) / 16.0) for row in pixels],
            "target": digits.target.astype(str).to_numpy(dtype=object),
        }
    )
    df = pd.concat([df, digits.data.astype(np.float64)], axis=1)
    df["embedding"] = list(pixels.astype(np.float32))
    return Table(dataframe=df, dtypes={"target": "category"})


# --------------------------------------------------------------------------- shapes


def _shape_mask(shape: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """A boolean mask of one shape at a random place, and its box in pixels (x0, y0, x1, y1)."""
    side = int(rng.integers(10, 20))
    x0 = int(rng.integers(1, size - side - 1))
    y0 = int(rng.integers(1, size - side - 1))
    yy, xx = np.mgrid[0:size, 0:size]
    u, v = (xx - x0) / side, (yy - y0) / side  # 0..1 inside the box
    inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    if SHAPES[shape] == "circle":
        mask = (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    elif SHAPES[shape] == "square":
        mask = inside
    elif SHAPES[shape] == "triangle":
        mask = inside & (np.abs(u - 0.5) <= v / 2)
    else:
        mask = inside & ((np.abs(u - 0.5) < 0.17) | (np.abs(v - 0.5) < 0.17))
    return mask, (x0, y0, x0 + side, y0 + side)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


class _Shapes:
    """2,000 generated shape images with their labels and true boxes (seeded)."""

    def __init__(self, n: int = N_PREDICTIONS, seed: int = SEED) -> None:
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, len(SHAPES), size=n)
        self.split = rng.choice(["train", "val", "test"], size=n, p=[0.7, 0.15, 0.15])
        self.pngs: list[bytes] = []
        self.boxes: list[tuple[float, float, float, float]] = []
        for label in self.labels:
            background = rng.integers(0, 60, size=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            mask, (x0, y0, x1, y1) = _shape_mask(int(label), IMAGE_SIZE, rng)
            color = rng.integers(120, 256, size=3, dtype=np.uint8)
            background[mask] = color
            self.pngs.append(_png(background))
            self.boxes.append(tuple(v / IMAGE_SIZE for v in (x0, y0, x1, y1)))

    def box(self, i: int, class_id: int, jitter: np.ndarray | None = None, score=None) -> dict:
        x0, y0, x1, y1 = self.boxes[i]
        if jitter is not None:
            x0, y0, x1, y1 = np.clip(np.array([x0, y0, x1, y1]) + jitter, 0.0, 1.0)
        box = {
            "position": {
                "minX": float(x0),
                "minY": float(y0),
                "maxX": float(x1),
                "maxY": float(y1),
            },
            "class_id": int(class_id),
            "box_caption": SHAPES[class_id],
        }
        if score is not None:
            box["scores"] = {"score": float(score)}
        return box


def predictions_table(version: int = 0, shapes: _Shapes | None = None) -> Table:
    """A detector's predictions on the shape images; version 1 is a better model than 0."""
    shapes = shapes or _Shapes()
    rng = np.random.default_rng(SEED + 1 + version)
    accuracy = (0.78, 0.9)[min(version, 1)]
    n = len(shapes.labels)
    k = len(SHAPES)
    logits = rng.normal(0.0, 1.0, size=(n, k))
    correct = rng.random(n) < accuracy
    boost = np.where(correct, rng.uniform(1.5, 4.0, n), rng.uniform(-1.0, 0.5, n))
    logits[np.arange(n), shapes.labels] += boost
    wrong = ~correct & (logits.argmax(axis=1) == shapes.labels)
    other = (shapes.labels + rng.integers(1, k, size=n)) % k
    logits[np.where(wrong)[0], other[wrong]] = logits[wrong].max(axis=1) + 0.5
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    predicted = probs.argmax(axis=1)
    score = probs[np.arange(n), predicted]
    loss = -np.log(probs[np.arange(n), shapes.labels])
    jitter = rng.normal(0.0, (0.05, 0.03)[min(version, 1)], size=(n, 4))
    rows = []
    for i in range(n):
        image = Image(
            shapes.pngs[i],
            boxes={
                "predictions": [shapes.box(i, int(predicted[i]), jitter[i], score[i])],
                "ground_truth": [shapes.box(i, int(shapes.labels[i]))],
            },
            classes=SHAPE_CLASSES,
        )
        rows.append(
            [
                i,
                f"img_{i:04d}",
                str(shapes.split[i]),
                SHAPES[shapes.labels[i]],
                SHAPES[predicted[i]],
                float(score[i]),
                float(loss[i]),
                image,
            ]
        )
    columns = ["id", "image_id", "split", "label", "predicted", "score", "loss", "image"]
    return Table(
        columns=columns,
        data=rows,
        dtypes={"split": "category", "label": "category", "predicted": "category"},
    )


def ground_truth_table(shapes: _Shapes | None = None) -> Table:
    """The shape images with their true label and box."""
    shapes = shapes or _Shapes()
    rows = [
        [
            i,
            f"img_{i:04d}",
            SHAPES[label],
            Image(
                shapes.pngs[i],
                boxes={"ground_truth": [shapes.box(i, int(label))]},
                classes=SHAPE_CLASSES,
            ),
        ]
        for i, label in enumerate(shapes.labels)
    ]
    return Table(
        columns=["id", "image_id", "label", "image"], data=rows, dtypes={"label": "category"}
    )


# --------------------------------------------------------------------------- writing


def _ensure_file(path: Path, make: Callable[[], Table], log: Callable[[str], None]) -> Path:
    if path.exists():
        log(f"kept   {path} (exists)")
        return path
    table = make()
    table.save(path)
    log(f"wrote  {path} ({len(table)} rows, {len(table.columns)} columns)")
    return path


def _ensure_versions(
    store: Store,
    name: str,
    makers: Sequence[Callable[[], Table | JoinedTable]],
    log: Callable[[str], None],
) -> list[str]:
    have = len(store.versions(name)) if name in store else 0
    refs = [f"{name}:v{k}" for k in range(min(have, len(makers)))]
    for ref in refs:
        log(f"kept   {store.folder}/{ref} (exists)")
    for make in makers[have:]:
        ref = store.add(make(), name)
        log(f"added  {store.folder}/{ref}")
        refs.append(ref)
    return refs


def write_demo(
    out_dir: str | Path = "demo_data", log: Callable[[str], None] | None = print
) -> dict[str, Path]:
    """Write the demo files under ``out_dir`` (kept if present); returns their paths by name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _message: None)
    paths = {
        "hello": _ensure_file(out / "hello.parquet", hello_table, say),
        "digits": _ensure_file(out / "digits.parquet", digits_table, say),
    }
    store = Store(out / "store")
    cache: dict[str, _Shapes] = {}

    def shapes() -> _Shapes:
        if "shapes" not in cache:
            cache["shapes"] = _Shapes()
        return cache["shapes"]

    _ensure_versions(
        store,
        "predictions",
        [lambda: predictions_table(0, shapes()), lambda: predictions_table(1, shapes())],
        say,
    )
    _ensure_versions(store, "ground_truth", [lambda: ground_truth_table(shapes())], say)

    def joined() -> JoinedTable:
        return JoinedTable(
            store.get("predictions:v1"),  # type: ignore[arg-type]
            store.get("ground_truth:v0"),  # type: ignore[arg-type]
            "id",
            names=("predictions", "ground_truth"),
        )

    _ensure_versions(store, "joined", [joined], say)
    paths["store"] = store.folder
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m panels_core.demo [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m panels_core.demo", description="Write the typed-panels demo data."
    )
    parser.add_argument("--out", default="demo_data", help="folder to write (default: demo_data)")
    args = parser.parse_args(argv)
    write_demo(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
