"""checked=False (the training objective's mode): no NaN/inf check inside the loss, so no host
sync; the objective checks the inputs on the device with `all_finite` instead. And the scale
loss's `valid`: samples without a target count as 0 in the mean over all samples."""
import pytest
import torch

from geovr.losses import NonFiniteError, align_loss, all_finite, depth_loss, pose_loss, scale_loss


def test_all_finite_is_a_device_flag():
    ok = all_finite({"a": [torch.ones(3), torch.zeros(2, 2)]})
    bad = all_finite({"a": [torch.ones(3)], "b": [torch.tensor([1.0, float("inf")])]})
    assert ok.dtype == torch.bool and ok.dim() == 0 and bool(ok) and not bool(bad)
    assert bool(all_finite({}))


def test_unchecked_losses_do_not_raise_checked_ones_do():
    nan = torch.full((2, 9), float("nan"))
    good = torch.randn(2, 9)
    with pytest.raises(NonFiniteError):
        pose_loss([nan], [good])
    assert torch.isnan(pose_loss([nan], [good], checked=False)[0])
    d = torch.rand(1, 4, 4) + 0.5
    with pytest.raises(NonFiniteError):
        depth_loss([d * float("nan")], [d])
    depth_loss([d * float("nan")], [d], checked=False)  # a value (NaN or not): the caller's flag decides
    s = [[torch.randn(5, 3)]]
    with pytest.raises(NonFiniteError):
        align_loss([[s[0][0] * float("inf")]], s)
    align_loss([[s[0][0] * float("inf")]], s, checked=False)
    with pytest.raises(NonFiniteError):
        scale_loss(torch.tensor([1.0]), torch.tensor([float("nan")]))
    scale_loss(torch.tensor([1.0]), torch.tensor([float("nan")]), checked=False)


def test_scale_loss_valid_mask_counts_missing_targets_as_zero():
    pred = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    target = torch.tensor([2.0, float("nan"), 1.0])
    valid = ~torch.isnan(target)
    got = scale_loss(pred, target, valid=valid)
    terms = (torch.log1p(target[valid]) - torch.log1p(pred[valid].detach())).abs()
    torch.testing.assert_close(got.detach(), terms.mean() * 2 / 3)
    got.backward()
    assert pred.grad[1] == 0 and pred.grad[0] != 0
    none = scale_loss(pred, torch.full((3,), float("nan")), valid=torch.zeros(3, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad
    torch.testing.assert_close(scale_loss(pred, torch.tensor([2.0, 2.0, 1.0]), valid=torch.ones(3, dtype=torch.bool)),
                               scale_loss(pred, torch.tensor([2.0, 2.0, 1.0])))
    with pytest.raises(ValueError, match="valid"):
        scale_loss(pred, target, valid=valid.float())
