"""Procedural indoor scenes: an axis-aligned room with objects of known shape, size and colour.

World frame: metres, z up, the room spans [0, width] x [0, depth] x [0, height]. Objects stand
on the floor near the walls, leaving the middle free for the camera.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# category -> (shape, (min size), (max size)) in metres; size = (x extent, y extent, height), or
# (diameter, diameter, height) for cylinders and (d, d, d) for spheres.
CATEGORIES: dict[str, tuple[str, tuple[float, float, float], tuple[float, float, float]]] = {
    "table": ("box", (0.8, 0.6, 0.7), (1.6, 1.0, 0.8)),
    "bed": ("box", (1.4, 1.9, 0.4), (1.8, 2.1, 0.6)),
    "sofa": ("box", (1.6, 0.8, 0.7), (2.2, 1.0, 0.9)),
    "cabinet": ("box", (0.5, 0.4, 1.0), (1.0, 0.6, 2.0)),
    "box": ("box", (0.3, 0.3, 0.3), (0.6, 0.6, 0.6)),
    "chair": ("box", (0.45, 0.45, 0.8), (0.55, 0.55, 1.0)),
    "trash bin": ("cylinder", (0.25, 0.25, 0.4), (0.4, 0.4, 0.7)),
    "lamp": ("cylinder", (0.2, 0.2, 1.2), (0.35, 0.35, 1.7)),
    "plant pot": ("cylinder", (0.3, 0.3, 0.3), (0.5, 0.5, 0.6)),
    "ball": ("sphere", (0.25, 0.25, 0.25), (0.5, 0.5, 0.5)),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 200), "yellow": (225, 200, 40),
    "purple": (140, 60, 170), "orange": (235, 130, 30), "white": (235, 235, 235),
    "black": (35, 35, 35), "brown": (120, 80, 40), "cyan": (40, 190, 200),
}
CATEGORY_COLOURS: dict[str, str] = dict(zip(CATEGORIES, COLOURS))  # WorldConfig.colour_by_category


@dataclass(frozen=True)
class SceneObject:
    """One object: centre (x, y, z) of its bounding volume, size (sx, sy, sz) in its own frame,
    yaw (rad, about z; boxes only)."""

    category: str
    shape: str
    colour: str
    centre: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float = 0.0

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLOURS[self.colour]

    def footprint_radius(self) -> float:
        return 0.5 * math.hypot(self.size[0], self.size[1])


@dataclass(frozen=True)
class Scene:
    room: tuple[float, float, float]  # width (x), depth (y), height (z), metres
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"room": list(self.room), "objects": [asdict(o) for o in self.objects]}

    @staticmethod
    def from_json(d: dict) -> "Scene":
        objs = tuple(SceneObject(**{**o, "centre": tuple(o["centre"]), "size": tuple(o["size"])})
                     for o in d["objects"])
        return Scene(room=tuple(d["room"]), objects=objs)


def random_scene(rng: np.random.Generator, n_objects: tuple[int, int] = (5, 9),
                 room_range: tuple[tuple[float, float], ...] = ((4.0, 8.0), (4.0, 8.0), (2.6, 3.2)),
                 colour_by_category: bool = False) -> Scene:
    """A room with a random number of non-overlapping objects in the band along its walls.
    Some categories repeat (for counting questions). colour_by_category: each object gets its
    category's colour (the random draw is still made, so the layout is the same either way)."""
    room = tuple(round(float(rng.uniform(lo, hi)), 2) for lo, hi in room_range)
    w, d, _ = room
    names = list(CATEGORIES)
    target = int(rng.integers(n_objects[0], n_objects[1] + 1))
    n_repeat = min(target - 1, int(rng.integers(1, 3)))  # one or two repeated categories
    wanted = [names[i] for i in rng.permutation(len(names))[: target - n_repeat]]
    wanted += [wanted[int(rng.integers(len(wanted)))] for _ in range(n_repeat)]
    objects: list[SceneObject] = []
    for category in wanted:
        for _ in range(100):  # placement tries; a category that does not fit is dropped
            obj = _place(rng, category, w, d, objects, colour_by_category)
            if obj is not None:
                objects.append(obj)
                break
    return Scene(room=room, objects=tuple(objects))


def _place(rng: np.random.Generator, category: str, w: float, d: float,
           objects: list[SceneObject], colour_by_category: bool = False) -> SceneObject | None:
    """A random pose for `category` in the wall band, or None if it overlaps an object."""
    shape, lo, hi = CATEGORIES[category]
    s = rng.uniform(lo, hi)
    if shape == "sphere":
        s = np.full(3, s[0])
    elif shape == "cylinder":
        s = np.array([s[0], s[0], s[2]])
    size = tuple(round(float(v), 3) for v in s)
    yaw = float(rng.choice([0.0, math.pi / 2])) + float(rng.uniform(-0.3, 0.3)) if shape == "box" else 0.0
    r = 0.5 * math.hypot(size[0], size[1])
    # a point in the band between the walls and the camera's free centre
    wall = int(rng.integers(4))
    margin = r + 0.05
    band = min(1.4, 0.3 * min(w, d))
    if wall in (0, 1):
        x = rng.uniform(margin, w - margin)
        y = rng.uniform(margin, max(margin, band)) if wall == 0 else rng.uniform(min(d - margin, d - band), d - margin)
    else:
        y = rng.uniform(margin, d - margin)
        x = rng.uniform(margin, max(margin, band)) if wall == 2 else rng.uniform(min(w - margin, w - band), w - margin)
    # keep clear of the camera's path (an ellipse inside the middle half of the room)
    if abs(x - w / 2) < 0.25 * w + r and abs(y - d / 2) < 0.25 * d + r:
        return None
    if any(math.hypot(x - o.centre[0], y - o.centre[1]) < r + o.footprint_radius() + 0.1 for o in objects):
        return None
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    if colour_by_category:
        colour = CATEGORY_COLOURS[category]
    return SceneObject(category, shape, colour, (round(float(x), 3), round(float(y), 3),
                                                 round(size[2] / 2, 4)), size, round(yaw, 4))
