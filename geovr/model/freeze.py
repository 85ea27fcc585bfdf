"""Freezing Qwen3-VL's vision tower except its mergers (the release trains the mergers with the
LLM), and storing the frozen blocks' matmul weights in the autocast dtype."""
from __future__ import annotations

import torch
from torch import nn

VISION_MERGERS = ("merger.", "deepstack_merger_list.")


def freeze_vision_tower(visual: nn.Module) -> int:
    """requires_grad False on every parameter of `visual` (a `Qwen3VLVisionModel`) but the patch
    merger and the DeepStack mergers. Returns the number of frozen parameters."""
    frozen = 0
    for name, p in visual.named_parameters():
        if not name.startswith(VISION_MERGERS):
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def lower_frozen_vision(visual: nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    """Store the Linear weights of `visual`'s blocks (frozen by `freeze_vision_tower`) in `dtype`:
    under autocast to `dtype` the tower computes the same values (autocast casts them so at every
    call; the published Qwen3-VL weights are bf16, so nothing is lost) with half their memory
    (0.4 GB less at 2B, 1.1 GB at 8B). The mergers (trained) and the patch embedding stay. Returns
    the number of layers cast."""
    from .precision import lower_matmul_weights

    if any(p.requires_grad for p in visual.blocks.parameters()):
        raise ValueError("lower_frozen_vision: the vision blocks are not frozen (model.freeze_vision=false)")
    return lower_matmul_weights(visual.blocks, dtype)
