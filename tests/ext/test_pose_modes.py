"""The compiled pose loss (geovr._ext through geovr.losses.pose_loss) against the eager reference:
every mode, analytic gradients, fp64 gradcheck and the edge cases of rotations and batches."""
import math

import pytest
import torch
from scipy.spatial.transform import Rotation

from geovr.losses import pose_loss

MODES = ["paper", "geodesic", "relative"]


def _enc(frames, seed=0, dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(t, 9, generator=g, dtype=dtype) * scale for t in frames]


def _check(pred, target, mode, atol=1e-12, **kw):
    pred = [x.detach().clone().requires_grad_() for x in pred]
    got = pose_loss(pred, target, mode, **kw)
    want = pose_loss(pred, target, mode, backend="reference", **kw)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=atol, atol=atol)
    ga = torch.autograd.grad(got[0] + 0.3 * got[2], pred)
    gb = torch.autograd.grad(want[0] + 0.3 * want[2], pred)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=max(atol, 1e-10), atol=max(atol, 1e-10))
    return got, ga


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("huber", [0.0, 0.3])
def test_matches_reference_mixed_frame_counts(mode, huber):
    _check(_enc([1, 2, 7, 32]), _enc([1, 2, 7, 32], seed=1), mode, huber_delta=huber)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_fp64(mode):
    pred = tuple(x.requires_grad_() for x in _enc([1, 4], seed=2))
    target = _enc([1, 4], seed=3)
    assert torch.autograd.gradcheck(lambda *p: pose_loss(list(p), target, mode, huber_delta=0.5), pred)
    assert torch.autograd.gradcheck(lambda *p: pose_loss(list(p), target, mode, weights=(0.2, 2.0, 1.0)), pred)


@pytest.mark.parametrize("mode", MODES)
def test_float32_and_bfloat16_inputs(mode):
    pred, target = _enc([3, 5], seed=4, dtype=torch.float32), _enc([3, 5], seed=5, dtype=torch.float32)
    _check(pred, target, mode, atol=2e-5)
    p16 = [x.bfloat16().requires_grad_() for x in pred]
    loss = pose_loss(p16, target, mode)[0]
    assert loss.dtype == torch.float32
    (g,) = torch.autograd.grad(loss, p16[:1])
    assert g.dtype == torch.bfloat16


def _frames_with_rotation_error(angles, scale=1.0):
    """target: random cameras; pred: the same cameras with rotations perturbed by `angles`."""
    n = len(angles)
    rt = Rotation.random(n, random_state=0)
    axes = torch.randn(n, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    axes = axes / axes.norm(dim=1, keepdim=True)
    rp = Rotation.from_rotvec((axes * torch.tensor(angles, dtype=torch.float64)[:, None]).numpy()) * rt
    target = torch.zeros(n, 9, dtype=torch.float64)
    target[:, 3:7] = torch.from_numpy(rt.as_quat())
    target[:, 7:9] = 1.0
    pred = target.clone()
    pred[:, 3:7] = torch.from_numpy(rp.as_quat()) * scale
    return pred, target


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-3, 1.0, math.pi - 1e-6, math.pi])
def test_geodesic_angle_values(angle):
    pred, target = _frames_with_rotation_error([angle] * 4, scale=2.5)  # unnormalised prediction
    _, _, rot, _ = pose_loss([pred], [target], "geodesic")
    assert rot.item() == pytest.approx(angle, abs=1e-7)
    # finite gradients everywhere, including the identity and pi
    p = pred.clone().requires_grad_()
    (g,) = torch.autograd.grad(pose_loss([p], [target], "geodesic")[0], [p])
    assert torch.isfinite(g).all()


def test_q_and_minus_q_agree():
    pred, target = _enc([6], seed=6), _enc([6], seed=7)
    flipped_p = pred[0].clone()
    flipped_p[:, 3:7] *= -1
    flipped_t = target[0].clone()
    flipped_t[1::2, 3:7] *= -1
    for mode in ("geodesic", "relative"):
        a = pose_loss(pred, target, mode)[2]
        torch.testing.assert_close(pose_loss([flipped_p], target, mode)[2], a)
        torch.testing.assert_close(pose_loss(pred, [flipped_t], mode)[2], a)


def test_relative_single_frame_has_zero_loss_and_gradient():
    pred = _enc([1], seed=8)[0].requires_grad_()
    target = _enc([1], seed=9)
    loss, trans, rot, fov = pose_loss([pred], target, "relative")
    assert trans.item() == 0.0 and rot.item() == 0.0
    (g,) = torch.autograd.grad(trans + rot, [pred])
    assert (g == 0).all()


def test_relative_is_invariant_to_a_common_world_change():
    # T_i T_j^-1 does not depend on the world frame: a rigid change of world leaves the loss alone
    pred, target = _enc([5], seed=10)[0], _enc([5], seed=11)[0]
    world = Rotation.random(random_state=3)
    shift = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    moved = pred.clone()
    rp = Rotation.from_quat(pred[:, 3:7].numpy())
    moved[:, 3:7] = torch.from_numpy((rp * world).as_quat()) * pred[:, 3:7].norm(dim=1, keepdim=True)
    rot_p = torch.from_numpy(rp.as_matrix())
    moved[:, :3] = pred[:, :3] - (rot_p @ torch.from_numpy(world.as_matrix()) @ shift)
    a = pose_loss([pred], [target], "relative")
    b = pose_loss([moved], [target], "relative")
    torch.testing.assert_close(a[1], b[1])
    torch.testing.assert_close(a[2], b[2])


def test_translation_clamp_at_1e4():
    pred, target = _enc([4], seed=12), _enc([4], seed=13)
    pred[0][:, :3] = 1e4
    for mode in MODES:
        got, grads = _check(pred, target, mode)
        if mode != "relative":
            assert got[1].item() == pytest.approx(100.0)
            assert (grads[0][:, :3] == 0).all()


def test_zero_quaternion_is_a_clear_error():
    pred, target = _enc([3], seed=14), _enc([3], seed=15)
    pred[0][2, 3:7] = 0.0
    with pytest.raises(ValueError, match=r"pred\[0\]: the quaternion of frame 2 has norm"):
        pose_loss(pred, target, "geodesic")
    pose_loss(pred, target, "paper")  # the release's L1 is defined there


@pytest.mark.parametrize("bad, match", [
    (dict(mode="se3"), r"mode: expected one of"),
    (dict(backend="cuda"), r"backend: expected"),
    (dict(weights=(1.0, 1.0)), r"weights: expected"),
])
def test_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        pose_loss(_enc([2]), _enc([2]), **bad)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
def test_cpu_and_cuda_agree(mode):
    pred, target = _enc([1, 8, 32, 32], seed=16), _enc([1, 8, 32, 32], seed=17)
    cpu = _check(pred, target, mode)
    pc = [x.cuda().requires_grad_() for x in pred]
    got = pose_loss(pc, [x.cuda() for x in target], mode)
    grads = torch.autograd.grad(got[0] + 0.3 * got[2], pc)
    for a, b in zip(got, cpu[0]):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, cpu[1]):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-12, atol=1e-12)
