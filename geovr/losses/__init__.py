"""The four GeoVR losses. Each takes a batch as lists of per-sample tensors.

  depth_loss(pred, target, valid_mask=None)  -> (loss, reg, grad)       lists of [T, H, W]
  align_loss(student, teacher)               -> loss                    [layers][samples] of [N, D]
  pose_loss(pred, target)                    -> (loss, trans, rot, fov) lists of [T, 9]
  scale_loss(pred, target)                   -> loss                    Tensor[B]
  scale_target(metric_depth, teacher_depth, teacher_conf, sky_prob=None) -> s* [B]

Depth and alignment run fused Triton kernels on CUDA tensors and the eager references on CPU
(`backend=` or GEOVR_LOSS_BACKEND to force either). The defaults are the `paper` preset: the
values of the authors' release.
"""
from geovr.losses._checks import NonFiniteError, all_finite
from geovr.losses.align import align_loss, align_loss_reference
from geovr.losses.depth import depth_loss, depth_loss_reference
from geovr.losses.pose import pose_loss, pose_loss_reference
from geovr.losses.scale import focal_from_pose_enc, scale_loss, scale_target

__all__ = [
    "NonFiniteError", "align_loss", "all_finite", "align_loss_reference", "depth_loss", "depth_loss_reference",
    "focal_from_pose_enc", "pose_loss", "pose_loss_reference", "scale_loss", "scale_target",
]
