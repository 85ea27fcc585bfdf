"""The release recipe inside the counted step (its eager per-sample losses, every hidden state
kept), and what the fake run adapts so that the real code runs on fake tensors as it does for real."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


def release_loss(out, targets) -> torch.Tensor:
    """The release's per-sample eager losses, weighted 1 / 2.5 / 1 / 1 / 1."""
    from ..losses.release_loop import align_loss_loop, depth_loss_loop, pose_loss_loop, scale_loss_loop
    from ..train.objective import pooled_features

    total = out.loss_text
    total = total + 2.5 * pose_loss_loop(out.pose, [t.pose_enc for t in targets])[0]
    total = total + depth_loss_loop([d.float() for d in out.depth], [t.depth for t in targets])[0]
    layers = sorted(out.features)
    student = [[f.reshape(-1, f.shape[-1]) for f in out.features[g]] for g in layers]
    teacher = [[pooled_features(t, g).reshape(-1, student[k][0].shape[-1]) for t in targets]
               for k, g in enumerate(layers)]
    total = total + align_loss_loop(student, teacher)
    return total + scale_loss_loop(out.scale.float(), torch.stack([t.scale.reshape(()) for t in targets]))


@contextmanager
def all_hidden_states(model: nn.Module):
    """Keep every decoder layer's input alive for the step (the release's output_hidden_states)."""
    kept: list = []
    layers = model.base.model.language_model.layers
    handles = [layer.register_forward_pre_hook(lambda m, a, kw: kept.append(a[0] if a else kw["hidden_states"]),
                                               with_kwargs=True) for layer in layers]
    try:
        yield kept
    finally:
        for h in handles:
            h.remove()


@contextmanager
def placeholders_from_ids(student: nn.Module, ids: torch.Tensor):
    """HF finds the video tokens by comparing each position's embedding with the video token's
    (values, which fake tensors lack); here the GeoVR sequence's ids say where they are."""
    model = student.base.model
    original = type(model).get_placeholder_mask

    def by_ids(input_ids, inputs_embeds, **kwargs):
        return original(model, ids if input_ids is None else input_ids, inputs_embeds, **kwargs)

    model.get_placeholder_mask = by_ids
    try:
        yield
    finally:
        del model.get_placeholder_mask


@contextmanager
def masks_as_in_a_real_run():
    """HF's mask builder treats a fake tensor as a trace and then always builds the [B, 1, L, L]
    causal mask; a real run skips it when nothing is padded (SDPA's is_causal). Here the fake
    masks' values are known (ShapeMode constants), so the builder may read them as a real run does."""
    from transformers import masking_utils
    from transformers.utils.import_utils import is_torchdynamo_compiling

    original = masking_utils.is_tracing
    masking_utils.is_tracing = lambda tensor=None: is_torchdynamo_compiling()
    try:
        yield
    finally:
        masking_utils.is_tracing = original


@contextmanager
def reference_losses():
    """The eager loss references (the Triton kernels cannot run on fake tensors; < 1 % of the FLOPs)."""
    import os

    old = os.environ.get("GEOVR_LOSS_BACKEND")
    os.environ["GEOVR_LOSS_BACKEND"] = "reference"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GEOVR_LOSS_BACKEND", None)
        else:
            os.environ["GEOVR_LOSS_BACKEND"] = old
