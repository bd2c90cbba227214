"""Small previews of media files: a WAV waveform, a point cloud projection, a molecule's atoms.

Each reads bytes already in memory and returns a small PNG or a count; each
raises ``ValueError`` with what is wrong when the bytes are not what the format
promises (``MediaFile.from_path`` then keeps the file without its preview).
"""

from __future__ import annotations

import io
import json
import wave
from typing import Any

import numpy as np

__all__ = [
    "POINT_LIMIT",
    "count_atoms",
    "point_cloud_png",
    "read_points",
    "wav_waveform",
]

POINT_LIMIT = 200_000
"""A point cloud thumbnail draws at most this many points (evenly spaced)."""
_WAVE_W, _WAVE_H = 96, 24
_CLOUD = 64


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_waveform(data: bytes) -> tuple[bytes, float, float]:
    """A waveform PNG (96x24, the peak of each column), sample rate and duration in seconds
    of a PCM WAV file's bytes."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a PCM WAV file ({exc})") from exc
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None or rate <= 0 or channels <= 0:
        raise ValueError(f"a WAV file of {width}-byte samples at {rate} Hz cannot be drawn")
    samples = np.frombuffer(frames[: len(frames) // (width * channels) * width * channels], dtype)
    samples = samples.reshape(-1, channels).astype(np.float64)
    if dtype is np.uint8:
        samples -= 128.0
    level = np.abs(samples).max(axis=1) if samples.size else np.zeros(0)
    duration = len(level) / rate
    peaks = np.zeros(_WAVE_W)
    if level.size:  # the peak of each of (at most) 96 equal runs of samples
        edges = np.linspace(0, level.size, min(_WAVE_W, level.size) + 1).astype(int)
        peaks[: len(edges) - 1] = np.maximum.reduceat(level, edges[:-1])
    middle = _WAVE_H / 2
    half = np.maximum(0.5, peaks / (peaks.max() or 1.0) * middle)
    rows = np.arange(_WAVE_H)[:, None] + 0.5  # pixel centres
    pixels = np.where(np.abs(rows - middle) <= half[None, :], 70, 255).astype(np.uint8)
    return _png(pixels), float(rate), float(duration)


def read_points(data: bytes) -> np.ndarray:
    """The Nx3 coordinates of a W&B ``.pts.json`` point cloud: a list of ``[x, y, z, ...]``
    rows, or an object whose ``points`` holds them (``{"type": "lidar/beta", ...}``)."""
    try:
        parsed: Any = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JSON point list ({exc})") from exc
    if isinstance(parsed, dict):
        parsed = parsed.get("points")
    if not isinstance(parsed, list):
        raise ValueError("a point cloud must be a list of [x, y, z] rows or {'points': [...]}")
    try:
        try:  # rows of one length (the usual case): one conversion
            points = np.asarray(parsed, dtype=np.float64)
        except ValueError:  # rows of several lengths (some with a class or a colour)
            points = np.array([row[:3] for row in parsed], dtype=np.float64)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"a point is not a row of numbers ({exc})") from exc
    if not points.size:
        return np.zeros((0, 3))
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError("every point needs at least x, y and z")
    return points[:, :3]


def point_cloud_png(points: np.ndarray, size: int = _CLOUD) -> bytes:
    """A ``size`` x ``size`` PNG of the points seen from the front (x right, z up), darker
    where they are nearer (y), at most POINT_LIMIT points drawn."""
    finite = points[np.isfinite(points).all(axis=1)]
    if len(finite) > POINT_LIMIT:
        finite = finite[np.linspace(0, len(finite) - 1, POINT_LIMIT).astype(int)]
    pixels = np.full((size, size), 255, dtype=np.uint8)
    if not len(finite):
        return _png(pixels)
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    span = float(max(hi[0] - lo[0], hi[2] - lo[2])) or 1.0
    middle = (lo + hi) / 2  # the cloud centred, its longer side filling the square
    xs = ((finite[:, 0] - middle[0]) / span * (size - 2) + (size - 2) / 2).round().astype(int)
    zs = ((middle[2] - finite[:, 2]) / span * (size - 2) + (size - 2) / 2).round().astype(int)
    depth = finite[:, 1] - lo[1]
    shade = (40 + 150 * depth / (float(hi[1] - lo[1]) or 1.0)).astype(np.uint8)
    order = np.argsort(-depth)  # far points first, near points drawn over them
    for dz, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):  # each point a 2x2 dot
        rows, cols = np.minimum(zs[order] + dz, size - 1), np.minimum(xs[order] + dx, size - 1)
        pixels[rows, cols] = shade[order]
    return _png(pixels)


def count_atoms(data: bytes, file_format: str) -> int | None:
    """The atoms of a ``pdb`` (ATOM/HETATM records) or ``sdf`` (the first molecule's counts
    line) file; None for other formats or a counts line that cannot be read."""
    text = data.decode("utf-8", errors="replace")
    if file_format == "pdb":
        return sum(1 for line in text.splitlines() if line.startswith(("ATOM  ", "HETATM")))
    if file_format in ("sdf", "mol"):
        lines = text.splitlines()
        if len(lines) > 3 and lines[3][:3].strip().isdigit():
            return int(lines[3][:3])
    return None
