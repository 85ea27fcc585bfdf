"""One optimizer step's forward and backward on the Megatron backend (TP x PP x DP).

Each micro-batch becomes its GeoVR sequence and video slots (`prepare`), then megatron-core's
pipeline schedule runs it stage by stage. On every stage the geometric losses of the heads living
there are computed with the same `micro_loss` as the HF path; a non-last stage attaches its total
to its output (`AttachLoss`), the last stage adds the text loss in the schedule's loss function.
Normalisation is the HF path's (`objective.py`): text over the step's answer tokens, geometric
parts times the micro-batch's video share, so the gradient does not depend on the split.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model.geo_inputs import GeoInputs, VideoSlot, pad_geo_inputs, plan_geo_inputs, video_slots
from ..model.geovr_model import GeoOutputs
from ..parallel.megatron.geovr_stage import AttachLoss, MegatronGeoVR
from ..parallel.megatron.qwen3vl import next_token_targets, rope_index
from ..teachers.base import TeacherTargets
from .config import LossConfig
from .objective import PARTS, micro_loss


@dataclass
class Prepared:
    """One micro-batch ready for the schedule."""

    batch: dict
    geo: GeoInputs
    slots: list[VideoSlot]
    text_targets: Tensor
    text_mask: Tensor
    targets: list[TeacherTargets]
    video_share: float


def prepare(batch: dict, module: MegatronGeoVR, targets: list[TeacherTargets], video_share: float,
            device: torch.device | None = None) -> Prepared:
    """batch: collated; targets: the teacher's, one per video sample; device: where the step runs.
    The GeoVR sequence is planned where the batch is (the trainer passes the CPU batch: its integer
    loops then cost no host syncs), then batch and plan move to `device` (if given)."""
    hf_config = module.stage.hf_config
    geo = plan_geo_inputs(batch, rope_index(hf_config, batch), module.cfg.camera, module.cfg.scale)
    if module.stage.text.sequence_parallel:  # the sequence is split evenly over the TP ranks
        geo = pad_geo_inputs(geo, module.config.tensor_model_parallel_size)
    slots = video_slots(batch, geo, hf_config.vision_config.spatial_merge_size)
    if device is not None:
        from ..data.qwen_inputs import batch_to

        batch, geo = batch_to(batch, device), geo.to(device)
    text_targets, mask = next_token_targets(geo.labels)
    return Prepared(batch, geo, slots, text_targets, mask, targets, video_share)


def forward_backward(model, module: MegatronGeoVR, micro: list[Prepared], weights: LossConfig, step_tokens: float,
                     dp_size: int, forward_only: bool = False) -> tuple[dict[str, Tensor], bool]:
    """Run the step's micro-batches through the pipeline (gradients land in megatron-core's main_grad
    buffers, reduced over DP). model: the DDP-wrapped `module`. Returns this rank's loss parts (each
    scaled to its share of the step; summed over the PP and DP ranks they give the step's values;
    every TP rank holds the same) and whether they were all finite (a bool tensor on the device)."""
    from megatron.core.pipeline_parallel import get_forward_backward_func

    device = micro[0].text_targets.device
    parts = {k: torch.zeros((), device=device) for k in PARTS}
    finite = [torch.ones((), dtype=torch.bool, device=device)]  # a device flag: no host sync per micro-batch
    here = module.parts_here
    align_share = len(module.aligned) / max(1, len(module.cfg.teacher_layers))
    m = len(micro)

    def geometric(preds, p: Prepared):
        if not p.targets or not any(here.values()):
            return None
        out = GeoOutputs(loss_text=None, logits=None, video_samples=[s.sample for s in p.slots], pose=preds.pose,
                         depth=preds.depth, scale=preds.scale, features=preds.features)
        loss = micro_loss(out, p.targets, weights, p.video_share, here, align_share)
        for k, v in loss.parts.items():
            parts[k] += v
        finite[0] = finite[0] & loss.finite.to(device)
        return loss

    def forward_step(data_iterator, wrapped):
        p = next(data_iterator)
        out, preds = wrapped(p.batch, p.geo, p.slots, p.text_targets)
        geo = geometric(preds, p)
        if not module.last:
            if geo is not None:
                out = AttachLoss.apply(out, geo.total * dp_size)
            return out, None

        def loss_func(token_loss: Tensor):
            if token_loss.dim() == 1:  # the supervised rows only (text_logits="supervised")
                text = token_loss.float().sum() / step_tokens
            else:
                text = (token_loss.float() * p.text_mask).sum() / step_tokens
            parts["text"] += text.detach()
            finite[0] = finite[0] & torch.isfinite(text.detach()).to(device)
            total = weights.text * text + (geo.total if geo is not None else 0.0)
            # the schedule divides by the micro-batch count; the normalisation above already holds
            return total * dp_size * m, {}

        return out, loss_func

    get_forward_backward_func()(
        forward_step_func=forward_step, data_iterator=iter(micro), model=[model], num_microbatches=m,
        seq_length=max(p.geo.input_ids.shape[1] for p in micro),
        micro_batch_size=micro[0].geo.input_ids.shape[0], forward_only=forward_only)
    return parts, finite[0]
