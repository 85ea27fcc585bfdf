"""Eager PyTorch references of the pose-loss modes: the test oracle and the benchmark's "eager"
baseline of the compiled extension (csrc/). Batched over the packed frames of all samples.

Per sample (means over its terms), then averaged over samples:
  paper     L_T = mean min(|t^ - t*|, 100), L_R = mean |q^ - q*| (q* as given), L_F = mean |f^ - f*|
  geodesic  L_T = mean rho(t^ - t*), L_R = mean angle(conj(q*) q^) in [0, pi], L_F as paper
  relative  over ordered pairs i != j: L_T = mean rho(t^_ij - t*_ij), L_R = mean angle between
            q^_ij = u_i conj(u_j) and q*_ij; t_ij = t_i - R_i R_j^T t_j; L_F as paper
rho = min(|x|, clamp) when huber_delta <= 0, else Huber(huber_delta). angle(q) = 2 atan2(|v|, |w|).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product of [..., 4] xyzw quaternions."""
    ax, ay, az, aw = a.unbind(-1)
    bx, by, bz, bw = b.unbind(-1)
    return torch.stack([
        aw * bx + bw * ax + ay * bz - az * by,
        aw * by + bw * ay + az * bx - ax * bz,
        aw * bz + bw * az + ax * by - ay * bx,
        aw * bw - ax * bx - ay * by - az * bz,
    ], -1)


def quat_conj(q: Tensor) -> Tensor:
    return q * q.new_tensor([-1.0, -1.0, -1.0, 1.0])


def quat_angle(q: Tensor) -> Tensor:
    """Rotation angle in [0, pi] of [..., 4] quaternions (any scale, either sign)."""
    return 2 * torch.atan2(torch.linalg.vector_norm(q[..., :3], dim=-1), q[..., 3].abs())


def quat_to_rot(u: Tensor) -> Tensor:
    """[..., 4] unit xyzw -> [..., 3, 3] (the polynomial form used by csrc/pose_math.h)."""
    x, y, z, w = u.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1).unflatten(-1, (3, 3))


def robust(x: Tensor, clamp: float, huber_delta: float) -> Tensor:
    if huber_delta > 0:
        return torch.nn.functional.huber_loss(x, torch.zeros_like(x), reduction="none", delta=huber_delta) / huber_delta
    return x.abs().clamp(max=clamp)


def _segment_mean(values: Tensor, seg: Tensor, counts: Tensor, batch: int) -> Tensor:
    """Per-sample mean of rows `values` [M, ...] (flattened) grouped by seg; 0 for no rows."""
    rows = values.reshape(values.shape[0], -1).sum(1)
    sums = torch.zeros(batch, dtype=values.dtype, device=values.device).index_add(0, seg, rows)
    per_row = math.prod(values.shape[1:])
    return sums / (counts * per_row).clamp(min=1)


def _pairs(frames: list[int], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Packed indices (i, j) of every ordered pair i != j within each sample, and their sample."""
    ii, jj, ss, off = [], [], [], 0
    for b, t in enumerate(frames):
        idx = torch.arange(off, off + t)
        i, j = torch.meshgrid(idx, idx, indexing="ij")
        keep = i != j
        ii.append(i[keep])
        jj.append(j[keep])
        ss.append(torch.full((int(keep.sum()),), b, dtype=torch.long))
        off += t
    return torch.cat(ii).to(device), torch.cat(jj).to(device), torch.cat(ss).to(device)


def _relative(enc: Tensor, i: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
    u = enc[:, 3:7] / torch.linalg.vector_norm(enc[:, 3:7], dim=-1, keepdim=True)
    R = quat_to_rot(u)
    q_ij = quat_mul(u[i], quat_conj(u[j]))
    s = (R[j].transpose(-1, -2) @ enc[j, :3, None])
    t_ij = enc[i, :3] - (R[i] @ s).squeeze(-1)
    return q_ij, t_ij


def pose_parts_reference(pred: list[Tensor], target: list[Tensor], mode: str, trans_clamp: float,
                         huber_delta: float) -> Tensor:
    """Per-sample parts [B, 3] = (translation, rotation, fov) of `mode`."""
    dtype = torch.promote_types(pred[0].dtype, torch.float32)
    p = torch.cat([x.to(dtype) for x in pred])
    t = torch.cat([x.detach().to(dtype) for x in target])
    frames = [x.shape[0] for x in pred]
    batch = len(pred)
    counts = torch.tensor(frames, device=p.device, dtype=dtype)
    seg = torch.repeat_interleave(torch.arange(batch, device=p.device), torch.tensor(frames, device=p.device))
    fov = _segment_mean((p[:, 7:9] - t[:, 7:9]).abs(), seg, counts, batch)
    if mode == "paper":
        trans = _segment_mean((p[:, :3] - t[:, :3]).abs().clamp(max=trans_clamp), seg, counts, batch)
        rot = _segment_mean((p[:, 3:7] - t[:, 3:7]).abs(), seg, counts, batch)
    elif mode == "geodesic":
        qt = t[:, 3:7] / torch.linalg.vector_norm(t[:, 3:7], dim=-1, keepdim=True)
        trans = _segment_mean(robust(p[:, :3] - t[:, :3], trans_clamp, huber_delta), seg, counts, batch)
        rot = _segment_mean(quat_angle(quat_mul(quat_conj(qt), p[:, 3:7])), seg, counts, batch)
    elif mode == "relative":
        i, j, pseg = _pairs(frames, p.device)
        n_pairs = counts * (counts - 1)
        qp, tp = _relative(p, i, j)
        qt, tt = _relative(t, i, j)
        trans = _segment_mean(robust(tp - tt, trans_clamp, huber_delta), pseg, n_pairs, batch)
        rot = _segment_mean(quat_angle(quat_mul(quat_conj(qt), qp)), pseg, n_pairs, batch)
    else:
        raise ValueError(f"mode: expected 'paper', 'geodesic' or 'relative', got {mode!r}")
    return torch.stack([trans, rot, fov], -1)
