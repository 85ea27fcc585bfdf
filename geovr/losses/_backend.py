"""Which implementation computes a loss: the fused Triton kernel or the eager reference.

`backend` argument (per call) or the `GEOVR_LOSS_BACKEND` environment variable:
  "auto" (default): the kernel for CUDA tensors of 16/32-bit floats when Triton imports, the
           reference otherwise (float64 stays on the reference: the kernels compute in fp32);
  "triton": always the kernel (on CPU tensors this needs TRITON_INTERPRET=1, set before import);
  "reference": always the eager PyTorch reference.

A run can also route one loss to its reference for the whole process (`use_reference`): the
trainer does so when `python -m geovr.doctor`'s check of that loss's fused path failed on this
device (`geovr.doctor.select`). Precedence: a call's `backend` > the routing > the environment.
"""
from __future__ import annotations

import functools
import os

import torch

BACKENDS = ("auto", "triton", "reference")
LOSSES = ("depth", "align", "pose")  # the losses with a fused or compiled path besides the reference
_routed: dict[str, str] = {}  # loss -> why it runs on its reference (set by use_reference)


def use_reference(loss: str, why: str | None) -> None:
    """Route `loss` (one of LOSSES) to its eager reference for this process, `why` saying so;
    why=None restores the normal choice."""
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    if why is None:
        _routed.pop(loss, None)
    else:
        _routed[loss] = why


def routed(loss: str) -> str | None:
    """Why `loss` runs on its reference for this process, or None when it is not routed."""
    return _routed.get(loss)


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_kernel(backend: str | None, device: torch.device, dtype: torch.dtype, loss: str | None = None) -> bool:
    """True when the Triton kernel should run for `dtype` tensors on `device`; `loss` (depth,
    align) applies its routing (use_reference) when `backend` is None."""
    if backend is None and loss is not None and loss in _routed:
        return False
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


def implementation(loss: str, device: torch.device) -> str:
    """What computes `loss` (one of LOSSES) for fp32 tensors on `device` in this process: "triton",
    "triton (interpreter)", "extension (cuda|cpu)" or "reference", with "(fallback)" when the
    process routed it there (use_reference)."""
    if loss in _routed:
        return "reference (fallback)"
    if loss == "pose":
        if os.environ.get("GEOVR_LOSS_BACKEND") == "reference":
            return "reference"
        return f"extension ({'cuda' if device.type == 'cuda' else 'cpu'})"
    if not use_kernel(None, device, torch.float32, loss):
        return "reference"
    return "triton (interpreter)" if device.type != "cuda" else "triton"


def kernel_dtype(device: torch.device, dtype: torch.dtype, capability: tuple[int, int] | None = None) -> torch.dtype:
    """The dtype the kernels read `dtype` inputs in on `device`: bf16 becomes fp32 below sm_80
    (V100, T4: no bf16 instructions for Triton to compile to); the math is fp32 either way and the
    gradient comes back in the input's dtype. capability: the GPU's, queried when None."""
    if dtype != torch.bfloat16 or device.type != "cuda":
        return dtype
    major, _ = capability or torch.cuda.get_device_capability(device)
    return torch.float32 if major < 8 else dtype
