"""Metric depth for GeoVR's scale target: Depth-Anything-3 metric (DA3METRIC-LARGE) or the
synthetic world's exact depth, and `MetricScaledTeacher`, which adds the per-video scale s* to a
3D teacher's targets with `geovr.losses.scale_target`.

A metric-depth model returns, per frame, raw depth at a canonical focal length of 300 px and a sky
probability; the scale target multiplies the raw depth by f/300 with f the 3D teacher's focal
length (`geovr.losses.scale.focal_from_pose_enc`).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from ..losses.scale import FOCAL_REF, focal_from_pose_enc, scale_target
from .base import Teacher, TeacherRequest, TeacherTargets
from .runtime import IMAGENET_MEAN, IMAGENET_STD, gpu_autocast, resolve_device

DA3_INSTALL_HINT = ("Depth-Anything-3 is not installed. Install it from its public repository, e.g.\n"
                    "    pip install git+https://github.com/ByteDance-Seed/Depth-Anything-3\n"
                    "and pass the local folder of the DA3METRIC-LARGE weights (config.json + model.safetensors).")


@dataclass
class MetricDepth:
    """raw: depth [T, H, W] at the canonical focal length (metres x 300 / f); sky: probability
    [T, H, W] in [0, 1], or None when the model has no sky output."""

    raw: Tensor
    sky: Tensor | None


class MetricDepthModel(ABC):
    """Something that gives raw metric depth for a sample's teacher frames."""

    cache_id: str

    @abstractmethod
    def __call__(self, request: TeacherRequest) -> MetricDepth:
        ...


class MetricDepthTeacher(MetricDepthModel):
    """Depth-Anything-3 metric. model: a DA3-shaped module called as model(images) with images
    ImageNet-normalised [1, T, 3, H, W] (H, W multiples of 14) and returning a mapping with
    `depth` [1, T, H, W] and, for metric models, `sky` [1, T, H, W]; or None to load `weights`."""

    def __init__(self, weights: str | os.PathLike | None = None, model: nn.Module | None = None,
                 device: str | torch.device | None = None, autocast: bool = True, weights_id: str | None = None):
        if model is None:
            if weights is None:
                raise ValueError("MetricDepthTeacher: pass weights=<local DA3 metric folder> (or model=<a module>)")
            model = load_da3(weights)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.autocast = autocast
        self.cache_id = "da3metric-" + (weights_id or (Path(weights).name if weights is not None else type(model).__name__))
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, request: TeacherRequest) -> MetricDepth:
        frames = request.frames
        t, _, h, w = frames.shape
        if h % 14 or w % 14:
            raise ValueError(f"{request.sample_id}: metric-depth frames {h}x{w} must be multiples of 14")
        x = (frames.to(self.device, torch.float32)[None] - self._mean) / self._std
        with gpu_autocast(self.device, self.autocast):
            out = self.model(x)
        depth, sky = out["depth"], out.get("sky")
        if depth.numel() != t * h * w:
            raise ValueError(f"MetricDepthTeacher: depth came back {tuple(depth.shape)}, frames are {t}x{h}x{w}")
        return MetricDepth(raw=depth.float().reshape(t, h, w), sky=None if sky is None else sky.float().reshape(t, h, w))


def load_da3(weights: str | os.PathLike) -> nn.Module:
    """DA3 metric from a local folder; FileNotFoundError / ImportError with the fix."""
    path = Path(weights)
    if not path.exists():
        raise FileNotFoundError(f"DA3 metric weights: {path} does not exist (download DA3METRIC-LARGE once and "
                                "pass its local folder; there is no hub access at run time)")
    try:
        from depth_anything_3.api import DepthAnything3
    except ImportError as err:
        raise ImportError(DA3_INSTALL_HINT) from err
    return DepthAnything3.from_pretrained(str(path))


class MetricScaledTeacher(Teacher):
    """A 3D teacher whose targets gain `scale` = s* (metres per teacher unit) from a metric-depth
    model: s* = <m, d*> / <d*, d*> over the release's mask, m = raw x f/300."""

    def __init__(self, teacher: Teacher, metric: MetricDepthModel):
        self.teacher, self.metric = teacher, metric
        self.name = teacher.name
        self.layers, self.depth = teacher.layers, teacher.depth
        self.patch_size, self.feature_dim = teacher.patch_size, teacher.feature_dim

    @property
    def cache_id(self) -> str:
        return f"{self.teacher.cache_id}+{self.metric.cache_id}"

    def __call__(self, request: TeacherRequest) -> TeacherTargets:
        targets = self.teacher(request)
        metric = self.metric(request)
        h, w = targets.depth.shape[-2:]
        focal = focal_from_pose_enc(targets.pose_enc.double(), h, w)
        sky = None if metric.sky is None else [metric.sky.to(targets.depth.device)]
        s = scale_target([metric.raw.to(targets.depth.device)], [targets.depth], [targets.depth_conf], sky,
                         [focal.to(targets.depth.device)])
        return replace(targets, scale=s[0].float())


class SyntheticMetricDepth(MetricDepthModel):
    """The synthetic world's exact metric depth, as a metric-depth model would report it (raw =
    metres x 300 / f, no sky): with it, `MetricScaledTeacher` recovers the world's true scale."""

    def __init__(self, root: str | os.PathLike):
        from .synthetic import SyntheticTeacher

        self._world = SyntheticTeacher(root, feature_dim=1)
        self.cache_id = "synthetic-metric"

    def __call__(self, request: TeacherRequest) -> MetricDepth:
        targets = self._world(request)
        h, w = targets.depth.shape[-2:]
        metres = targets.depth.double() * targets.scale.double()
        focal = focal_from_pose_enc(targets.pose_enc.double(), h, w)
        return MetricDepth(raw=(metres * FOCAL_REF / focal[:, None, None]).float(), sky=None)
