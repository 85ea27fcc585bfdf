"""Per-sample eager loops in the style of the authors' release (no masks, no weights).

Written independently from the batched references, for two uses: the oracle the tests compare the
references and kernels with, and the "release loop" baseline of benchmarks/loss_kernels.py.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def depth_loss_loop(pred: list[Tensor], target: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, reg, grad) over lists of [T, H, W]: one sample at a time, like the release."""
    regs, grads = [], []
    for p, t in zip(pred, target):
        dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
        p, t = p.to(dtype), t.detach().to(dtype)
        err = (p - t).abs().flatten()
        n = err.numel()
        if n > 1000:
            clamped = err.clamp(max=100.0)
            k = math.ceil(0.98 * (n - 1)) + 1
            thr = min(torch.kthvalue(clamped.detach(), k).values.item(), 100.0)
            kept = err[err <= thr]
            regs.append(clamped.mean() if kept.numel() < 1000 else kept.mean())
        else:
            regs.append(err.mean())
        diff = p - t
        terms, used = [], 0
        for s in range(4):
            ds = diff[:, :: 2**s, :: 2**s]
            if ds.numel() < 10:  # the release skips a scale with fewer than 10 pixels
                continue
            used += 1
            for dd in (ds[:, :, 1:] - ds[:, :, :-1], ds[:, 1:, :] - ds[:, :-1, :]):
                terms.append(dd.abs().clamp(max=100.0).mean() if dd.numel() else diff.new_zeros(()))
        grads.append(sum(terms) / used if used else diff.new_zeros(()))
    reg, grad = torch.stack(regs), torch.stack(grads)
    return (reg + grad).mean(), reg.mean(), grad.mean()


def align_loss_loop(student: list[list[Tensor]], teacher: list[list[Tensor]]) -> Tensor:
    """1/(K B) sum_k sum_b mean_tokens(1 - cos) over lists (layers) of lists (samples) of [N, D]."""
    total, count = 0.0, 0
    for s_layer, t_layer in zip(student, teacher):
        for s, t in zip(s_layer, t_layer):
            dtype = torch.float64 if s.dtype == torch.float64 else torch.float32
            cos = (F.normalize(s.to(dtype), dim=-1) * F.normalize(t.detach().to(dtype), dim=-1)).sum(-1)
            total = total + (1 - cos).mean()
            count += 1
    return total / count


def pose_loss_loop(pred: list[Tensor], target: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(loss, trans, rot, fov) of the 9-D [t | q(xyzw) | fov] encoding, one sample at a time."""
    ts, rs, fs = [], [], []
    for p, t in zip(pred, target):
        dtype = torch.float64 if p.dtype == torch.float64 else torch.float32
        p, t = p.to(dtype), t.detach().to(dtype)
        ts.append((p[:, :3] - t[:, :3]).abs().clamp(max=100.0).mean())
        rs.append((p[:, 3:7] - t[:, 3:7]).abs().mean())  # the teacher's quaternion as it is
        fs.append((p[:, 7:9] - t[:, 7:9]).abs().mean())
    lt, lr, lf = torch.stack(ts).mean(), torch.stack(rs).mean(), torch.stack(fs).mean()
    return 1.0 * lt + 1.0 * lr + 0.5 * lf, lt, lr, lf


def scale_loss_loop(pred: Tensor, target: Tensor) -> Tensor:
    """mean_b |log(1 + s*) - log(1 + s^)|."""
    return torch.stack(
        [(torch.log(1 + t.detach()) - torch.log(1 + p)).abs() for p, t in zip(pred, target)]
    ).mean()
