"""Metric depth for GeoVR's scale target: Depth-Anything-3 metric (DA3METRIC-LARGE) or the
synthetic world's exact depth, and `MetricScaledTeacher`, which adds the per-video scale s* to a
3D teacher's targets with `geovr.losses.scale_target`.

A metric-depth model returns, per frame, raw depth at a canonical focal length of 300 px and a sky
score; the scale target multiplies the raw depth by f/300 with f the 3D teacher's focal length at
the same resolution (`geovr.losses.scale.focal_from_pose_enc`), which is how DA3 itself makes its
metric depth metric (`apply_metric_scaling`: f = mean(f_x, f_y) / 300).
"""
from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from ..losses.scale import FOCAL_REF, focal_from_pose_enc, scale_target
from ..model.precision import lower_matmul_weights
from .base import Teacher, TeacherRequest, TeacherTargets
from .loading import from_pretrained_strict
from .runtime import IMAGENET_MEAN, IMAGENET_STD, autocast_dtype, gpu_autocast, resolve_device

logger = logging.getLogger(__name__)

DA3_INSTALL_HINT = ("Depth-Anything-3 is not installed. Install it with\n"
                    "    pip install depth-anything-3\n"
                    "and pass the local folder of the DA3METRIC-LARGE weights (config.json + model.safetensors).")
DA3_METRIC_MODELS = ("da3metric-large", "da3nested-giant-large")  # model names whose network has a metric branch
PATCH = 14  # DA3's ViT patch: frame sizes must be multiples of it


@dataclass
class MetricDepth:
    """raw: depth [T, H, W] at the canonical focal length (metres x 300 / f; DA3 has already set sky
    pixels to the 99th percentile of the rest); sky: DA3's sky score [T, H, W] (a ReLU output: >= 0
    and unbounded, not a probability; a pixel is sky when it is >= 0.3, as in DA3 and the release),
    or None when the model has no sky output."""

    raw: Tensor
    sky: Tensor | None


def metric_cache_id(weights_id: str) -> str:
    """A DA3 metric model's id in cache keys; weights_id: its folder's name."""
    return "da3metric-" + weights_id


def scaled_cache_id(teacher_id: str, metric_id: str) -> str:
    """The id of a teacher whose targets gain the metric model's scale."""
    return f"{teacher_id}+{metric_id}"


class MetricDepthModel(ABC):
    """Something that gives raw metric depth for a sample's teacher frames."""

    cache_id: str

    @abstractmethod
    def __call__(self, request: TeacherRequest) -> MetricDepth:
        ...


def metric_network(model: nn.Module) -> nn.Module:
    """The metric network inside a Depth-Anything-3 module: `DepthAnything3` (the API class) holds
    it as `.model`; a nested model (`da3nested-*`) holds its metric branch as `.da3_metric`; a
    `DepthAnything3Net` (or a module shaped like it) is its own."""
    net = model.model if isinstance(getattr(model, "model", None), nn.Module) and hasattr(model, "model_name") else model
    return getattr(net, "da3_metric", net)


class MetricDepthTeacher(MetricDepthModel):
    """Depth-Anything-3 metric. model: a `depth_anything_3.api.DepthAnything3` or its network,
    called as DA3's nested model calls its metric branch: net(images, export_feat_layers=[]) with
    images ImageNet-normalised [1, T, 3, H, W] (H, W multiples of 14), returning `depth` and `sky`
    [1, T, H, W]; or None to load `weights` (a local DA3 folder, loaded strictly).

    Precision: bf16 autocast on a GPU (as DA3's own forward), fp32 on a CPU (DA3's forward would
    pick fp16 there); outputs are returned as fp32. lower_weights: store the backbone's Linear/
    Conv2d weights in the autocast dtype (the same outputs, 0.6 GB less for DA3METRIC-LARGE; the
    head runs fp32 and keeps its weights); None: when it autocasts on a GPU."""

    def __init__(self, weights: str | os.PathLike | None = None, model: nn.Module | None = None,
                 device: str | torch.device | None = None, autocast: bool = True, weights_id: str | None = None,
                 lower_weights: bool | None = None):
        if model is None:
            if weights is None:
                raise ValueError("MetricDepthTeacher: pass weights=<local DA3 metric folder> (or model=<a module>)")
            model = load_da3(weights)
        self.device = resolve_device(device)
        net = metric_network(model)
        if any(p.device != self.device for p in net.parameters()):  # (a no-op .to() still swaps fake weights)
            net = net.to(self.device)
        self.model = net.eval().requires_grad_(False)
        if lower_weights if lower_weights is not None else (autocast and self.device.type == "cuda"):
            if not isinstance(getattr(net, "backbone", None), nn.Module):
                raise TypeError(f"MetricDepthTeacher: lower_weights needs the network's `backbone` ({type(net).__name__} has none)")
            lower_matmul_weights(net.backbone, autocast_dtype(self.device))
        self.autocast = autocast
        self.cache_id = metric_cache_id(weights_id or (Path(weights).name if weights is not None
                                                       else type(model).__name__))
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 1, 3, 1, 1)

    @torch.no_grad()
    def __call__(self, request: TeacherRequest) -> MetricDepth:
        frames = request.frames
        t, _, h, w = frames.shape
        if h % PATCH or w % PATCH:
            raise ValueError(f"{request.sample_id}: metric-depth frames {h}x{w} must be multiples of {PATCH}")
        x = (frames.to(self.device, torch.float32)[None] - self._mean) / self._std
        with gpu_autocast(self.device, self.autocast):
            out = self.model(x, export_feat_layers=[])
        depth, sky = out["depth"], out.get("sky")
        for name, v in (("depth", depth), ("sky", sky)):
            if v is not None and v.numel() != t * h * w:
                raise ValueError(f"MetricDepthTeacher: {name} came back {tuple(v.shape)}, frames are {t}x{h}x{w}")
        return MetricDepth(raw=depth.float().reshape(t, h, w), sky=None if sky is None else sky.float().reshape(t, h, w))


