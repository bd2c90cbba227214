"""Images with boxes and masks, class names, and their Arrow encoding.

An image column is an Arrow struct (encoded bytes, size, content hash, and one
field per box / mask layer) marked by field metadata, never a Python object:
queries read its boxes without decoding a pixel, and thumbnails are made on
demand.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from panels_core.types import ClassLabel, ImageType, looks_like_image_bytes

__all__ = [
    "BOX_TYPE",
    "Classes",
    "Image",
    "LayerProblem",
    "UnreadableImage",
    "image_arrow_type",
    "image_field",
    "image_type_of_field",
    "images_from_arrow",
    "images_to_arrow",
    "is_image_field",
    "thumbnail_png",
]

KIND_KEY = b"typed_panels.kind"
CLASSES_KEY = b"typed_panels.classes"

BOX_TYPE = pa.struct(
    [
        ("x_min", pa.float64()),
        ("y_min", pa.float64()),
        ("x_max", pa.float64()),
        ("y_max", pa.float64()),
        ("class_id", pa.int64()),
        ("caption", pa.string()),
        ("scores", pa.map_(pa.string(), pa.float64())),
    ]
)

_FORMATS = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif", "BMP": "bmp", "WEBP": "webp"}


class Classes:
    """The class names of boxes and masks: ``Classes([{"id": 0, "name": "dog"}, ...])``."""

    def __init__(self, class_set: Iterable[Mapping[str, Any] | ClassLabel]) -> None:
        labels: dict[int, ClassLabel] = {}
        for entry in class_set:
            label = entry if isinstance(entry, ClassLabel) else _class_label(entry)
            if label.id in labels and labels[label.id].name != label.name:
                raise ValueError(
                    f"Classes: id {label.id} is named both {labels[label.id].name!r} and "
                    f"{label.name!r}; give each id one name"
                )
            labels[label.id] = label
        self.labels: tuple[ClassLabel, ...] = tuple(labels[k] for k in sorted(labels))

    def name_of(self, class_id: int) -> str:
        """The name of ``class_id``, or ``"class <id>"`` when it has none."""
        for label in self.labels:
            if label.id == class_id:
                return label.name
        return f"class {class_id}"

    def __iter__(self):
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Classes) and other.labels == self.labels

    def __repr__(self) -> str:
        return f"Classes({[label.model_dump() for label in self.labels]})"


def _class_label(entry: Mapping[str, Any]) -> ClassLabel:
    if "id" not in entry or "name" not in entry:
        raise ValueError(f"Classes: each class needs an 'id' and a 'name', got {dict(entry)!r}")
    return ClassLabel(id=int(entry["id"]), name=str(entry["name"]))


# --------------------------------------------------------------------------- encoding helpers


def _pil():
    from PIL import Image as PILImage

    return PILImage


def _array_to_png(array: np.ndarray, what: str = "image") -> bytes:
    """Encode an HxW or HxWx{1,3,4} array (float in [0, 1] or 0..255 integers) as PNG."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(
            f"{what}: an array image must be HxW, HxWx3 or HxWx4, got shape {arr.shape}"
        )
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{what}: the array holds NaN or inf; replace them before logging")
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{what}: float pixels must lie in [0, 1] (or 0..255), got {lo:g}..{hi:g}"
            )
        arr = np.rint(arr * 255 if hi <= 1.0 else arr).astype(np.uint8)
    elif arr.dtype.kind in "ui":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError(f"{what}: integer pixels must lie in 0..255")
        arr = arr.astype(np.uint8)
    else:
        raise ValueError(f"{what}: cannot make an image of an array of dtype {arr.dtype}")
    buffer = io.BytesIO()
    _pil().fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


class UnreadableImage(ValueError):
    """Bytes (or a file) that are not an image that can be read."""


def _probe(data: bytes, origin: str) -> tuple[str, int, int]:
    """Format, width and height of encoded image bytes (reads the header only)."""
    try:
        with _pil().open(io.BytesIO(data)) as img:
            fmt = _FORMATS.get(img.format or "", (img.format or "png").lower())
            width, height = img.size
            img.verify()
    except Exception as exc:
        raise UnreadableImage(
            f"{origin} is not an image that can be read ({exc}); "
            "pass a PNG or JPEG file, a PIL image, an HxW[xC] array or encoded image bytes"
        ) from exc
    return fmt, int(width), int(height)


