"""csrc/pose_math.h geometry (through geovr._ext) against scipy's Rotation."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from geovr import _ext


def _random_rotations(n, seed=0):
    return Rotation.random(n, random_state=seed)


def _about_axis(angles, seed=1):
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(len(angles), 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return Rotation.from_rotvec(axes * np.asarray(angles)[:, None])


# angles where the math switches branches or loses precision: 0, 1e-8, the series cut, 2pi/3, pi
EDGE_ANGLES = [0.0, 1e-8, 1e-5, 1e-3, 0.5, 2 * math.pi / 3, 2.5, math.pi - 1e-3, math.pi - 1e-6, math.pi]


def test_quat_to_rot_and_back():
    r = _random_rotations(200)
    q = torch.from_numpy(r.as_quat())  # xyzw
    R = _ext.quat_to_rot(q * 3.7)  # unnormalised input is normalised first
    np.testing.assert_allclose(R.numpy(), r.as_matrix(), atol=1e-12)
    back = _ext.rot_to_quat(torch.from_numpy(r.as_matrix()))
    want = r.as_quat(canonical=True)  # w >= 0
    np.testing.assert_allclose(np.abs((back.numpy() * want).sum(1)), 1.0, atol=1e-12)
    assert (back[:, 3] >= 0).all()


@pytest.mark.parametrize("angle", EDGE_ANGLES)
def test_angles_and_log_at_edge_angles(angle):
    r = _about_axis([angle] * 8)
    R = torch.from_numpy(r.as_matrix())
    np.testing.assert_allclose(_ext.rot_angle(R).numpy(), r.magnitude(), atol=1e-7)
    q = torch.from_numpy(r.as_quat())
    np.testing.assert_allclose(_ext.quat_angle(q).numpy(), r.magnitude(), atol=1e-12)
    np.testing.assert_allclose(_ext.quat_angle(-q).numpy(), r.magnitude(), atol=1e-12)  # q vs -q
    omega = _ext.so3_log(R).numpy()
    want = r.as_rotvec()
    if angle > math.pi - 1e-3:  # at pi, omega and -omega are the same rotation
        same = np.minimum(np.abs(omega - want).max(1), np.abs(omega + want).max(1))
        assert same.max() < 2e-6
    else:
        np.testing.assert_allclose(omega, want, atol=1e-7)


def test_log_round_trips_random_rotations():
    r = _random_rotations(500, seed=3)
    omega = _ext.so3_log(torch.from_numpy(r.as_matrix())).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(omega).as_matrix(), r.as_matrix(), atol=1e-10)


def test_relative_pose():
    ri, rj = _random_rotations(50, 4), _random_rotations(50, 5)
    rng = np.random.default_rng(6)
    ti, tj = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    R, t = _ext.relative_pose(*(torch.from_numpy(x) for x in (ri.as_matrix(), ti, rj.as_matrix(), tj)))
    # T_ij = T_i T_j^-1 with 4x4 homogeneous matrices
    def homog(r, t):
        m = np.tile(np.eye(4), (len(t), 1, 1))
        m[:, :3, :3], m[:, :3, 3] = r.as_matrix(), t
        return m
    want = homog(ri, ti) @ np.linalg.inv(homog(rj, tj))
    np.testing.assert_allclose(R.numpy(), want[:, :3, :3], atol=1e-12)
    np.testing.assert_allclose(t.numpy(), want[:, :3, 3], atol=1e-12)


def test_encoding_round_trip():
    r = _random_rotations(20, 7)
    rng = np.random.default_rng(8)
    h, w = 392.0, 504.0
    enc = np.concatenate([rng.normal(size=(20, 3)), r.as_quat(canonical=True),
                          rng.uniform(0.5, 1.5, size=(20, 2))], 1)
    R, t, K = _ext.encoding_to_camera(torch.from_numpy(enc), h, w)
    np.testing.assert_allclose(R.numpy(), r.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(K[:, 1].numpy(), (h / 2) / np.tan(enc[:, 7] / 2))
    np.testing.assert_allclose(K[:, 2:].numpy(), np.tile([w / 2, h / 2], (20, 1)))
    back = _ext.camera_to_encoding(R, t, K, h, w)
    np.testing.assert_allclose(back.numpy(), enc, atol=1e-12)


def test_bad_shapes_raise():
    with pytest.raises(RuntimeError, match=r"q: expected \[\.\.\., 4\]"):
        _ext.quat_to_rot(torch.zeros(3, 5))
