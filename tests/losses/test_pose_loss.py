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


def test_target_quaternion_sign_is_standardised():
    pred, target = _poses([3]), _poses([3], seed=1)
    flipped = target[0].clone()
    flipped[:, 3:7] = -flipped[:, 3:7]
    torch.testing.assert_close(pose_loss(pred, target)[2], pose_loss(pred, [flipped])[2])
    # a prediction equal to the standardised target has zero rotation error
    q = target[0][:, 3:7]
    p = pred[0].clone()
    p[:, 3:7] = torch.where(q[:, 3:4] < 0, -q, q)
    assert pose_loss([p], target)[2].item() == 0.0


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