@dataclass(frozen=True)
class LayerProblem:
    """A box or mask layer of one image that did not fit it: ``dropped``, or (a mask of an
    integer multiple or divisor of the image's size) ``resized``; ``detail`` says why/how."""

    kind: str
    layer: str
    action: str
    detail: str

    @property
    def what(self) -> str:
        """``mask layer `ground_truth` dropped``: the problem without its detail."""
        return f"{self.kind} layer `{self.layer}` {self.action}"


class _LayerError(ValueError):
    """A layer that cannot be used: the message names where; ``reason`` is why alone."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _box_record(box: Any, width: int, height: int, where: str) -> dict[str, Any]:
    """One W&B-style box as a BOX_TYPE record with coordinates in fractions of the image."""
    if not isinstance(box, Mapping):
        raise ValueError(
            f"{where}: a box must be an object with 'position' and 'class_id', "
            f"got {type(box).__name__}"
        )
    position = box.get("position")
    if not isinstance(position, Mapping):
        raise ValueError(f"{where}: a box needs a 'position' dict, got {box!r}")
    if {"minX", "maxX", "minY", "maxY"} <= position.keys():
        x0, x1 = float(position["minX"]), float(position["maxX"])
        y0, y1 = float(position["minY"]), float(position["maxY"])
    elif {"middle", "width", "height"} <= position.keys():
        (mx, my), bw, bh = position["middle"], float(position["width"]), float(position["height"])
        x0, x1 = float(mx) - bw / 2, float(mx) + bw / 2
        y0, y1 = float(my) - bh / 2, float(my) + bh / 2
    else:
        raise ValueError(
            f"{where}: a box position needs minX/maxX/minY/maxY or middle/width/height, "
            f"got keys {sorted(position)}"
        )
    if box.get("domain") == "pixel":
        x0, x1, y0, y1 = x0 / width, x1 / width, y0 / height, y1 / height
    if "class_id" not in box:
        raise ValueError(f"{where}: a box needs a 'class_id'")
    scores = box.get("scores") or {}
    if not isinstance(scores, Mapping):
        raise ValueError(f"{where}: 'scores' must be an object of name: number, got {scores!r}")
    return {
        "x_min": x0,
        "y_min": y0,
        "x_max": x1,
        "y_max": y1,
        "class_id": int(box["class_id"]),
        "caption": box.get("box_caption", box.get("caption")),
        "scores": {str(k): float(v) for k, v in scores.items()},
    }


def _box_records(layer: str, boxes: Any, width: int, height: int) -> list[dict[str, Any]]:
    """A layer of W&B-style boxes (or BOX_TYPE records) as records; ValueError if malformed."""
    if not isinstance(boxes, Sequence) or isinstance(boxes, str | bytes):
        raise ValueError(f"box layer `{layer}`: boxes must be a list, got {type(boxes).__name__}")
    if _is_record_layer(boxes):
        return [dict(b) for b in boxes]
    return [
        _box_record(b, width, height, f"box layer `{layer}`, box {i}") for i, b in enumerate(boxes)
    ]


def _mask_png(mask: Any, width: int, height: int, where: str, fit: bool) -> tuple[bytes, str]:
    """A mask layer (HxW class ids, or W&B's {"mask_data": arr} / {"path": file}) as PNG,
    and how it was resized ("" when it was not). With ``fit``, a mask whose size is an
    integer multiple or divisor of the image's is resized to it (nearest neighbour)."""
    if isinstance(mask, Mapping):
        if "mask_data" in mask:
            mask = mask["mask_data"]
        elif "path" in mask:
            try:
                with _pil().open(mask["path"]) as mask_image:
                    mask = np.asarray(mask_image)
            except OSError as exc:
                raise _LayerError(
                    f"{where}: file `{mask['path']}` is not an image that can be read ({exc})",
                    "its file is not an image that can be read",
                ) from exc
        else:
            raise _LayerError(f"{where}: a mask needs 'mask_data' or 'path'", "no mask data")
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise _LayerError(
            f"{where}: a mask must be an HxW array of class ids, got shape {arr.shape}",
            f"shape {arr.shape} is not HxW class ids",
        )
    resized = ""
    if arr.shape != (height, width):
        if not (fit and _integer_scale(arr.shape, (height, width))):
            raise _LayerError(
                f"{where}: mask shape {arr.shape} does not match the image ({height}, {width})",
                f"shape {arr.shape} does not match the image's {height}x{width}",
            )
        resized = f"from {arr.shape[0]}x{arr.shape[1]} to {height}x{width} (nearest neighbour)"
    if arr.size and (arr.min() < 0 or arr.max() > 255 or arr.dtype.kind not in "uib"):
        raise _LayerError(
            f"{where}: mask class ids must be integers in 0..255",
            "its class ids are not integers in 0..255",
        )
    mask_image = _pil().fromarray(arr.astype(np.uint8))
    if resized:
        mask_image = mask_image.resize((width, height), resample=_pil().Resampling.NEAREST)
    buffer = io.BytesIO()
    mask_image.save(buffer, format="PNG")
    return buffer.getvalue(), resized


def _integer_scale(shape: tuple[int, ...], target: tuple[int, int]) -> bool:
    """True when ``shape`` is ``target`` times (or divided by) one integer on both axes."""
    (h, w), (th, tw) = shape, target
    if min(h, w, th, tw) <= 0:
        return False
    (bh, bw), (sh, sw) = ((h, w), (th, tw)) if h >= th else ((th, tw), (h, w))
    return bh % sh == 0 and bw % sw == 0 and bh // sh == bw // sw


def _encoded(data: Any) -> tuple[bytes, str | None, str]:
    """The encoded bytes of an image given as a path, bytes, array or PIL image, its
    format when known (else None: probed later), and how to name it in errors."""
    origin = "the image"
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        origin = f"image file `{path}`"
        try:
            encoded = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {origin}: {exc.strerror}") from exc
        fmt = None
    elif isinstance(data, bytes | bytearray | memoryview):
        encoded, fmt = bytes(data), None
        origin = "the image bytes"
    elif isinstance(data, np.ndarray):
        encoded, fmt = _array_to_png(data), "png"
    elif hasattr(data, "save") and hasattr(data, "size"):  # a PIL image
        buffer = io.BytesIO()
        data.save(buffer, format="PNG")
        encoded, fmt = buffer.getvalue(), "png"
    else:
        raise TypeError(
            f"Image() takes a file path, PIL image, numpy array or bytes, not {type(data).__name__}"
        )
    return encoded, fmt, origin


# --------------------------------------------------------------------------- Image


class Image:
    """An image, with optional boxes, masks and class names.

    ``data`` may be a file path, a PIL image, an HxW / HxWx3 / HxWx4 array
    (floats in [0, 1] or uint8) or encoded image bytes. ``boxes`` maps a layer
    name to a list of W&B-style boxes (``{"position": {...}, "class_id": 1,
    "scores": {...}}``); ``masks`` maps a layer name to an HxW array of class ids.
    A layer that does not fit the image raises ValueError; with ``problems`` a list,
    it is dropped instead (a mask of an integer multiple or divisor of the image's
    size is resized, nearest neighbour) and a ``LayerProblem`` appended there.
    """

    def __init__(
        self,
        data: Any,
        boxes: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        masks: Mapping[str, Any] | None = None,
        classes: Classes | Iterable[Mapping[str, Any]] | None = None,
        caption: str | None = None,
        problems: list[LayerProblem] | None = None,
    ) -> None:
        origin = "the image"
        if isinstance(data, Image):
            encoded, fmt = data.data, data.format
            boxes = boxes if boxes is not None else data.boxes_raw
            masks = masks if masks is not None else data.masks_png
            classes = classes if classes is not None else data.classes
        else:
            encoded, fmt, origin = _encoded(data)
        probed_fmt, self.width, self.height = _probe(encoded, origin)
        if probed_fmt not in ("png", "jpeg"):  # keep PNG and JPEG as given, re-encode others
            with _pil().open(io.BytesIO(encoded)) as img:
                buffer = io.BytesIO()
                img.save(buffer, format="PNG")
            encoded, probed_fmt = buffer.getvalue(), "png"
        self.data: bytes = encoded
        self.format: str = fmt or probed_fmt
        self.caption = caption
        self.classes: Classes | None = (
            classes if isinstance(classes, Classes) or classes is None else Classes(classes)
        )
        self._set_layers(boxes, masks, problems)

    def _set_layers(
        self,
        boxes: Mapping[str, Any] | None,
        masks: Mapping[str, Any] | None,
        problems: list[LayerProblem] | None,
    ) -> None:
        """Check the box and mask layers against the image; with ``problems`` a list, a
        layer that does not fit is dropped (or its mask resized) and said there."""
        self.boxes: dict[str, list[dict[str, Any]]] = {}
        for layer, layer_boxes in (boxes or {}).items():
            try:
                self.boxes[str(layer)] = _box_records(
                    str(layer), layer_boxes, self.width, self.height
                )
            except (TypeError, ValueError) as exc:
                if problems is None:
                    raise
                why = (
                    str(exc)
                    .removeprefix(f"box layer `{layer}`, ")
                    .removeprefix(f"box layer `{layer}`: ")
                )
                problems.append(LayerProblem("box", str(layer), "dropped", why))
        self.boxes_raw = (
            {k: v for k, v in boxes.items() if str(k) in self.boxes} if boxes else boxes
        )
        self.masks_png: dict[str, bytes] = {}
        for layer, mask in (masks or {}).items():
            if isinstance(mask, bytes):
                self.masks_png[str(layer)] = mask
                continue
            where, fit = f"mask layer `{layer}`", problems is not None
            try:
                self.masks_png[str(layer)], resized = _mask_png(
                    mask, self.width, self.height, where, fit
                )
            except _LayerError as exc:
                if problems is None:
                    raise
                problems.append(LayerProblem("mask", str(layer), "dropped", exc.reason))
                continue
            if resized and problems is not None:
                problems.append(LayerProblem("mask", str(layer), "resized", resized))

    @property
    def sha256(self) -> str:
        """Content hash of the encoded bytes (identical images share it)."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def data_type(self) -> ImageType:
        """This image's ImageType."""
        return ImageType(
            box_layers=tuple(self.boxes),
            mask_layers=tuple(self.masks_png),
            classes=self.classes.labels if self.classes else (),
        )

    def __data_type__(self) -> ImageType:
        """``type_of(image)``: an image describes its own type."""
        return self.data_type

    def to_pil(self):
        """The image as a PIL image."""
        return _pil().open(io.BytesIO(self.data))

    def to_numpy(self) -> np.ndarray:
        """The pixels as an array (HxW or HxWxC, uint8)."""
        return np.asarray(self.to_pil())

    def mask(self, layer: str) -> np.ndarray:
        """The class ids of a mask layer as an HxW uint8 array."""
        return np.asarray(_pil().open(io.BytesIO(self.masks_png[layer])))

    def thumbnail(self, size: int = 64) -> bytes:
        """A PNG no larger than ``size`` pixels on each side, made on demand and cached."""
        return thumbnail_png(self.data, size)

    def to_record(self) -> dict[str, Any]:
        """This image as a record of the Arrow image struct."""
        record: dict[str, Any] = {
            "sha256": self.sha256,
            "data": self.data,
            "format": self.format,
            "width": self.width,
            "height": self.height,
        }
        if self.boxes:
            record["boxes"] = dict(self.boxes)
        if self.masks_png:
            record["masks"] = dict(self.masks_png)
        return record

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Image)
            and other.data == self.data
            and other.boxes == self.boxes
            and other.masks_png == self.masks_png
            and other.classes == self.classes
        )

    def __repr__(self) -> str:
        extras = f", boxes={list(self.boxes)}" if self.boxes else ""
        extras += f", masks={list(self.masks_png)}" if self.masks_png else ""
        return f"Image({self.width}x{self.height} {self.format}{extras})"

    def _repr_png_(self) -> bytes | None:
        return self.data if self.format == "png" else None


