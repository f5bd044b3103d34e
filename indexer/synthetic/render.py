"""Drawing the frames: shapes (PIL polygons) over a textured background, moved as their motion says.

Positions and sizes are fractions of the frame, so the same motion reads the same at any resolution: a move crosses
half the frame, growth goes from 0.55x to 1.45x, rotation turns 100 to 180 degrees.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from indexer.synthetic.attributes import BACKGROUNDS, COLOURS, POSITIONS, ShapeSpec

SIZE_RADIUS = {"small": (0.13, 0.16), "large": (0.22, 0.26)}  # circumradius / shorter frame side
POSITION_XY = {name: ((i % 3 + 0.5) / 3, (i // 3 + 0.5) / 3) for i, name in enumerate(POSITIONS)}


@dataclass(frozen=True)
class Trajectory:
    """Where a shape is at time t in [0, 1]: centre (fractions of width/height), radius (fraction of the shorter
    side) and angle (degrees)."""

    x0: float
    y0: float
    x1: float
    y1: float
    r0: float
    r1: float
    a0: float
    a1: float

    def at(self, t: float) -> tuple[float, float, float, float]:
        def lerp(start: float, end: float) -> float:
            return start + (end - start) * t

        return lerp(self.x0, self.x1), lerp(self.y0, self.y1), lerp(self.r0, self.r1), lerp(self.a0, self.a1)


def trajectory(spec: ShapeSpec, rng: np.random.Generator) -> Trajectory:
    low, high = SIZE_RADIUS[spec.size or "small"] if spec.size else (0.16, 0.18)
    radius = float(rng.uniform(low, high))
    angle = float(rng.uniform(0, 360))
    if spec.position is not None:
        x, y = POSITION_XY[spec.position]
        return Trajectory(x, y, x, y, radius, radius, angle, angle)
    across = float(rng.uniform(0.35, 0.65))  # the other axis
    start, end = float(rng.uniform(0.72, 0.78)), float(rng.uniform(0.22, 0.28))
    x, y = float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.4, 0.6))
    match spec.motion:
        case "left":
            return Trajectory(start, across, end, across, radius, radius, angle, angle)
        case "right":
            return Trajectory(end, across, start, across, radius, radius, angle, angle)
        case "up":
            return Trajectory(across, start, across, end, radius, radius, angle, angle)
        case "down":
            return Trajectory(across, end, across, start, radius, radius, angle, angle)
        case "growing":
            return Trajectory(x, y, x, y, radius * 0.55, radius * 1.45, angle, angle)
        case "shrinking":
            return Trajectory(x, y, x, y, radius * 1.45, radius * 0.55, angle, angle)
        case "rotating":
            turn = float(rng.uniform(100, 180)) * (1 if rng.random() < 0.5 else -1)
            return Trajectory(x, y, x, y, radius, radius, angle, angle + turn)
        case _:
            return Trajectory(x, y, x, y, radius, radius, angle, angle)


def shape_points(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices (pixels) of `shape` with circumradius `r`, turned by `angle` degrees."""
    if shape == "star":
        radii, count = [r if i % 2 == 0 else 0.45 * r for i in range(10)], 10
    elif shape == "diamond":
        radii, count = [r, 0.62 * r, r, 0.62 * r], 4
    else:
        count = {"triangle": 3, "square": 4, "hexagon": 6, "circle": 48}[shape]
        radii = [r] * count
    offset = 45.0 if shape == "square" else -90.0
    points = []
    for i, radius in enumerate(radii):
        theta = math.radians(angle + offset + 360.0 * i / count)
        points.append((cx + radius * math.cos(theta), cy + radius * math.sin(theta)))
    return points


def background(name: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A background colour with a gentle gradient and fixed grain (the same in every frame of a video)."""
    base = np.array(BACKGROUNDS[name], np.float32)
    gradient = np.linspace(-1, 1, height, dtype=np.float32)[:, None, None] * float(rng.uniform(-12, 12))
    grain = rng.normal(0, 5, (height, width, 1)).astype(np.float32)
    return np.clip(base + gradient + grain, 0, 255).astype(np.uint8)


def draw(canvas: np.ndarray, shapes: list[tuple[ShapeSpec, Trajectory]], t: float) -> np.ndarray:
    image = Image.fromarray(canvas)
    painter = ImageDraw.Draw(image)
    height, width = canvas.shape[:2]
    side = min(width, height)
    for spec, path in shapes:
        x, y, r, angle = path.at(t)
        painter.polygon(shape_points(spec.shape, x * width, y * height, r * side, angle), fill=COLOURS[spec.colour])
    return np.asarray(image)


def render_video(
    shapes: list[ShapeSpec], background_name: str, width: int, height: int, num_frames: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    canvas = background(background_name, width, height, rng)
    paths = [(spec, trajectory(spec, rng)) for spec in shapes]
    for index in range(num_frames):
        yield draw(canvas, paths, index / max(num_frames - 1, 1))


def render_image(spec: ShapeSpec, background_name: str, width: int, height: int, rng) -> np.ndarray:
    canvas = background(background_name, width, height, rng)
    return draw(canvas, [(spec, trajectory(spec, rng))], 0.0)
