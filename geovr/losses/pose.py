"""Camera-pose loss of the GeoVR release: L1 on VGGT's 9-D "absT_quaR_FoV" encoding.

`pred`, `target`: lists over samples of Tensor[T, 9] = [t (3) | q xyzw (4, pred unnormalised) |
FoV h, w (2, radians)]; extrinsics camera-from-world, OpenCV, frame 1 = world.

  L_T = mean min(|t^ - t*|, 100),  L_R = mean |q^ - q*| (q* standardised to w >= 0),
  L_F = mean |f^ - f*|,            L_cam = 1.0 L_T + 1.0 L_R + 0.5 L_F
Each mean runs over one sample's frames and components; the batch averages the samples.
The SE(3) modes (geodesic, relative) arrive with the compiled pose extension.
"""
from __future__ import annotations

import torch
from torch import Tensor

from geovr.losses._checks import check_batch, check_finite, check_same_shapes

TRANS_CLAMP = 100.0
WEIGHTS = (1.0, 1.0, 0.5)  # translation, rotation, FoV


def standardise_quaternion(q: Tensor) -> Tensor:
    """q [..., 4] (xyzw) with the sign flipped where w < 0, so that w >= 0 (q and -q agree)."""
    return torch.where(q[..., 3:4] < 0, -q, q)


def pose_loss(pred: list[Tensor], target: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Returns (loss, trans, rot, fov): scalars averaged over samples. Target is a constant."""
    pred = check_batch("pred", pred, 2, "[T, 9]")
    target = check_batch("target", target, 2, "[T, 9]")
    check_same_shapes("pred", pred, "target", target)
    for i, x in enumerate(pred):
        if x.shape[1] != 9 or x.shape[0] == 0:
            raise ValueError(f"pred[{i}]: expected [T >= 1, 9] = [t | q xyzw | fov], got {tuple(x.shape)}")
    check_finite({"pred": pred, "target": target})
    return pose_loss_reference(pred, target)


def pose_loss_reference(pred: list[Tensor], target: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Batched eager reference: all frames packed, per-sample means by index_add."""
    dtype = torch.promote_types(pred[0].dtype, torch.float32)
    p = torch.cat([x.to(dtype) for x in pred])  # [sum T, 9]
    t = torch.cat([x.detach().to(dtype) for x in target])
    frames = torch.tensor([x.shape[0] for x in pred], device=p.device)
    seg = torch.repeat_interleave(torch.arange(len(pred), device=p.device), frames)
    per_frame = torch.stack(
        [
            (p[:, :3] - t[:, :3]).abs().clamp(max=TRANS_CLAMP).mean(-1),
            (p[:, 3:7] - standardise_quaternion(t[:, 3:7])).abs().mean(-1),
            (p[:, 7:9] - t[:, 7:9]).abs().mean(-1),
        ],
        dim=-1,
    )  # [sum T, 3]
    per_sample = torch.zeros(len(pred), 3, dtype=dtype, device=p.device).index_add(0, seg, per_frame)
    parts = (per_sample / frames[:, None]).mean(0)
    w = torch.tensor(WEIGHTS, dtype=dtype, device=p.device)
    return (parts * w).sum(), parts[0], parts[1], parts[2]