def load_da3(weights: str | os.PathLike) -> nn.Module:
    """A Depth-Anything-3 metric model from a local folder (config.json naming the model +
    model.safetensors). Strict: a key the model lacks or a weight the file lacks is an error that
    names them (DA3's own from_pretrained would load such a folder silently, leaving random
    weights). FileNotFoundError / ImportError / ValueError with the fix."""
    path = Path(weights)
    if not path.is_dir():
        raise FileNotFoundError(f"DA3 metric weights: {path} is not a folder (download DA3METRIC-LARGE once and "
                                "pass its local folder, config.json + model.safetensors; there is no hub access at run time)")
    try:
        from depth_anything_3.api import DepthAnything3
    except ImportError as err:
        raise ImportError(DA3_INSTALL_HINT) from err
    model = from_pretrained_strict(DepthAnything3, path, "DA3 metric")
    if getattr(model, "model_name", None) not in DA3_METRIC_MODELS:
        raise ValueError(f"DA3 metric weights {path}: model {getattr(model, 'model_name', None)!r} gives relative "
                         f"depth, not metric; pass a folder of one of {list(DA3_METRIC_MODELS)} (DA3METRIC-LARGE)")
    return model


class MetricScaledTeacher(Teacher):
    """A 3D teacher whose targets gain `scale` = s* (metres per teacher unit) from a metric-depth
    model: s* = <m, d*> / <d*, d*> over the release's mask, m = raw x f/300.

    A frame whose field of view is not positive (VGGT's camera head ends in a ReLU, so it can be
    exactly 0, and then f is infinite) is left out of s* and counted in `counts["frames_no_fov"]`;
    a sample with no such frame left gets no scale target (scale = NaN: the scale loss skips it)
    and is counted in `counts["samples_no_scale"]`, never a silent 0."""

    def __init__(self, teacher: Teacher, metric: MetricDepthModel):
        self.teacher, self.metric = teacher, metric
        self.name = teacher.name
        self.layers, self.depth = teacher.layers, teacher.depth
        self.patch_size, self.feature_dim = teacher.patch_size, teacher.feature_dim
        self.counts = {"frames_no_fov": 0, "samples_no_scale": 0}

    @property
    def cache_id(self) -> str:
        return scaled_cache_id(self.teacher.cache_id, self.metric.cache_id)

    def __call__(self, request: TeacherRequest) -> TeacherTargets:
        targets = self.teacher(request)
        fov = targets.pose_enc[:, 7:9]
        usable = ((fov > 0) & torch.isfinite(fov)).all(-1)
        dropped = int((~usable).sum())
        if dropped:
            self.counts["frames_no_fov"] += dropped
            logger.warning("%s: %d of %d frames have a non-positive field of view; left out of the scale target "
                           "(%d frames so far)", request.sample_id, dropped, usable.numel(), self.counts["frames_no_fov"])
        if not usable.any():
            self.counts["samples_no_scale"] += 1
            logger.warning("%s: no frame with a positive field of view: no scale target for this sample (%d so far)",
                           request.sample_id, self.counts["samples_no_scale"])
            return replace(targets, scale=torch.tensor(float("nan")))
        metric = self.metric(request)
        h, w = targets.depth.shape[-2:]
        dev = targets.depth.device
        keep = usable.to(dev)
        focal = focal_from_pose_enc(targets.pose_enc.double(), h, w).to(dev)
        sky = None if metric.sky is None else [metric.sky.to(dev)[keep]]
        s = scale_target([metric.raw.to(dev)[keep]], [targets.depth[keep]], [targets.depth_conf[keep]], sky,
                         [focal[keep]])
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
