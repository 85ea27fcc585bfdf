"""Fused feature-alignment loss: mean over (layer, sample) segments of mean_tokens (1 - cos).

Inputs are packed rows: student S [R, D] and teacher F [R, D], R = K x sum_b N_b, rows ordered
layer-major then sample, segment id = k B + b. One launch per direction:
  forward   per row: <s, f>, |s|, |f| in fp32 over D chunks (no normalised copies); cos, |s|, |f|
            saved (12 bytes per row); (1 - cos) / N_seg accumulated per segment, one atomic per
            segment run in the tile
  Row indices are int64 (with D = 1 a GPU holds the 716M rows whose 3 stats pass 2^31).
  backward  per row: ds = -g (f / (|s|_e |f|_e) - cos s / (|s|_e |s|)), |x|_e = max(|x|, eps),
            the second term dropped where |s| <= eps (as torch's cosine_similarity)
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor

from geovr.losses._backend import kernel_dtype
from geovr.kernels._launch import FP_FUSION
from geovr.kernels._packing import pack_flat, to_device

# A [BLOCK_R, BLOCK_D] tile is 16 elements per thread at 4 warps (four 16-byte fp32 loads of each
# input). The earlier 16 x 512 tile (64 per thread) hit sm_90's 255-register cap and spilled in
# both directions (python -m geovr.kernels.aot prints registers and spills); 8 x 256 needs ~102
# registers forward (three per-lane partial sums), ~118 backward on sm_90 (int64 row indices).
BLOCK_R = 8  # rows per program
MAX_BLOCK_D = 256  # channels per inner step


@triton.jit
def _align_forward_kernel(
    s_ptr, f_ptr, seg_ptr, inv_ptr, stats_ptr, seg_loss_ptr, R, D, eps,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)  # R x 3 passes 2^31 at 716M rows
    live = rows < R
    base = rows[:, None] * D
    # per-lane partial sums over the D chunks, reduced across the row once after the loop
    dot = tl.zeros([BLOCK_R, BLOCK_D], dtype=tl.float32)
    ss = tl.zeros([BLOCK_R, BLOCK_D], dtype=tl.float32)
    ff = tl.zeros([BLOCK_R, BLOCK_D], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = live[:, None] & (cols[None, :] < D)
        s = tl.load(s_ptr + base + cols[None, :], mask=m, other=0.0).to(tl.float32)
        f = tl.load(f_ptr + base + cols[None, :], mask=m, other=0.0).to(tl.float32)
        dot += s * f
        ss += s * s
        ff += f * f
    ns = tl.sqrt(tl.sum(ss, 1))
    nf = tl.sqrt(tl.sum(ff, 1))
    cos = tl.sum(dot, 1) / (tl.maximum(ns, eps) * tl.maximum(nf, eps))
    tl.store(stats_ptr + rows * 3, cos, mask=live)
    tl.store(stats_ptr + rows * 3 + 1, ns, mask=live)
    tl.store(stats_ptr + rows * 3 + 2, nf, mask=live)
    seg = tl.load(seg_ptr + rows, mask=live, other=0)
    contrib = tl.where(live, (1.0 - cos) * tl.load(inv_ptr + seg, mask=live, other=0.0), 0.0)
    first = tl.load(seg_ptr + tl.program_id(0).to(tl.int64) * BLOCK_R)
    same = live & (seg == first)
    tl.atomic_add(seg_loss_ptr + first, tl.sum(tl.where(same, contrib, 0.0)))
    tl.atomic_add(seg_loss_ptr + seg, contrib, mask=live & (seg != first))


@triton.jit
def _align_backward_kernel(
    s_ptr, f_ptr, g_ptr, seg_ptr, inv_ptr, stats_ptr, gseg_ptr, R, D, eps,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)  # R x 3 passes 2^31 at 716M rows
    live = rows < R
    base = rows[:, None] * D
    seg = tl.load(seg_ptr + rows, mask=live, other=0)
    g = tl.load(gseg_ptr + seg, mask=live, other=0.0) * tl.load(inv_ptr + seg, mask=live, other=0.0)
    cos = tl.load(stats_ptr + rows * 3, mask=live, other=0.0)
    ns = tl.load(stats_ptr + rows * 3 + 1, mask=live, other=1.0)
    nf = tl.load(stats_ptr + rows * 3 + 2, mask=live, other=1.0)
    ns_e = tl.maximum(ns, eps)
    a = -g / (ns_e * tl.maximum(nf, eps))
    c = tl.where(ns > eps, g * cos / (ns_e * tl.where(ns > eps, ns, 1.0)), 0.0)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        m = live[:, None] & (cols[None, :] < D)
        s = tl.load(s_ptr + base + cols[None, :], mask=m, other=0.0).to(tl.float32)
        f = tl.load(f_ptr + base + cols[None, :], mask=m, other=0.0).to(tl.float32)
        grad = a[:, None] * f + c[:, None] * s
        tl.store(g_ptr + base + cols[None, :], grad.to(g_ptr.dtype.element_ty), mask=m)


@functools.lru_cache(maxsize=64)
def _segments(counts: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """(segment id per row int32 [R], 1 / N_seg fp32 [S], 0 for empty segments); cached.

    The row ids are expanded on the device from the S counts (repeat_interleave with its output
    size given: no host sync), so a new layout costs O(S) host work, not O(R)."""
    r = sum(counts)
    ids = torch.arange(len(counts), dtype=torch.int32, device=device)
    seg = torch.repeat_interleave(ids, to_device(list(counts), torch.int64, device), output_size=r) if r else ids[:1]
    return seg, to_device([1.0 / c if c else 0.0 for c in counts], torch.float32, device)


def _block_d(d: int) -> int:
    return min(triton.next_power_of_2(d), MAX_BLOCK_D)


class AlignLossFunction(torch.autograd.Function):
    """forward(n_segments, eps, *student, *teacher) -> (loss, per-segment means [S])."""

    @staticmethod
    def forward(ctx, n_seg: int, eps: float, *tensors: Tensor):
        student, teacher = tensors[:n_seg], tensors[n_seg:]
        d = student[0].shape[1]
        s = pack_flat(student).view(-1, d)
        f = pack_flat(teacher, teacher[0].dtype).view(-1, d)
        counts = tuple(x.shape[0] for x in student)
        seg, inv = _segments(counts, s.device)
        r = s.shape[0]
        stats = torch.empty(r, 3, dtype=torch.float32, device=s.device)
        seg_loss = torch.zeros(n_seg, dtype=torch.float32, device=s.device)
        if r:
            _align_forward_kernel[(triton.cdiv(r, BLOCK_R),)](
                s, f, seg, inv, stats, seg_loss, r, d, eps, BLOCK_R=BLOCK_R, BLOCK_D=_block_d(d),
                enable_fp_fusion=FP_FUSION,
            )
        ctx.save_for_backward(s, f, seg, inv, stats)
        ctx.eps, ctx.counts, ctx.dtypes = eps, counts, [x.dtype for x in student]
        return seg_loss.sum() / n_seg, seg_loss

    @staticmethod
    def backward(ctx, g_loss: Tensor, g_seg: Tensor):
        s, f, seg, inv, stats = ctx.saved_tensors
        n_seg = len(ctx.counts)
        gseg = (g_loss / n_seg + g_seg).float().contiguous()
        g = torch.empty_like(s)
        r, d = s.shape
        if r:
            _align_backward_kernel[(triton.cdiv(r, BLOCK_R),)](
                s, f, g, seg, inv, stats, gseg, r, d, ctx.eps, BLOCK_R=BLOCK_R, BLOCK_D=_block_d(d),
                enable_fp_fusion=FP_FUSION,
            )
        grads = [x.to(dt) for x, dt in zip(g.split(list(ctx.counts)), ctx.dtypes)]
        return (None, None, *grads, *([None] * n_seg))


def fused_align_loss(student: list[list[Tensor]], teacher: list[list[Tensor]], *, eps: float) -> Tensor:
    """Launcher used by geovr.losses.align_loss (which validates the inputs)."""
    s = [x for layer in student for x in layer]
    f = [x.detach() for layer in teacher for x in layer]
    dtype = kernel_dtype(s[0].device, s[0].dtype)  # bf16 read as fp32 below sm_80
    s = [x if x.dtype == dtype else x.to(dtype) for x in s]
    if f[0].dtype == torch.bfloat16 and dtype != torch.bfloat16:
        f = [x.to(dtype) for x in f]
    loss, _ = AlignLossFunction.apply(len(s), eps, *s, *f)
    return loss


def _aot_specs():
    """(name, kernel, signature, constexprs) for geovr.kernels.aot, per input dtype."""
    specs = []
    for dt in ("fp32", "bf16", "fp16"):
        common = {"s_ptr": f"*{dt}", "f_ptr": f"*{dt}", "seg_ptr": "*i32", "inv_ptr": "*fp32",
                  "stats_ptr": "*fp32"}
        scalars = {"R": "i32", "D": "i32", "eps": "fp32"}
        consts = dict(BLOCK_R=BLOCK_R, BLOCK_D=MAX_BLOCK_D)
        specs.append((f"align_forward[{dt}]", _align_forward_kernel,
                      {**common, "seg_loss_ptr": "*fp32", **scalars}, consts))
        specs.append((f"align_backward[{dt}]", _align_backward_kernel,
                      {**common, "g_ptr": f"*{dt}", "gseg_ptr": "*fp32", **scalars}, consts))
    return specs
