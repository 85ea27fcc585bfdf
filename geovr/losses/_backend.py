"""Which implementation computes a loss: the fused Triton kernel or the eager reference.

`backend` argument (per call) or the `GEOVR_LOSS_BACKEND` environment variable:
  "auto" (default): the kernel for CUDA tensors of 16/32-bit floats when Triton imports, the
           reference otherwise (float64 stays on the reference: the kernels compute in fp32);
  "triton": always the kernel (on CPU tensors this needs TRITON_INTERPRET=1, set before import);
  "reference": always the eager PyTorch reference.
"""
from __future__ import annotations

import functools
import os

import torch

BACKENDS = ("auto", "triton", "reference")


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_kernel(backend: str | None, device: torch.device, dtype: torch.dtype) -> bool:
    """True when the Triton kernel should run for `dtype` tensors on `device`."""
    choice = backend if backend is not None else os.environ.get("GEOVR_LOSS_BACKEND", "auto")
    if choice not in BACKENDS:
        source = "backend" if backend is not None else "GEOVR_LOSS_BACKEND"
        raise ValueError(f"{source}: expected one of {BACKENDS}, got {choice!r}")
    if choice == "reference":
        return False
    if choice == "auto":
        return device.type == "cuda" and dtype != torch.float64 and triton_available()
    if not triton_available():
        raise ValueError("backend='triton': Triton is not installed; pip install 'geovr[triton]'")
    if device.type != "cuda" and not interpreting():
        raise ValueError(
            f"backend='triton': tensors are on {device}; the kernels run on CUDA, or on CPU only "
            f"under TRITON_INTERPRET=1 set before geovr.kernels is imported"
        )
    return True
