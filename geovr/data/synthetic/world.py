"""One synthetic scene end to end: scene -> camera path -> rendered views -> QA, in memory."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import intrinsics, walkthrough
from .qa import QA, generate_qa
from .render import render
from .scene import Scene, random_scene


@dataclass(frozen=True)
class WorldConfig:
    """height/width: render size (pixels); fps and seconds: the video's rate and length;
    hfov_deg: horizontal field of view; objects: (min, max) objects per room."""

    height: int = 240
    width: int = 320
    fps: float = 4.0
    seconds: float = 8.0
    hfov_deg: float = 75.0
    objects: tuple[int, int] = (6, 10)

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
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    rays = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    r0, t0 = extrinsics[0, :, :3], extrinsics[0, :, 3]
    total = 0.0
    for i in range(t):
        r, tr = extrinsics[i, :, :3], extrinsics[i, :, 3]
        x_cam = rays * depth[i, ..., None]
        x_world = (x_cam - tr) @ r  # R^T (x - t)
        x0 = x_world @ r0.T + t0
        total += float(np.linalg.norm(x0, axis=-1).mean())
    return total / t


def make_scene(seed: int, cfg: WorldConfig = WorldConfig()) -> RenderedScene:
    """Build and render scene number `seed` (deterministic)."""
    rng = np.random.default_rng(seed)
    scene = random_scene(rng, n_objects=cfg.objects)
    ext = walkthrough(scene.room, cfg.n_frames, rng)
    k = intrinsics(cfg.height, cfg.width, cfg.hfov_deg)
    views = [render(scene, k, ext[i], cfg.height, cfg.width) for i in range(cfg.n_frames)]
    rgb, depth, inst = (np.stack(x) for x in zip(*views))
    qa = generate_qa(scene, inst, rng)
    return RenderedScene(scene, rgb, depth, inst, ext, k, metric_scale(depth, ext, k), qa)