def _is_record_layer(boxes: Sequence[Mapping[str, Any]]) -> bool:
    return bool(boxes) and all(isinstance(b, Mapping) and "x_min" in b for b in boxes)


@functools.lru_cache(maxsize=4096)
def thumbnail_png(data: bytes, size: int = 64) -> bytes:
    """A PNG thumbnail of encoded image bytes, at most ``size`` pixels a side."""
    with _pil().open(io.BytesIO(data)) as img:
        img = img.convert("RGBA") if img.mode not in ("RGB", "RGBA", "L") else img.copy()
        if max(img.size) > size:
            img.thumbnail((size, size))
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- Arrow encoding


def image_arrow_type(
    box_layers: Sequence[str] = (), mask_layers: Sequence[str] = ()
) -> pa.DataType:
    """The Arrow struct type of an image column with these layers."""
    fields = [
        ("sha256", pa.string()),
        ("data", pa.binary()),
        ("format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
    if box_layers:
        fields.append(("boxes", pa.struct([(name, pa.list_(BOX_TYPE)) for name in box_layers])))
    if mask_layers:
        fields.append(("masks", pa.struct([(name, pa.binary()) for name in mask_layers])))
    return pa.struct(fields)


def image_field(name: str, image_type: ImageType) -> pa.Field:
    """An Arrow field for an image column, marked and carrying its class names."""
    metadata = {
        KIND_KEY: b"image",
        CLASSES_KEY: json.dumps([c.model_dump() for c in image_type.classes]).encode(),
    }
    arrow_type = image_arrow_type(image_type.box_layers, image_type.mask_layers)
    return pa.field(name, arrow_type, nullable=True, metadata=metadata)


def is_image_field(field: pa.Field) -> bool:
    """True when an Arrow field holds an image column."""
    return bool(field.metadata) and field.metadata.get(KIND_KEY) == b"image"


def image_type_of_field(field: pa.Field) -> ImageType:
    """The ImageType of an image column's Arrow field."""
    struct = field.type
    names = [struct.field(i).name for i in range(struct.num_fields)]
    boxes = struct.field("boxes").type if "boxes" in names else None
    masks = struct.field("masks").type if "masks" in names else None
    classes = json.loads((field.metadata or {}).get(CLASSES_KEY, b"[]"))
    return ImageType(
        box_layers=tuple(boxes.field(i).name for i in range(boxes.num_fields)) if boxes else (),
        mask_layers=tuple(masks.field(i).name for i in range(masks.num_fields)) if masks else (),
        classes=tuple(ClassLabel(**c) for c in classes),
    )


def images_to_arrow(images: Sequence[Image | None], image_type: ImageType) -> pa.Array:
    """Encode a column of Images (None for missing) as the image struct array."""
    records = []
    for image in images:
        if image is None:
            records.append(None)
            continue
        record = image.to_record()
        if image_type.box_layers:
            record["boxes"] = {
                layer: [
                    dict(box, scores=list((box.get("scores") or {}).items()))
                    for box in image.boxes[layer]
                ]
                if layer in image.boxes
                else None  # no such layer in this image (or dropped from it): null
                for layer in image_type.box_layers
            }
        if image_type.mask_layers:
            record["masks"] = {
                layer: image.masks_png.get(layer) for layer in image_type.mask_layers
            }
        records.append(record)
    return pa.array(records, type=image_arrow_type(image_type.box_layers, image_type.mask_layers))


def images_from_arrow(array: pa.Array | pa.ChunkedArray, field: pa.Field) -> list[Image | None]:
    """Decode an image struct column back into Image objects (bytes are not decoded)."""
    image_type = image_type_of_field(field)
    classes = Classes(image_type.classes) if image_type.classes else None
    images: list[Image | None] = []
    for record in array.to_pylist():
        if record is None or record.get("data") is None:
            images.append(None)
            continue
        boxes = {
            layer: [dict(b, scores=dict(b["scores"] or [])) for b in layer_boxes or []]
            for layer, layer_boxes in (record.get("boxes") or {}).items()
            if layer_boxes is not None
        }
        masks = {k: v for k, v in (record.get("masks") or {}).items() if v is not None}
        images.append(Image(record["data"], boxes=boxes, masks=masks, classes=classes))
    return images


def is_image_bytes_column(values: Iterable[Any]) -> bool:
    """True when every non-null value of a binary column starts with image magic bytes."""
    seen = False
    for value in values:
        if value is None:
            continue
        if not looks_like_image_bytes(value):
            return False
        seen = True
    return seen
