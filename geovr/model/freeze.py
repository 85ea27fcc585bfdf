"""Freezing Qwen3-VL's vision tower except its mergers (the release trains the mergers with the LLM)."""
from __future__ import annotations

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
