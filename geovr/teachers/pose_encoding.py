"""VGGT's 9-D camera encoding ("absT_quaR_FoV") and its inverse.

pose_enc = [t (3) | q (4, xyzw, w >= 0) | fov_h, fov_w (radians)], from camera-from-world
extrinsics [R | t] (OpenCV axes) and pinhole intrinsics, for an image of size (H, W):
fov_h = 2 atan(H / (2 fy)), fov_w = 2 atan(W / (2 fx)). GeoVR's targets use frame 1 as the world
(`relative_to_first`).
"""
from __future__ import annotations

import torch
from torch import Tensor


def rotation_to_quaternion(r: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] (x, y, z, w) with w >= 0.
    Numerically stable: built from the largest of |w|, |x|, |y|, |z|."""
    m = r
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    four_sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                           1 - m00 - m11 + m22], -1)  # 4w^2, 4x^2, 4y^2, 4z^2
    root = torch.sqrt(four_sq.clamp_min(0))
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s10, s20, s21 = m[..., 1, 0] + m[..., 0, 1], m[..., 2, 0] + m[..., 0, 2], m[..., 2, 1] + m[..., 1, 2]
    cand = torch.stack([  # rows: (w, x, y, z) * 2 * root_k, for k = w, x, y, z
        torch.stack([root[..., 0] ** 2, d21, d02, d10], -1),
        torch.stack([d21, root[..., 1] ** 2, s10, s20], -1),
        torch.stack([d02, s10, root[..., 2] ** 2, s21], -1),
        torch.stack([d10, s20, s21, root[..., 3] ** 2], -1),
    ], -2) / (2 * root.clamp_min(1e-12))[..., None]
    best = root.argmax(-1)
    wxyz = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = torch.cat([wxyz[..., 1:], wxyz[..., :1]], -1)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., 3:] < 0, -q, q)


def quaternion_to_rotation(q: Tensor) -> Tensor:
    """Quaternions [..., 4] (x, y, z, w; normalised here) -> rotation matrices [..., 3, 3]."""
    x, y, z, w = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def relative_to_first(extrinsics: Tensor) -> Tensor:
    """[T, 3, 4] camera-from-world -> camera-from-frame-1 (frame 1 becomes the identity)."""
    r0, t0 = extrinsics[0, :, :3], extrinsics[0, :, 3]
    r = extrinsics[:, :, :3] @ r0.T
    t = extrinsics[:, :, 3] - (r @ t0[:, None]).squeeze(-1)
    return torch.cat([r, t[..., None]], -1)


def extrinsics_to_pose_enc(extrinsics: Tensor, intrinsics: Tensor, image_size: tuple[int, int]) -> Tensor:
    """extrinsics [T, 3, 4], intrinsics [T, 3, 3] or [3, 3], image_size (H, W) -> [T, 9]."""
    h, w = image_size
    k = intrinsics.expand(extrinsics.shape[0], 3, 3)
    fov_h = 2 * torch.atan(h / (2 * k[:, 1, 1]))
    fov_w = 2 * torch.atan(w / (2 * k[:, 0, 0]))
    q = rotation_to_quaternion(extrinsics[:, :, :3])
    return torch.cat([extrinsics[:, :, 3], q, fov_h[:, None], fov_w[:, None]], -1)


def pose_enc_to_extrinsics(enc: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """[T, 9] -> (extrinsics [T, 3, 4], intrinsics [T, 3, 3]) with the principal point at the centre."""
    h, w = image_size
    r = quaternion_to_rotation(enc[:, 3:7])
    fy = h / (2 * torch.tan(enc[:, 7] / 2))
    fx = w / (2 * torch.tan(enc[:, 8] / 2))
    k = torch.zeros(enc.shape[0], 3, 3, dtype=enc.dtype, device=enc.device)
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = fx, fy, w / 2, h / 2, 1
    return torch.cat([r, enc[:, :3, None]], -1), k
