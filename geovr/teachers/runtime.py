"""Where and how a frozen teacher network runs: its device, its GPU autocast, ImageNet statistics
(its matmul weights in the autocast dtype: `geovr.model.precision.lower_matmul_weights`)."""
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


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The dtype a teacher autocasts to on `device`: bf16 (fp16 on a GPU without bf16)."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def gpu_autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager:
    """Autocast to `autocast_dtype` on a GPU; nothing on a CPU or when disabled."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=autocast_dtype(device))
    return nullcontext()

