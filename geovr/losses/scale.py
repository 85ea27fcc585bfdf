"""Metric-scale loss and its target (GeoVR release).

  s* = <m, d*> / max(<d*, d*>, 1e-12) over the mask
       {conf >= median(conf over non-sky), sky < 0.3, m > 1e-2, d* > 1e-3},
  m  = metric depth x f / 300, f = mean(f_x, f_y) of the teacher camera (pixels, teacher resolution)
  L_scale = mean_b | log(1 + s*) - log(1 + s^) |       (s^ = exp(head) > 0)

The median is the exact lower median (torch.median) of the sample's non-sky confidences, all
frames together: a deliberate difference from the release, whose DA3-derived code takes
torch.quantile(., 0.5) of a random subset of at most 100,000 of them. An empty mask gives s* = 0
(the release's formula); a sample with no usable camera is left without a target upstream
(`geovr.teachers.metric_depth.MetricScaledTeacher`). sky_prob is DA3's sky score (a ReLU output,
>= 0; a pixel is sky at >= 0.3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from geovr.losses._checks import check_batch, check_finite, check_same_shapes

SKY_MAX = 0.3
METRIC_MIN = 1e-2
DEPTH_MIN = 1e-3
DEN_MIN = 1e-12
FOCAL_REF = 300.0


def scale_loss(pred: Tensor, target: Tensor, valid: Tensor | None = None, checked: bool = True) -> Tensor:
    """pred, target: Tensor[B] (positive scale factors). Returns the scalar loss; target is constant.
    valid: bool Tensor[B] or None; a sample without a target (False; its target value is ignored,
    NaN allowed) counts as 0 in the mean over all B, so the loss is the valid samples' mean times
    their share. checked=False skips the NaN/inf check (its host sync): the caller checks."""
    for name, x in (("pred", pred), ("target", target)):
        if not isinstance(x, Tensor) or x.dim() != 1 or x.numel() == 0 or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name}: expected a floating Tensor[B] with B >= 1, got {got}")
    if pred.shape != target.shape:
        raise ValueError(f"target: shape {tuple(target.shape)} differs from pred {tuple(pred.shape)}")
    if valid is not None and (valid.dtype != torch.bool or valid.shape != pred.shape):
        raise ValueError(f"valid: expected a bool Tensor{list(pred.shape)}, got {valid.dtype} {tuple(valid.shape)}")
    if valid is not None:
        target = torch.where(valid, target, torch.ones_like(target))
    if checked:
        check_finite({"pred": [pred], "target": [target]})
    dtype = torch.promote_types(pred.dtype, torch.float32)
    per = (torch.log1p(target.detach().to(dtype)) - torch.log1p(pred.to(dtype))).abs()
    return per.mean() if valid is None else (per * valid).sum() / per.numel()


def focal_from_pose_enc(pose_enc: Tensor, height: int, width: int) -> Tensor:
    """Mean focal length (pixels) per frame from VGGT's pose_enc [T, 9] (FoV h, w at [7:9])."""
    fy = (height / 2) / torch.tan(pose_enc[..., 7] / 2)
    fx = (width / 2) / torch.tan(pose_enc[..., 8] / 2)
    return (fx + fy) / 2


def scale_target(
    metric_depth: list[Tensor],
    teacher_depth: list[Tensor],
    teacher_conf: list[Tensor],
    sky_prob: list[Tensor] | None = None,
    focal: list[Tensor] | None = None,
) -> Tensor:
    """Per-video metric scale s* [B] from lists of Tensor[T, H, W] (one entry per sample).

    focal: list of Tensor[T] (pixels; e.g. `focal_from_pose_enc`), applied as m = metric x f/300;
    None when `metric_depth` is already focal-corrected. sky_prob: list of Tensor[T, H, W] (DA3's sky score).
    """
    metric_depth = check_batch("metric_depth", metric_depth, 3, "[T, H, W]")
    teacher_depth = check_batch("teacher_depth", teacher_depth, 3, "[T, H, W]")
    teacher_conf = check_batch("teacher_conf", teacher_conf, 3, "[T, H, W]")
    check_same_shapes("teacher_depth", teacher_depth, "metric_depth", metric_depth)
    check_same_shapes("teacher_depth", teacher_depth, "teacher_conf", teacher_conf)
    if sky_prob is not None:
        sky_prob = check_batch("sky_prob", sky_prob, 3, "[T, H, W]")
        check_same_shapes("teacher_depth", teacher_depth, "sky_prob", sky_prob)
    if focal is not None:
        focal = check_batch("focal", focal, 1, "[T]")
        for i, (f, d) in enumerate(zip(focal, teacher_depth)):
            if f.shape[0] != d.shape[0]:
                raise ValueError(f"focal[{i}]: {f.shape[0]} frames, but teacher_depth[{i}] has {d.shape[0]}")
    dtype = torch.promote_types(teacher_depth[0].dtype, torch.float32)
    ms, ds, cs, nonsky = [], [], [], []
    for i, d in enumerate(teacher_depth):
        m = metric_depth[i].to(dtype)
        if focal is not None:
            m = m * (focal[i].to(dtype) / FOCAL_REF)[:, None, None]
        ms.append(m.flatten())
        ds.append(d.to(dtype).flatten())
        cs.append(teacher_conf[i].to(dtype).flatten())
        sky = sky_prob[i].to(dtype).flatten() < SKY_MAX if sky_prob is not None else None
        nonsky.append(torch.ones_like(ds[-1], dtype=torch.bool) if sky is None else sky)
    n = max(x.numel() for x in ds)
    pad = lambda xs, v: torch.stack([F.pad(x, (0, n - x.numel()), value=v) for x in xs])  # noqa: E731
    m, d, c, ok = pad(ms, 0.0), pad(ds, 0.0), pad(cs, float("nan")), pad(nonsky, False)
    median = torch.where(ok, c, torch.full_like(c, float("nan"))).nanmedian(dim=1).values
    mask = ok & (c >= median[:, None]) & (m > METRIC_MIN) & (d > DEPTH_MIN)
    mask = mask & torch.isfinite(m) & torch.isfinite(d)
    m, d = torch.where(mask, m, 0.0), torch.where(mask, d, 0.0)
    return (m * d).sum(1) / (d * d).sum(1).clamp(min=DEN_MIN)
