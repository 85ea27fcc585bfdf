"""The GeoVR training objective for one micro-batch: the four geometric losses against the
teacher's targets plus the text loss, weighted as the config says.

Normalisation, so that any split of a step's batch over micro-batches and data-parallel ranks
gives the same gradient: the text loss is a sum over answer tokens divided by the step's total
token count (`num_items_in_batch`, all micro-batches of all ranks), and each geometric loss is the
micro-batch's per-sample mean times (its video samples / the step's video samples). Summing
micro-batches and ranks then gives exact step means. A packed sequence (K questions sharing one
video prefix, `geovr.data.packing`) is K samples: its geometric losses weigh K in the mean
(`sample_weights`), and the step counts its K questions, so a step has the gradient of the same
questions as K separate samples.

A non-finite prediction or target does not raise and costs no host sync: each part's inputs are
checked on the device (`all_finite`), a part with a non-finite input becomes NaN (still connected
to the graph, so every rank runs the same backward), and `MicroLoss.finite` is a device flag the
loop reads once per step, when it decides to skip the step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..losses import align_loss, all_finite, depth_loss, pose_loss, scale_loss
from ..model.geovr_model import GeoOutputs
from ..teachers.base import TeacherTargets
from .config import LossConfig

PARTS = ("text", "pose", "depth", "align", "scale")


@dataclass
class MicroLoss:
    """total: the weighted sum to backpropagate; parts: each unweighted part already scaled to its
    share of the step (sum over micro-batches and ranks = the step's value); finite: a bool scalar
    tensor on the device, all parts and their inputs finite (read by the loop, once per step)."""

    total: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)
    finite: Tensor = field(default_factory=lambda: torch.ones((), dtype=torch.bool))


def _unless(ok: Tensor, part: Tensor) -> Tensor:
    """part, or NaN (connected to the graph) where its inputs were not finite: no host sync."""
    return torch.where(ok.to(part.device), part, torch.full_like(part, float("nan")))


def pooled_features(targets: TeacherTargets, layer: int) -> Tensor:
    """The alignment target [T, h/2, w/2, C]: the teacher's features 2x2 average pooled (by the
    cache already, or here)."""
    return targets.pooled(layer)


def weight_classes(sample_weights: list[float] | None, n: int) -> list[tuple[list[int], float]]:
    """[(sample indices, their share of the weighted mean)] per distinct weight: a weighted mean
    over samples is the sum over classes of share x the class's plain mean, so each loss runs
    unweighted (fused kernels included) once per class. None or equal weights: one class, 1.0."""
    if sample_weights is None or len(set(sample_weights)) <= 1:
        return [(list(range(n)), 1.0)]
    if len(sample_weights) != n:
        raise ValueError(f"sample_weights: {len(sample_weights)} weights for {n} video samples")
    total = float(sum(sample_weights))
    classes: dict[float, list[int]] = {}
    for i, w in enumerate(sample_weights):
        classes.setdefault(w, []).append(i)
    return [(idx, w * len(idx) / total) for w, idx in classes.items()]


def micro_loss(out: GeoOutputs, targets: list[TeacherTargets], weights: LossConfig, video_share: float,
               enabled: dict[str, bool], align_share: float = 1.0, sample_weights: list[float] | None = None) -> MicroLoss:
    """out: the model's outputs (its loss_text already normalised by the step's token count);
    targets: one per video sample, in `out.video_samples` order; video_share: this micro-batch's
    video samples / the step's (packed: the questions its video samples carry / the step's);
    enabled: which geometric parts the model computes; align_share: the share of the aligned
    layers in `out.features` (a pipeline stage holding some of them); sample_weights: per video
    sample, the questions it carries (None: 1 each), the weights of the geometric means."""
    classes = weight_classes(sample_weights, len(targets))
    if len(classes) == 1:
        parts, flags = _geometric(out, targets, weights, enabled, align_share)
    else:  # one loss call per weight class, each a plain mean, summed with the classes' shares
        parts, flags = {}, []
        for idx, share in classes:
            sub, ok = _geometric(_select(out, idx), [targets[i] for i in idx], weights, enabled, align_share)
            for k, v in sub.items():
                parts[k] = parts[k] + share * v if k in parts else share * v
            flags += ok
    if out.loss_text is not None:
        parts = {"text": out.loss_text, **parts}
    return _combine(out, parts, flags, weights, video_share)


def _select(out: GeoOutputs, idx: list[int]) -> GeoOutputs:
    """The outputs of the video samples `idx` (positions in `out.video_samples` order)."""
    pick = lambda xs: [xs[i] for i in idx] if xs else xs  # noqa: E731
    scale = out.scale[torch.tensor(idx, device=out.scale.device)] if out.scale is not None else None
    return GeoOutputs(None, out.logits, pick(out.video_samples), pick(out.pose), pick(out.depth), scale,
                      {g: pick(f) for g, f in out.features.items()}, out.taps)


def _geometric(out: GeoOutputs, targets: list[TeacherTargets], weights: LossConfig, enabled: dict[str, bool],
               align_share: float) -> tuple[dict[str, Tensor], list[Tensor]]:
    """Each enabled geometric part, a plain mean over the video samples, and its finiteness flags."""
    parts: dict[str, Tensor] = {}
    flags: list[Tensor] = []
    if targets:
        if enabled.get("pose"):
            tgt = [t.pose_enc.to(out.pose[0].device) for t in targets]
            ok = all_finite({"pred": out.pose, "target": tgt})
            loss = pose_loss(out.pose, tgt, standardise_target=weights.pose_standardise_target, checked=False)[0]
            parts["pose"], flags = _unless(ok, loss), flags + [ok]
        if enabled.get("depth"):
            pred, tgt = [p.float() for p in out.depth], [t.depth.to(out.depth[0].device) for t in targets]
            ok = all_finite({"pred": pred, "target": tgt})
            parts["depth"], flags = _unless(ok, depth_loss(pred, tgt, checked=False)[0]), flags + [ok]
        if enabled.get("align"):
            layers = sorted(out.features)
            student = [[f.reshape(-1, f.shape[-1]).float() for f in out.features[g]] for g in layers]
            teacher = [[pooled_features(t, g).to(student[0][0].device).reshape(-1, student[k][0].shape[-1])
                        for t in targets] for k, g in enumerate(layers)]
            ok = all_finite({"student": [x for s in student for x in s], "teacher": [x for t in teacher for x in t]})
            parts["align"] = _unless(ok, align_loss(student, teacher, checked=False)) * align_share
            flags.append(ok)
        if enabled.get("scale"):
            if any(t.scale is None for t in targets):
                raise ValueError("the scale loss is on but the teacher gives no scale target: add a metric-depth "
                                 "teacher (teacher.metric_weights) or set loss.scale=0")
            tgt = torch.stack([t.scale.reshape(()) for t in targets]).to(out.scale.device).float()
            have = ~torch.isnan(tgt)  # NaN: the teacher could not measure this sample's scale (counts 0)
            known = torch.where(have, tgt, torch.ones_like(tgt))
            ok = all_finite({"pred": [out.scale], "target": [known]})
            parts["scale"] = _unless(ok, scale_loss(out.scale.float(), tgt, valid=have, checked=False))
            flags.append(ok)
    return parts, flags


def _combine(out: GeoOutputs, parts: dict[str, Tensor], flags: list[Tensor], weights: LossConfig,
             video_share: float) -> MicroLoss:
    scaled = {k: (v if k == "text" else v * video_share) for k, v in parts.items()}
    total = sum(getattr(weights, k) * v for k, v in scaled.items() if getattr(weights, k) > 0)
    if not isinstance(total, Tensor):
        total = out.logits.sum() * 0.0
    finite = torch.ones((), dtype=torch.bool, device=total.device)
    if scaled:
        finite = torch.isfinite(torch.stack([v.detach().float() for v in scaled.values()])).all()
    for ok in flags:
        finite = finite & ok.to(finite.device)
    return MicroLoss(total=total, parts={k: v.detach().float() for k, v in scaled.items()}, finite=finite)
