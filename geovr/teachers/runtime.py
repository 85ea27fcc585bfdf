"""Where and how a frozen teacher network runs: its device, its GPU autocast, ImageNet statistics."""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device`, or the GPU when one is visible, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def gpu_autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager:
    """bf16 autocast (fp16 where bf16 is unsupported) on a GPU; nothing on a CPU or when disabled."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return nullcontext()
