"""Depth loss of the GeoVR release: L_depth = L_reg + L_grad, per sample, averaged over samples.

Shapes: `pred`, `target` are lists over samples of Tensor[T, H, W] (depth in the teacher's units,
pred = exp(logits) > 0). Samples may differ in T, H and W.

  e = |pred - target|
  L_reg  = mean(e over e <= thr), thr = min(k-th smallest of clamp(e, max=100), 100),
           k = ceil(0.98 (n - 1)) + 1; plain mean(e) when n <= 1000; mean(clamp(e, max=100)) when
           fewer than 1000 pixels survive.
  L_grad = 1/S sum_{s<4 used} [ mean clamp(|dx D_s|, 100) + mean clamp(|dy D_s|, 100) ],
           D = pred - target, D_s = D[:, ::2^s, ::2^s]; scale s is used when D_s (all frames of
           the sample) has >= 10 pixels, S is the number of scales used, L_grad = 0 when none is.

The `paper` preset (the defaults) reproduces the release exactly; two deviations only where the
release is undefined or random: an empty finite-difference mean (H_s or W_s == 1) counts 0, not
NaN; and above 1e7 pixels the threshold stays exact (the release estimates it on a random 1e6
subset). Which scales are used depends on the map's shape only (a masked-out pixel still counts).
Extensions, off by default: `valid_mask` (pixels excluded from every term; non-finite targets under
a mask are ignored, with finite gradients) and `weight` (per-pixel weights of the L_reg means, such
as the teacher's depth confidence; the threshold stays unweighted).
The target is a constant: no gradient flows to it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from geovr.losses._backend import use_kernel
from geovr.losses._checks import check_batch, check_finite, check_masks, check_same_shapes

CLAMP = 100.0  # error clamp of L_reg's threshold and of L_grad
QUANTILE = (98, 100)  # 0.98 as an exact fraction: the rank k is computed in integers
MIN_PIXELS = 1000  # no filtering at or below this many pixels; fallback below this many survivors
N_SCALES = 4  # finite-difference scales 1, 2, 4, 8
GRAD_MIN_PIXELS = 10  # a scale enters L_grad when its subsampled map has at least this many pixels


def grad_scales_used(t: int, h: int, w: int) -> list[bool]:
    """Per finite-difference scale s: does D[:, ::2^s, ::2^s] of a [t, h, w] map have >= GRAD_MIN_PIXELS pixels."""
    return [t * -(-h // 2**s) * -(-w // 2**s) >= GRAD_MIN_PIXELS for s in range(N_SCALES)]


def quantile_rank(n: Tensor) -> Tensor:
    """k = ceil(0.98 (n - 1)) + 1 (1-based rank of the threshold), exactly, in integers."""
    num, den = QUANTILE
    return (num * (n - 1).clamp(min=0) + den - 1) // den + 1


def depth_loss(
    pred: list[Tensor],
    target: list[Tensor],
    valid_mask: list[Tensor] | None = None,
    *,
    weight: list[Tensor] | None = None,
    backend: str | None = None,
    checked: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """GeoVR depth loss. Returns (loss, reg, grad): scalars, each averaged over samples.

    pred, target: list of Tensor[T, H, W]; valid_mask: list of bool Tensor[T, H, W] or None;
    weight: list of non-negative Tensor[T, H, W] or None; backend: see geovr.losses._backend.
    checked=False skips the NaN/inf check (its host sync): the caller checks (`all_finite`).
    """
    pred = check_batch("pred", pred, 3, "[T, H, W]")
    target = check_batch("target", target, 3, "[T, H, W]")
    check_same_shapes("pred", pred, "target", target)
    if valid_mask is not None:
        valid_mask = check_masks("valid_mask", valid_mask, "pred", pred)
    if weight is not None:
        weight = check_batch("weight", weight, 3, "[T, H, W]")
        check_same_shapes("pred", pred, "weight", weight)
    finite = {"pred": pred, "weight": weight or []}
    if valid_mask is None:
        finite["target"] = target
    if checked:
        check_finite(finite)
    if use_kernel(backend, pred[0].device, pred[0].dtype, loss="depth"):
        from geovr.kernels.depth_loss import fused_depth_loss

        return fused_depth_loss(
            pred, target, valid_mask, weight,
            clamp=CLAMP, quantile=QUANTILE, min_pixels=MIN_PIXELS, n_scales=N_SCALES,
            grad_min_pixels=GRAD_MIN_PIXELS,
        )
    return depth_loss_reference(pred, target, valid_mask, weight)


def _pad_stack(xs: list[Tensor], value: float | bool = 0) -> Tensor:
    """Stack [T, H, W] tensors into [B, Tmax, Hmax, Wmax], padding at the end of each axis."""
    t, h, w = (max(x.shape[i] for x in xs) for i in range(3))
    if all(x.shape == (t, h, w) for x in xs):
        return torch.stack(xs)
    return torch.stack(
        [F.pad(x, (0, w - x.shape[2], 0, h - x.shape[1], 0, t - x.shape[0]), value=value) for x in xs]
    )


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 0 (with zero gradient) where den == 0."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def depth_loss_reference(
    pred: list[Tensor],
    target: list[Tensor],
    valid_mask: list[Tensor] | None = None,
    weight: list[Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Eager, batched (padded) reference of `depth_loss`: the CPU path and the kernels' oracle.

    Math in float32 (float64 for float64 inputs); gradients flow to `pred` through autograd.
    """
    dtype = torch.promote_types(pred[0].dtype, torch.float32)
    p = _pad_stack([x.to(dtype) for x in pred])
    t = _pad_stack([x.detach().to(dtype) for x in target])
    valid = _pad_stack([torch.ones_like(x, dtype=torch.bool) for x in pred], value=False)
    if valid_mask is not None:
        valid = valid & _pad_stack(list(valid_mask), value=False) & torch.isfinite(t)
        t = torch.where(valid, t, torch.zeros_like(t))
    d = torch.where(valid, p - t, torch.zeros_like(p))  # [B, T, H, W]
    dims = (1, 2, 3)
    w = valid.to(dtype)
    if weight is not None:
        w = w * _pad_stack([x.detach().to(dtype) for x in weight])

    # L_reg with the release's quantile filter.
    e = d.abs()
    ec = e.clamp(max=CLAMP)
    n = valid.sum(dims)
    k = quantile_rank(n)
    m = (n - k + 1).clamp(min=1)  # the k-th smallest is the m-th largest
    ks = k.tolist()
    if all(x == ks[0] for x in ks) and bool(valid.all()):  # one rank for every row: O(n) select
        thr = ec.detach().flatten(1).kthvalue(ks[0], dim=1).values
    else:  # per-row ranks: the m-th largest among the valid values (invalid ones sort last)
        ranked = torch.where(valid, ec, torch.full_like(ec, -float("inf"))).detach().flatten(1)
        thr = ranked.topk(int(m.max()), dim=1).values.gather(1, (m - 1)[:, None]).squeeze(1)
    thr = thr.clamp(max=CLAMP)
    surv = valid & (e <= thr[:, None, None, None])
    reg_all = _safe_div((w * e).sum(dims), w.sum(dims))
    reg_clamped = _safe_div((w * ec).sum(dims), w.sum(dims))
    ws = w * surv
    reg_surv = _safe_div((ws * e).sum(dims), ws.sum(dims))
    reg = torch.where(
        n <= MIN_PIXELS, reg_all, torch.where(surv.sum(dims) < MIN_PIXELS, reg_clamped, reg_surv)
    )

    # L_grad: clamped finite differences at the used scales (of 4), averaged over them; a pair
    # counts when both pixels are valid.
    used = torch.tensor([grad_scales_used(*x.shape) for x in pred], device=reg.device)  # [B, N_SCALES]
    grad = torch.zeros_like(reg)
    for s in range(N_SCALES):
        step = 2**s
        ds, vs = d[:, :, ::step, ::step], valid[:, :, ::step, ::step]
        for axis in (3, 2):
            n_ax = ds.shape[axis]
            diff = (ds.narrow(axis, 1, n_ax - 1) - ds.narrow(axis, 0, n_ax - 1)).abs()
            pair = vs.narrow(axis, 1, n_ax - 1) & vs.narrow(axis, 0, n_ax - 1)
            term = _safe_div((diff.clamp(max=CLAMP) * pair).sum(dims), pair.sum(dims).to(dtype))
            grad = grad + torch.where(used[:, s], term, torch.zeros_like(term))
    grad = _safe_div(grad, used.sum(1).to(dtype))
    return (reg + grad).mean(), reg.mean(), grad.mean()
