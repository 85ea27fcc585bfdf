"""Pinhole intrinsics and a camera path through the room.

Conventions (those of VGGT and OpenCV): a camera looks down its +z axis, x right, y down;
extrinsics are world-to-camera [R | t] (3x4), so x_cam = R x_world + t; pixel (u, v) =
(fx X/Z + cx, fy Y/Z + cy), with pixel (i, j)'s centre at (j + 0.5, i + 0.5).
"""
from __future__ import annotations

import math

import numpy as np


def intrinsics(height: int, width: int, hfov_deg: float = 75.0) -> np.ndarray:
    """3x3 K for a horizontal field of view, square pixels, principal point at the centre."""
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """World-to-camera 3x4 for a camera at `eye` looking at `target` (OpenCV axes)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.stack([x, y, z])  # rows: camera axes in world coordinates
    return np.concatenate([r, (-r @ eye)[:, None]], axis=1)


def walkthrough(room: tuple[float, float, float], n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 3, 4] world-to-camera extrinsics: the camera walks an ellipse around the room's centre
    at eye height and turns a full circle looking outwards and slightly down, so every wall and
    object is seen. Random start angle, direction, radii, height and pitch."""
    w, d, h = room
    cx, cy = w / 2, d / 2
    rx, ry = rng.uniform(0.12, 0.22) * w, rng.uniform(0.12, 0.22) * d
    z = rng.uniform(1.3, min(1.7, h - 0.5))
    start = rng.uniform(0, 2 * math.pi)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    pitch = math.radians(rng.uniform(12, 25))
    out = np.empty((n_frames, 3, 4))
    for i in range(n_frames):
        a = start + sign * 2 * math.pi * i / max(n_frames, 1)
        eye = np.array([cx + rx * math.cos(a), cy + ry * math.sin(a), z])
        look = np.array([math.cos(a + sign * 0.6), math.sin(a + sign * 0.6), -math.tan(pitch)])
        out[i] = look_at(eye, eye + look)
    return out
