"""A fused path against its reference on the same inputs: values and every gradient, with the
tolerances the math allows. One definition for the doctor's checks and the kernel tests.

Each `compare_*` returns a `Comparison`: the largest error (relative to the reference's largest
magnitude, per tensor) and the first tensor outside its tolerance, or None.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Depth: both sides upcast the same values and compute in fp32, so the losses differ by summation
# order only, whatever the input dtype; a half-precision gradient is the rounding of two such fp32
# values, so at most one unit in its last place apart.
DEPTH_TOL = dict(rtol=2e-5, atol=2e-6)
# Alignment: fp32 sums over D; the half types round the gradient to their precision.
ALIGN_TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.bfloat16: dict(rtol=1e-2, atol=1e-3),
             torch.float16: dict(rtol=2e-3, atol=1e-4)}
# Pose: the CUDA and CPU extension share csrc/pose_math.h, the reference is eager torch; the same
# math in the input's precision (transcendentals may differ in the last bits between libm and CUDA).
POSE_TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}
DEPTH_UPSTREAM = (1.0, 0.5, -0.25)  # upstream gradients of (loss, reg, grad): each output's backward


@dataclass
class Comparison:
    max_error: float  # max |got - want| / max(|want|, 1e-12) over the compared tensors
    failure: str | None  # the first tensor outside its tolerance, or None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def merge(self, other: "Comparison") -> "Comparison":
        return Comparison(max(self.max_error, other.max_error), self.failure or other.failure)


def within_one_ulp(a: Tensor, b: Tensor) -> bool:
    """Every element of `a` equals `b`'s or one of its two neighbours in their (half) dtype."""
    up = torch.nextafter(b, torch.full_like(b, float("inf")))
    down = torch.nextafter(b, torch.full_like(b, -float("inf")))
    return bool(((a == b) | (a == up) | (a == down)).all())


def _relative(a: Tensor, b: Tensor) -> float:
    if a.numel() == 0:
        return 0.0
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    diff = (a - b).abs()
    diff = torch.where(torch.isnan(a) & torch.isnan(b), torch.zeros_like(diff), diff)
    if not bool(torch.isfinite(diff).all()):
        return float("inf")
    return float(diff.max() / b.abs().max().clamp(min=1e-12))


