"""Pose loss (paper L1 on the 9-D encoding): values, sign convention, clamp, gradients."""
import pytest
import torch

from geovr.losses import pose_loss
from geovr.losses.release_loop import pose_loss_loop


def _poses(frames, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(t, 9, generator=g, dtype=dtype) for t in frames]


def test_matches_release_loop_mixed_frame_counts():
    pred, target = _poses([1, 4, 32]), _poses([1, 4, 32], seed=1)
    for a, b in zip(pose_loss(pred, target), pose_loss_loop(pred, target)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_target_quaternion_is_used_as_given_unless_standardised():
    """The release (and `paper`) compares with the teacher's quaternion as VGGT's camera head
    outputs it; standardise_target=True flips it to w >= 0 first."""
    pred, target = _poses([3]), _poses([3], seed=1)
    q = target[0][:, 3:7]
    assert (q[:, 3] < 0).any() and (q[:, 3] > 0).any()
    flipped = target[0].clone()
    flipped[:, 3:7] = -flipped[:, 3:7]
    raw, raw_flipped = pose_loss(pred, target)[2], pose_loss(pred, [flipped])[2]
    assert raw.item() != pytest.approx(raw_flipped.item())
    # by hand: the mean over frames and components of |q^ - q*|
    assert raw.item() == pytest.approx((pred[0][:, 3:7] - q).abs().mean().item(), rel=1e-12)
    for backend in (None, "reference"):
        std = pose_loss(pred, target, standardise_target=True, backend=backend)[2]
        torch.testing.assert_close(std, pose_loss(pred, [flipped], standardise_target=True, backend=backend)[2])
        qs = torch.where(q[:, 3:4] < 0, -q, q)
        assert std.item() == pytest.approx((pred[0][:, 3:7] - qs).abs().mean().item(), rel=1e-12)
    # a prediction equal to the raw target has zero rotation error; to the standardised one, not
    p = pred[0].clone()
    p[:, 3:7] = q
    assert pose_loss([p], target)[2].item() == 0.0
    assert pose_loss([p], target, standardise_target=True)[2].item() > 0.0


def test_translation_clamp_and_weights():
    pred = [torch.zeros(2, 9, dtype=torch.float64)]
    target = [torch.zeros(2, 9, dtype=torch.float64)]
    target[0][:, 6] = 1.0  # w = 1
    target[0][0, 0] = 1e4  # clamped to 100
    target[0][:, 7:9] = 0.6
    loss, lt, lr, lf = pose_loss(pred, target)
    assert lt.item() == pytest.approx(100.0 / 6)
    assert lr.item() == pytest.approx(2.0 / 8)
    assert lf.item() == pytest.approx(0.6)
    assert loss.item() == pytest.approx(lt.item() + lr.item() + 0.5 * lf.item())


def test_gradcheck_fp64():
    pred = [x.requires_grad_() for x in _poses([1, 3], seed=2)]
    target = _poses([1, 3], seed=3)
    assert torch.autograd.gradcheck(lambda *p: pose_loss(list(p), target), tuple(pred))


def test_bad_width_is_rejected():
    with pytest.raises(ValueError, match=r"pred\[0\]: expected \[T >= 1, 9\]"):
        pose_loss([torch.zeros(3, 7)], [torch.zeros(3, 7)])
