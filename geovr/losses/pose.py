"""Camera-pose loss on VGGT's 9-D "absT_quaR_FoV" encoding, computed by the compiled extension.

`pred`, `target`: lists over samples of Tensor[T, 9] = [t (3) | q xyzw (4, pred unnormalised) |
FoV h, w (2, radians)]; extrinsics camera-from-world, OpenCV, frame 1 = world.

Modes (per sample, then averaged over samples; loss = w_T L_T + w_R L_R + w_F L_F):
  paper     (default) the release: L1 on [t | q | fov], translation clamped at 100, the target q
            as the teacher gives it, weights 1 / 1 / 0.5
  geodesic  sign-invariant rotation angle in [0, pi] + robust translation (clamped L1, or Huber
            with huber_delta > 0) + FoV L1
  relative  every ordered frame pair (i, j), i != j: angle between predicted and target relative
            rotations + robust error of the relative translations (t_ij = t_i - R_i R_j^T t_j), +
            FoV L1 per frame. T = 1 has no pairs: those parts are 0 with zero gradient.
Geodesic and relative modes reject predicted quaternions of norm < 1e-8 (a zero quaternion is no
rotation and has no gradient direction): a ValueError names the sample and frame.
standardise_target=True (any mode; off in the `paper` preset) flips each target quaternion to
w >= 0 first. q and -q are one rotation, and VGGT's camera head outputs an unstandardised q, so a
teacher that hops between the two signs from frame to frame (or from video to video) asks the
paper mode's L1 for both at once; standardised, the L1 target is one point per rotation (the
geodesic and relative modes are sign-invariant anyway). The release compares with the raw q.
The target is a constant. The eager references live in pose_reference.py (test oracle).
"""
from __future__ import annotations

import os

import torch
from torch import Tensor

from geovr.losses._backend import routed
from geovr.losses._checks import check_batch, check_finite, check_same_shapes
from geovr.losses.pose_reference import pose_parts_reference

MODES = {"paper": 0, "geodesic": 1, "relative": 2}
TRANS_CLAMP = 100.0
WEIGHTS = (1.0, 1.0, 0.5)  # translation, rotation, FoV
MIN_QUAT_NORM = 1e-8


def standardise_quaternion(q: Tensor) -> Tensor:
    """q [..., 4] (xyzw) with the sign flipped where w < 0, so that w >= 0 (q and -q agree)."""
    return torch.where(q[..., 3:4] < 0, -q, q)


def load_extension():
    """The compiled module geovr._ext, or an ImportError saying how to build it."""
    try:
        from geovr import _ext
    except ImportError as exc:
        raise ImportError(
            "geovr._ext (the compiled pose extension, csrc/) is not built. From the repository: "
            "pip install torch==2.13.0 && pip install --no-build-isolation -e . "
            "(FORCE_CUDA=1 adds the CUDA kernels without a visible GPU); see README 'Native extension'"
        ) from exc
    return _ext


class PoseLossFunction(torch.autograd.Function):
    """parts [B, 3] = PoseLossFunction.apply(pred [N, 9], target [N, 9], offsets [B + 1], mode, clamp, huber)."""

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor, offsets: Tensor, mode: int, clamp: float, huber: float):
        ext = load_extension()
        ctx.save_for_backward(pred, target, offsets)
        ctx.args = (mode, clamp, huber)
        return ext.pose_loss_forward(pred, target, offsets, mode, clamp, huber)

    @staticmethod
    def backward(ctx, grad_parts: Tensor):
        pred, target, offsets = ctx.saved_tensors
        grad = load_extension().pose_loss_backward(pred, target, offsets, grad_parts.contiguous(), *ctx.args)
        return grad.to(pred.dtype), None, None, None, None, None


def _check_values(pred: list[Tensor], target: list[Tensor], p: Tensor, t: Tensor, mode: str) -> None:
    """Non-finite values, and (geodesic/relative) near-zero predicted quaternions: one host sync
    on the packed tensors; the per-sample search for the message runs only on failure."""
    flags = [torch.isfinite(p).all(), torch.isfinite(t).all()]
    if mode != "paper":
        flags.append(torch.linalg.vector_norm(p[:, 3:7], dim=-1).min() >= MIN_QUAT_NORM)
    if all(torch.stack(flags).tolist()):
        return
    check_finite({"pred": pred, "target": target})
    for b, x in enumerate(pred):
        small = (torch.linalg.vector_norm(x[:, 3:7].detach().float(), dim=-1) < MIN_QUAT_NORM).nonzero()
        if len(small):
            raise ValueError(
                f"pred[{b}]: the quaternion of frame {int(small[0])} has norm < {MIN_QUAT_NORM}; "
                f"geodesic and relative modes need a rotation (check the camera head, or use mode='paper')"
            )


def pose_loss(
    pred: list[Tensor],
    target: list[Tensor],
    mode: str = "paper",
    *,
    weights: tuple[float, float, float] = WEIGHTS,
    trans_clamp: float = TRANS_CLAMP,
    huber_delta: float = 0.0,
    standardise_target: bool = False,
    backend: str | None = None,
    checked: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Returns (loss, trans, rot, fov): scalars averaged over samples (see module docstring).

    backend: None/"extension" (the compiled op, CPU or CUDA) or "reference" (eager PyTorch);
    None follows the process's routing (`_backend.use_reference`), then
    GEOVR_LOSS_BACKEND=reference when set, as the other losses do. checked=False
    skips the value checks (NaN/inf; the quaternion norm of the geodesic/relative modes) and their
    host sync: the caller checks (`all_finite`).
    """
    if backend is None and (routed("pose") is not None or os.environ.get("GEOVR_LOSS_BACKEND") == "reference"):
        backend = "reference"
    pred = check_batch("pred", pred, 2, "[T, 9]")
    target = check_batch("target", target, 2, "[T, 9]")
    check_same_shapes("pred", pred, "target", target)
    for i, x in enumerate(pred):
        if x.shape[1] != 9 or x.shape[0] == 0:
            raise ValueError(f"pred[{i}]: expected [T >= 1, 9] = [t | q xyzw | fov], got {tuple(x.shape)}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {tuple(MODES)}, got {mode!r}")
    if backend not in (None, "extension", "reference"):
        raise ValueError(f"backend: expected None, 'extension' or 'reference', got {backend!r}")
    if len(weights) != 3:
        raise ValueError(f"weights: expected (translation, rotation, fov), got {weights!r}")
    dtype = torch.float64 if pred[0].dtype == torch.float64 else torch.float32
    if standardise_target:
        target = [torch.cat([x[:, :3], standardise_quaternion(x[:, 3:7]), x[:, 7:]], 1) for x in target]
    p = torch.cat([x.to(dtype) for x in pred])
    t = torch.cat([x.detach().to(dtype) for x in target])
    if checked:
        _check_values(pred, target, p.detach(), t, mode)
    if backend == "reference":
        parts = pose_parts_reference(pred, target, mode, trans_clamp, huber_delta)
    else:
        frames = torch.tensor([0] + [x.shape[0] for x in pred])
        offsets = frames.cumsum(0).to(p.device)
        parts = PoseLossFunction.apply(p, t, offsets, MODES[mode], float(trans_clamp), float(huber_delta))
    means = parts.mean(0)
    w = means.new_tensor(weights)
    return (means * w).sum(), means[0], means[1], means[2]


def pose_loss_reference(pred: list[Tensor], target: list[Tensor], mode: str = "paper",
                        **kwargs) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """pose_loss with the eager PyTorch reference."""
    return pose_loss(pred, target, mode, backend="reference", **kwargs)