def close(name: str, got: Tensor, want: Tensor, rtol: float, atol: float, atol_scaled: bool = False) -> Comparison:
    """`got` against `want` (torch.testing.assert_close semantics); atol_scaled adds rtol x the
    reference's largest magnitude to atol (a gradient's error scales with its size)."""
    err = _relative(got, want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return Comparison(err, f"{name}: got {tuple(got.shape)} {got.dtype}, want {tuple(want.shape)} {want.dtype}")
    if atol_scaled and want.numel():
        atol = atol + rtol * float(want.detach().abs().max())
    try:
        torch.testing.assert_close(got.detach().cpu(), want.detach().cpu(), rtol=rtol, atol=atol)
    except AssertionError as e:
        first = next((line.strip() for line in str(e).splitlines() if "Greatest absolute" in line), "")
        return Comparison(err, f"{name}: outside rtol={rtol:g} atol={atol:.3g}; {first}".rstrip("; "))
    return Comparison(err, None)


def compare_depth(pred: list[Tensor], target: list[Tensor], mask: list[Tensor] | None = None,
                  weight: list[Tensor] | None = None, upstream: tuple[float, float, float] = DEPTH_UPSTREAM,
                  tol: dict | None = None, backend: str = "triton") -> Comparison:
    """geovr.losses.depth_loss on `backend` against the reference: (loss, reg, grad) and the
    gradient of every pred through all three outputs (weighted by `upstream`)."""
    from geovr.losses import depth_loss

    tol = tol or DEPTH_TOL
    got = depth_loss(pred, target, mask, weight=weight, backend=backend)
    want = depth_loss(pred, target, mask, weight=weight, backend="reference")
    out = Comparison(0.0, None)
    for name, g, w in zip(("loss", "reg", "grad"), got, want):
        out = out.merge(close(name, g, w, **tol))
    gk = torch.autograd.grad(sum(u * x for u, x in zip(upstream, got)), pred)
    gr = torch.autograd.grad(sum(u * x for u, x in zip(upstream, want)), pred)
    for i, (a, b) in enumerate(zip(gk, gr)):
        if a.dtype in (torch.bfloat16, torch.float16) and a.dtype == b.dtype:
            bad = None if within_one_ulp(a, b) else f"grad of pred[{i}]: more than one {a.dtype} ulp apart"
            out = out.merge(Comparison(_relative(a, b), bad))
        else:
            out = out.merge(close(f"grad of pred[{i}]", a, b, rtol=tol["rtol"], atol=0.0, atol_scaled=True))
    return out


def compare_align(student: list[list[Tensor]], teacher: list[list[Tensor]], upstream: float = 3.0,
                  backend: str = "triton") -> Comparison:
    """geovr.losses.align_loss on `backend` against the reference: the loss and every student
    gradient."""
    from geovr.losses import align_loss

    tol = ALIGN_TOL[student[0][0].dtype]
    leaves = [x for layer in student for x in layer]
    got = align_loss(student, teacher, backend=backend)
    want = align_loss(student, teacher, backend="reference")
    out = close("loss", got, want, **tol)
    gk = torch.autograd.grad(upstream * got, leaves)
    gr = torch.autograd.grad(upstream * want, leaves)
    for i, (a, b) in enumerate(zip(gk, gr)):
        out = out.merge(close(f"grad {i}", a.float(), b.float(), **tol, atol_scaled=True))
        if a.dtype != b.dtype:
            out = out.merge(Comparison(0.0, f"grad {i}: dtype {a.dtype}, reference {b.dtype}"))
    return out


def compare_pose(pred: list[Tensor], target: list[Tensor], mode: str, want_device: torch.device) -> Comparison:
    """geovr.losses.pose_loss on pred's device (the compiled extension: its CUDA kernels for CUDA
    tensors) against the same extension on `want_device` (the CPU one), and against the eager
    reference there: the four outputs and the gradient of every pred."""
    from geovr.losses import pose_loss

    def run(xs: list[Tensor], ts: list[Tensor], backend: str) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        outs = pose_loss(xs, ts, mode, backend=backend)
        return outs, torch.autograd.grad(outs[0] + 0.5 * outs[1] - 0.25 * outs[2] + 2.0 * outs[3], xs)

    here = run(pred, target, "extension")
    leaves = [x.detach().to(want_device).requires_grad_() for x in pred]
    there = [x.to(want_device) for x in target]
    tol = POSE_TOL[pred[0].dtype]
    out = Comparison(0.0, None)
    for backend in ("extension", "reference"):
        ref = run(leaves, there, backend)
        for name, a, b in zip(("loss", "trans", "rot", "fov"), here[0], ref[0]):
            out = out.merge(close(f"{name} vs {backend}", a.cpu(), b.cpu(), **tol))
        for i, (a, b) in enumerate(zip(here[1], ref[1])):
            out = out.merge(close(f"grad of pred[{i}] vs {backend}", a.cpu(), b.cpu(), tol["rtol"], tol["atol"],
                                  atol_scaled=True))
    return out


def compare_align_segments(student: list[list[Tensor]], teacher: list[list[Tensor]]) -> Comparison:
    """The alignment kernel's per-segment output against 1 - cos per segment, and its backward from
    `.sum()`, whose upstream gradient is an expanded (stride-0) tensor."""
    from geovr.kernels.align_loss import AlignLossFunction
    from geovr.losses.align import EPS

    tol = ALIGN_TOL[student[0][0].dtype]
    s = [x for layer in student for x in layer]
    t = [x for layer in teacher for x in layer]
    _, per_segment = AlignLossFunction.apply(len(s), EPS, *s, *t)
    got = torch.autograd.grad(per_segment.sum(), s)
    ref = [(a, b) for a, b in zip(s, t) if len(a)]
    want_seg = torch.stack([(1 - torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1, eps=EPS)).mean()
                            if len(a) else a.float().sum() for a, b in zip(s, t)])
    out = close("per-segment loss", per_segment, want_seg.detach(), **tol)
    want = torch.autograd.grad(want_seg.sum(), [a for a, _ in ref])
    for i, (a, b) in enumerate(zip([g for g, x in zip(got, s) if len(x)], want)):
        out = out.merge(close(f"grad {i} (stride-0 upstream)", a.float(), b.float(), **tol, atol_scaled=True))
    return out
