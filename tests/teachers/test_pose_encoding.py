"""VGGT's pose encoding against scipy, round trips, edge rotations (0, pi), q vs -q."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from geovr.teachers.pose_encoding import (extrinsics_to_pose_enc, pose_enc_to_extrinsics, quaternion_to_rotation,
                                          relative_to_first, rotation_to_quaternion)


def canonical(q):
    return torch.where(q[..., 3:] < 0, -q, q)


def test_quaternions_match_scipy():
    rot = Rotation.random(2000, random_state=1)
    q = rotation_to_quaternion(torch.tensor(rot.as_matrix()))
    torch.testing.assert_close(q, canonical(torch.tensor(rot.as_quat())), atol=1e-12, rtol=0)
    assert torch.all(q[:, 3] >= 0)
    torch.testing.assert_close(quaternion_to_rotation(q), torch.tensor(rot.as_matrix()), atol=1e-12, rtol=0)


@pytest.mark.parametrize("rotvec", [[0, 0, 0], [math.pi, 0, 0], [0, math.pi, 0], [0, 0, math.pi],
                                    [math.pi / math.sqrt(2), math.pi / math.sqrt(2), 0], [1e-9, 0, 0]])
def test_edge_rotations(rotvec):
    m = torch.tensor(Rotation.from_rotvec(rotvec).as_matrix())
    q = rotation_to_quaternion(m)
    assert torch.isfinite(q).all() and q.norm().item() == pytest.approx(1.0)
    torch.testing.assert_close(quaternion_to_rotation(q), m, atol=1e-12, rtol=0)
    torch.testing.assert_close(quaternion_to_rotation(-q), m, atol=1e-12, rtol=0)  # q and -q: one rotation


def test_pose_enc_round_trip_and_fov():
    rng = np.random.default_rng(0)
    rot = torch.tensor(Rotation.random(5, random_state=2).as_matrix())
    ext = torch.cat([rot, torch.tensor(rng.normal(size=(5, 3, 1)))], -1)
    k = torch.tensor([[300.0, 0, 160], [0, 310.0, 120], [0, 0, 1]], dtype=torch.float64)
    enc = extrinsics_to_pose_enc(ext, k, (240, 320))
    assert enc.shape == (5, 9)
    assert enc[0, 7].item() == pytest.approx(2 * math.atan(240 / 620))  # fov_h from fy
    assert enc[0, 8].item() == pytest.approx(2 * math.atan(320 / 600))  # fov_w from fx
    ext2, k2 = pose_enc_to_extrinsics(enc, (240, 320))
    torch.testing.assert_close(ext2, ext, atol=1e-12, rtol=0)
    torch.testing.assert_close(k2[0], k, atol=1e-9, rtol=0)


def test_relative_to_first_keeps_relative_motion():
    rot = torch.tensor(Rotation.random(4, random_state=3).as_matrix())
    ext = torch.cat([rot, torch.randn(4, 3, 1, dtype=torch.float64)], -1)
    rel = relative_to_first(ext)
    torch.testing.assert_close(rel[0], torch.eye(3, 4, dtype=torch.float64), atol=1e-12, rtol=0)

    def homog(e):
        return torch.cat([e, torch.tensor([[[0, 0, 0, 1.0]]], dtype=e.dtype).expand(len(e), 1, 4)], 1)
    a, b = homog(ext), homog(rel)
    torch.testing.assert_close(a[2] @ torch.linalg.inv(a[1]), b[2] @ torch.linalg.inv(b[1]), atol=1e-12, rtol=0)
