"""Input validation shared by the losses: every problem is a ValueError naming the argument."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class NonFiniteError(ValueError):
    """An input holds NaN or inf (a ValueError, so callers may treat it like any bad input; the
    trainer catches it to skip the step)."""


def check_batch(name: str, tensors: object, ndim: int, what: str) -> list[Tensor]:
    """Check `tensors` is a non-empty list of floating tensors of rank `ndim` on one device.

    `what` describes one element's expected shape for the message, e.g. "[T, H, W]".
    """
    if isinstance(tensors, Tensor) or not isinstance(tensors, Sequence):
        raise ValueError(
            f"{name}: expected a list of per-sample tensors {what}, got {type(tensors).__name__}; "
            f"wrap a single sample as [x] or split a batch with list(x.unbind(0))"
        )
    if len(tensors) == 0:
        raise ValueError(f"{name}: the batch is empty; pass at least one sample {what}")
    device = None
    for i, x in enumerate(tensors):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name}[{i}]: expected a tensor {what}, got {type(x).__name__}")
        if x.dim() != ndim:
            raise ValueError(f"{name}[{i}]: expected shape {what}, got {tuple(x.shape)}")
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{name}[{i}]: expected a floating dtype (float16/bfloat16/float32/float64), "
                f"got {x.dtype}"
            )
        if device is None:
            device = x.device
        elif x.device != device:
            raise ValueError(f"{name}[{i}]: on {x.device}, but {name}[0] is on {device}")
    return list(tensors)


def check_same_shapes(name_a: str, a: list[Tensor], name_b: str, b: list[Tensor]) -> None:
    """Per-sample shapes of `a` and `b` must be equal (no broadcasting), and on one device."""
    if len(a) != len(b):
        raise ValueError(f"{name_b}: {len(b)} samples, but {name_a} has {len(a)}")
    for i, (x, y) in enumerate(zip(a, b)):
        if x.shape != y.shape:
            raise ValueError(
                f"{name_b}[{i}]: shape {tuple(y.shape)} differs from {name_a}[{i}] "
                f"{tuple(x.shape)}; the losses never broadcast"
            )
        if x.device != y.device:
            raise ValueError(f"{name_b}[{i}]: on {y.device}, but {name_a}[{i}] is on {x.device}")


def check_masks(name: str, masks: object, like_name: str, like: list[Tensor]) -> list[Tensor]:
    """Validity masks: one bool tensor per sample, shaped like `like`."""
    if isinstance(masks, Tensor) or not isinstance(masks, Sequence):
        raise ValueError(f"{name}: expected a list of bool tensors, got {type(masks).__name__}")
    masks = list(masks)
    if len(masks) != len(like):
        raise ValueError(f"{name}: {len(masks)} masks, but {like_name} has {len(like)} samples")
    for i, (m, x) in enumerate(zip(masks, like)):
        if not isinstance(m, Tensor) or m.dtype != torch.bool:
            got = m.dtype if isinstance(m, Tensor) else type(m).__name__
            raise ValueError(f"{name}[{i}]: expected a bool tensor, got {got}; use mask.bool()")
        if m.shape != x.shape or m.device != x.device:
            raise ValueError(
                f"{name}[{i}]: shape {tuple(m.shape)} on {m.device} must equal {like_name}[{i}] "
                f"{tuple(x.shape)} on {x.device}"
            )
    return masks


def _finite_flags(named: dict[str, list[Tensor]]) -> tuple[list[str], list[Tensor]]:
    names, flags = [], []
    for name, tensors in named.items():
        for i, x in enumerate(tensors):
            names.append(f"{name}[{i}]")
            flags.append(torch.isfinite(x.detach()).all())
    return names, flags


def all_finite(named: dict[str, list[Tensor]]) -> Tensor:
    """A bool scalar on the tensors' device: no tensor holds NaN/inf. No host sync (the training
    objective collects these and the loop reads them once per step)."""
    _, flags = _finite_flags(named)
    if not flags:
        return torch.ones((), dtype=torch.bool)
    return torch.stack([f.to(flags[0].device) for f in flags]).all()


def check_finite(named: dict[str, list[Tensor]]) -> None:
    """Raise if any tensor holds NaN/inf. One host sync for all of them together."""
    names, flags = _finite_flags(named)
    if not flags:
        return
    ok = torch.stack(flags).cpu()
    bad = [n for n, f in zip(names, ok.tolist()) if not f]
    if bad:
        raise NonFiniteError(
            f"{', '.join(bad)}: contains NaN or inf; pass valid_mask=... to exclude invalid target "
            f"pixels (non-finite targets under a mask are ignored), and check the model for "
            f"diverging predictions"
        )
