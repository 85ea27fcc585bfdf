"""`SyntheticTeacher`: exact targets from the synthetic world, so GeoVR trains meaningfully on a
CPU with no downloaded weights.

- depth: the scene re-rendered at the teacher's resolution (exact z-depth; `exact=False`
  resamples the stored depth bilinearly instead, faster), divided by the scene's metric scale, as
  VGGT's outputs are normalised (mean point distance from the first camera = 1).
- pose_enc: the true cameras relative to frame 1, translations in the same normalised units.
- scale: the metric scale (metres per unit), exact.
- features: per teacher layer, random Fourier features of each patch's mean 3D point (in the first
  camera's normalised frame), so the same surface seen from two frames has the same feature, as a
  multi-view-consistent teacher's features should. Deeper layers use higher frequencies.
"""
from __future__ import annotations

import json
import math
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

from ..data.synthetic.render import camera_rays, trace
from ..model.layer_map import VGGT_DEPTH, VGGT_LAYERS
from .base import Teacher, TeacherRequest, TeacherTargets
from .pose_encoding import extrinsics_to_pose_enc, relative_to_first


GEOMETRY_KEYS = ("depth", "extrinsics", "intrinsics", "metric_scale")  # what the targets read
GEOMETRY_CACHE_BYTES = 1 << 30  # decoded geometry kept in memory per teacher (least recently used out)


class GeometryCache:
    """Decoded geometry files (`GEOMETRY_KEYS` only), least recently used first out once their
    arrays pass `limit` bytes: each epoch over a world that fits reads each npz once."""

    def __init__(self, limit: int = GEOMETRY_CACHE_BYTES):
        self.limit, self.bytes, self.reads = limit, 0, 0
        self._items: OrderedDict[str, dict] = OrderedDict()

    def __call__(self, path: str) -> dict:
        if path in self._items:
            self._items.move_to_end(path)
            return self._items[path]
        with np.load(path) as z:
            geo = {k: z[k] for k in GEOMETRY_KEYS}
        self.reads += 1
        self._items[path] = geo
        self.bytes += sum(a.nbytes for a in geo.values())
        while self.bytes > self.limit and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self.bytes -= sum(a.nbytes for a in old.values())
        return geo


def synthetic_cache_id(layers: tuple[int, ...] = VGGT_LAYERS, feature_dim: int = 1024, patch_size: int = 14,
                       seed: int = 0, exact: bool = True) -> str:
    """The synthetic teacher's id in cache keys, from its settings (no teacher built)."""
    return (f"synthetic-l{'-'.join(map(str, layers))}-c{feature_dim}-p{patch_size}-s{seed}-"
            f"{'exact' if exact else 'resampled'}")


class SyntheticTeacher(Teacher):
    """root: the dataset folder written by `geovr.data.synthetic` (records name
    `geometry/scene_XXXXX.npz`). feature_dim: C of the features (VGGT's frame half: 1024)."""

    name = "synthetic"

    def __init__(self, root: str | os.PathLike, layers: tuple[int, ...] = VGGT_LAYERS, depth: int = VGGT_DEPTH,
                 feature_dim: int = 1024, patch_size: int = 14, exact: bool = True, seed: int = 0,
                 cache_bytes: int = GEOMETRY_CACHE_BYTES):
        self.root = os.fspath(root)
        self.geometry = GeometryCache(cache_bytes)
        self.layers, self.depth, self.feature_dim = tuple(layers), depth, feature_dim
        self.patch_size, self.exact, self.seed = patch_size, exact, seed
        g = torch.Generator().manual_seed(seed)
        self._freq = {l: torch.randn(3, feature_dim, generator=g, dtype=torch.float64) * 3.0 * (1 + i)
                      for i, l in enumerate(self.layers)}
        self._phase = {l: torch.rand(feature_dim, generator=g, dtype=torch.float64) * 2 * math.pi
                       for l in self.layers}

    @property
    def cache_id(self) -> str:
        return synthetic_cache_id(self.layers, self.feature_dim, self.patch_size, self.seed, self.exact)

    def _geometry(self, request: TeacherRequest) -> tuple[dict, str]:
        rel = request.extra.get("geometry")
        if not rel:
            raise ValueError(f"{request.sample_id}: the record has no 'geometry' field; the synthetic teacher "
                             "needs data written by `python -m geovr.data.synthetic`")
        path = os.path.join(self.root, rel)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{request.sample_id}: geometry file {path} not found (is root={self.root} "
                                    "the synthetic dataset's folder?)")
        return self.geometry(path), path

    def _depth(self, geo: dict, path: str, idx: list[int], size: tuple[int, int], k: np.ndarray) -> torch.Tensor:
        """Metric z-depth [T, H', W'] at the teacher's size (k: intrinsics at that size)."""
        stored = torch.from_numpy(geo["depth"][idx]).double()
        if tuple(stored.shape[-2:]) == size:
            return stored
        if not self.exact:
            return F.interpolate(stored[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        from ..data.synthetic.scene import Scene

        scene_file = os.path.join(os.path.dirname(os.path.dirname(path)), "scenes",
                                  os.path.basename(path).replace(".npz", ".json"))
        with open(scene_file) as f:
            scene = Scene.from_json(json.load(f)["scene"])
        out = []
        for i in idx:
            o, d = camera_rays(k, geo["extrinsics"][i], *size)
            out.append(torch.from_numpy(trace(scene, o, d)[0].reshape(size)))
        return torch.stack(out)

    @torch.no_grad()
    def __call__(self, request: TeacherRequest) -> TeacherTargets:
        geo, path = self._geometry(request)
        idx = list(request.frame_indices)
        size = tuple(request.frames.shape[-2:])
        if size[0] % self.patch_size or size[1] % self.patch_size:
            raise ValueError(f"teacher frames {size} must be multiples of the patch {self.patch_size}")
        scale = float(geo["metric_scale"])
        h0, w0 = geo["depth"].shape[-2:]
        k = geo["intrinsics"].copy()  # the same cameras at the teacher's size
        k[0] *= size[1] / w0
        k[1] *= size[0] / h0
        depth = self._depth(geo, path, idx, size, k)
        rel = relative_to_first(torch.from_numpy(geo["extrinsics"][idx]).double())  # metres
        points = torch.stack([  # every pixel's 3D point in the first camera's frame, normalised units
            torch.from_numpy(o + d * depth[i].reshape(-1, 1).numpy()).reshape(*size, 3)
            for i, (o, d) in enumerate(camera_rays(k, rel[i].numpy(), *size) for i in range(len(idx)))]) / scale
        rel[:, :, 3] /= scale
        pose_enc = extrinsics_to_pose_enc(rel, torch.from_numpy(k), size)
        pooled = F.avg_pool2d(points.permute(0, 3, 1, 2), self.patch_size).permute(0, 2, 3, 1)  # [T, h, w, 3]
        features = {l: torch.sin(pooled @ self._freq[l] + self._phase[l]).float() for l in self.layers}
        device = request.frames.device
        return TeacherTargets(
            pose_enc=pose_enc.float().to(device), depth=(depth / scale).float().to(device),
            depth_conf=torch.ones_like(depth, dtype=torch.float32, device=device),
            features={l: f.to(device) for l, f in features.items()},
            scale=torch.tensor(scale, dtype=torch.float32, device=device))
