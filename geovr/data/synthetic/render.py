"""CPU ray caster: RGB, exact z-depth (metres) and instance ids of a `Scene` from one camera.

Each pixel's ray passes through the pixel centre; its direction is K^-1 (u, v, 1) rotated into
the world, so the ray parameter of the first hit *is* the z-depth. Analytic intersections:
room (inside of a box), yawed boxes (slabs), vertical cylinders (side + caps), spheres.
"""
from __future__ import annotations

import math

import numpy as np

from .scene import Scene

ROOM = -1  # instance id of the room's floor, walls and ceiling
WALL_RGB = np.array([[205, 200, 190], [190, 200, 210], [210, 195, 195], [195, 210, 195]], np.float64)
LIGHT = np.array([0.3, -0.5, 0.81]) / np.linalg.norm([0.3, -0.5, 0.81])


def camera_rays(k: np.ndarray, w2c: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Origin [3] and world directions [H*W, 3] (through pixel centres) whose camera-z is 1."""
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    return pixel_rays(k, w2c, u.ravel(), v.ravel())


def pixel_rays(k: np.ndarray, w2c: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Origin [3] and world directions [N, 3] through continuous pixel coordinates (u, v)."""
    r, t = w2c[:, :3], w2c[:, 3]
    d_cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1)
    return -r.T @ t, d_cam @ r


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 1e-12, 1e-12, d)


def _hit_room(o, d, room):
    hi = np.asarray(room, np.float64)
    ds = _safe(d)
    t_axes = np.where(ds > 0, (hi - o) / ds, (0.0 - o) / ds)
    axis = t_axes.argmin(1)
    t = t_axes[np.arange(len(d)), axis]
    normal = np.zeros_like(d)
    normal[np.arange(len(d)), axis] = -np.sign(ds[np.arange(len(d)), axis])
    return t, normal


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _hit_box(o, d, centre, size, yaw):
    rot = _rot_z(yaw)  # local -> world
    o_l = rot.T @ (o - centre)
    d_l = _safe(d @ rot)  # rows: rot^T d
    half = 0.5 * np.asarray(size)
    t1 = (-half - o_l) / d_l
    t2 = (half - o_l) / d_l
    near = np.minimum(t1, t2)
    t_near = near.max(1)
    t_far = np.maximum(t1, t2).min(1)
    hit = (t_far >= t_near) & (t_near > 1e-6)
    axis = near.argmax(1)
    n_l = np.zeros_like(d)
    n_l[np.arange(len(d)), axis] = -np.sign(d_l[np.arange(len(d)), axis])
    return np.where(hit, t_near, np.inf), n_l @ rot.T


def _hit_sphere(o, d, centre, radius):
    oc = o - centre
    a = (d * d).sum(1)
    b = d @ oc
    disc = b * b - a * (oc @ oc - radius * radius)
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
    p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
    return t, (p - centre) / radius


def _hit_cylinder(o, d, centre, radius, height):
    z0, z1 = centre[2] - height / 2, centre[2] + height / 2
    ox, oy = o[0] - centre[0], o[1] - centre[1]
    a = np.maximum(d[:, 0] ** 2 + d[:, 1] ** 2, 1e-18)
    b = ox * d[:, 0] + oy * d[:, 1]
    disc = b * b - a * (ox * ox + oy * oy - radius * radius)
    t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    z = o[2] + t_side * d[:, 2]
    t_side = np.where((disc >= 0) & (t_side > 1e-6) & (z >= z0) & (z <= z1), t_side, np.inf)
    dz = _safe(d[:, 2])
    t_cap = np.where(o[2] > z1, (z1 - o[2]) / dz, (z0 - o[2]) / dz)
    px, py = ox + t_cap * d[:, 0], oy + t_cap * d[:, 1]
    t_cap = np.where((t_cap > 1e-6) & (px * px + py * py <= radius * radius), t_cap, np.inf)
    t = np.minimum(t_side, t_cap)
    side = t_side <= t_cap
    p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
    n = np.zeros_like(d)
    n[:, 0] = np.where(side, (p[:, 0] - centre[0]) / radius, 0.0)
    n[:, 1] = np.where(side, (p[:, 1] - centre[1]) / radius, 0.0)
    n[:, 2] = np.where(side, 0.0, np.sign(o[2] - centre[2]))
    return t, n


def trace(scene: Scene, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hit of rays from origin `o` [3] along `d` [N, 3] (inside the room).
    Returns the ray parameter t [N] (the z-depth when d's camera-z is 1), normals [N, 3] and
    instance ids [N] (object index, or ROOM)."""
    depth, normal = _hit_room(o, d, scene.room)
    inst = np.full(len(d), ROOM, np.int16)
    for idx, obj in enumerate(scene.objects):
        c = np.asarray(obj.centre, np.float64)
        if obj.shape == "box":
            t, n = _hit_box(o, d, c, obj.size, obj.yaw)
        elif obj.shape == "sphere":
            t, n = _hit_sphere(o, d, c, obj.size[0] / 2)
        else:
            t, n = _hit_cylinder(o, d, c, obj.size[0] / 2, obj.size[2])
        closer = t < depth
        depth = np.where(closer, t, depth)
        normal[closer] = n[closer]
        inst[closer] = idx
    return depth, normal, inst


def render(scene: Scene, k: np.ndarray, w2c: np.ndarray, height: int, width: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one view. Returns rgb uint8 [H, W, 3], depth float32 [H, W] (camera z, metres)
    and instance int16 [H, W] (object index, or ROOM)."""
    o, d = camera_rays(k, w2c, height, width)
    depth, normal, inst = trace(scene, o, d)
    p = o + d * depth[:, None]
    base = _room_albedo(p, normal, scene.room)
    for idx, obj in enumerate(scene.objects):
        base[inst == idx] = obj.rgb
    shade = 0.5 + 0.5 * np.clip(normal @ LIGHT, 0.0, 1.0)
    rgb = np.clip(base * shade[:, None], 0, 255).round().astype(np.uint8)
    return (rgb.reshape(height, width, 3), depth.reshape(height, width).astype(np.float32),
            inst.reshape(height, width))


def _room_albedo(p: np.ndarray, normal: np.ndarray, room) -> np.ndarray:
    """Floor: 0.5 m checker; ceiling: white; each wall its own tint with 1 m vertical stripes."""
    out = np.empty_like(p)
    floor = normal[:, 2] > 0.5
    ceiling = normal[:, 2] < -0.5
    check = (np.floor(p[:, 0] / 0.5) + np.floor(p[:, 1] / 0.5)) % 2
    out[floor] = np.where(check[floor, None] > 0, [170, 140, 110], [120, 95, 75])
    out[ceiling] = [240, 240, 235]
    wall = ~(floor | ceiling)
    wall_id = np.where(np.abs(normal[:, 0]) > 0.5, np.where(normal[:, 0] > 0, 0, 1),
                       np.where(normal[:, 1] > 0, 2, 3))
    along = np.where(np.abs(normal[:, 0]) > 0.5, p[:, 1], p[:, 0])
    stripe = 0.9 + 0.1 * (np.floor(along) % 2)
    out[wall] = WALL_RGB[wall_id[wall]] * stripe[wall, None]
    return out
