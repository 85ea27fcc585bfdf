"""One synthetic scene end to end: scene -> camera path -> rendered views -> QA, in memory."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import intrinsics, walkthrough
from .qa import QA, generate_qa
from .render import camera_rays, render
from .scene import Scene, random_scene


@dataclass(frozen=True)
class WorldConfig:
    """height/width: render size (pixels); fps and seconds: the video's rate and length;
    hfov_deg: horizontal field of view; objects: (min, max) objects per room.
    colour_by_category: every object of a category has that category's colour (`CATEGORY_COLOURS`),
    so naming an object names a colour: questions a tiny vision tower can ground; otherwise colours
    are drawn at random (the scenes are otherwise the same)."""

    height: int = 240
    width: int = 320
    fps: float = 4.0
    seconds: float = 8.0
    hfov_deg: float = 75.0
    objects: tuple[int, int] = (6, 10)
    colour_by_category: bool = False

    @property
    def n_frames(self) -> int:
        return max(2, int(round(self.fps * self.seconds)))


@dataclass
class RenderedScene:
    """rgb uint8 [T, H, W, 3]; depth float32 [T, H, W] (z, metres); instances int16 [T, H, W];
    extrinsics float64 [T, 3, 4] (world-to-camera, OpenCV); intrinsics float64 [3, 3];
    metric_scale: mean distance of all rendered points from the first camera (metres), i.e. the
    factor from VGGT-normalised depth to metres."""

    scene: Scene
    rgb: np.ndarray
    depth: np.ndarray
    instances: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    metric_scale: float
    qa: list[QA]


def metric_scale(depth: np.ndarray, extrinsics: np.ndarray, k: np.ndarray) -> float:
    """Mean Euclidean distance of every pixel's 3D point from the first camera's centre."""
    t, h, w = depth.shape
    centre0 = -extrinsics[0, :, :3].T @ extrinsics[0, :, 3]
    total = 0.0
    for i in range(t):
        o, d = camera_rays(k, extrinsics[i], h, w)
        points = o + d * depth[i].reshape(-1, 1).astype(np.float64)
        total += float(np.linalg.norm(points - centre0, axis=-1).mean())
    return total / t


def make_scene(seed: int, cfg: WorldConfig = WorldConfig()) -> RenderedScene:
    """Build and render scene number `seed` (deterministic)."""
    rng = np.random.default_rng(seed)
    scene = random_scene(rng, n_objects=cfg.objects, colour_by_category=cfg.colour_by_category)
    ext = walkthrough(scene.room, cfg.n_frames, rng)
    k = intrinsics(cfg.height, cfg.width, cfg.hfov_deg)
    views = [render(scene, k, ext[i], cfg.height, cfg.width) for i in range(cfg.n_frames)]
    rgb, depth, inst = (np.stack(x) for x in zip(*views))
    qa = generate_qa(scene, inst, rng)
    return RenderedScene(scene, rgb, depth, inst, ext, k, metric_scale(depth, ext, k), qa)
