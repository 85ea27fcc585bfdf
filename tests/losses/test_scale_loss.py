"""Scale target (masked least squares) and scale loss."""
import math

import pytest
import torch

from geovr.losses import focal_from_pose_enc, scale_loss, scale_target
from geovr.losses.release_loop import scale_loss_loop


def test_scale_loss_values_and_gradcheck():
    pred = torch.tensor([0.5, 2.0, 7.0], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    want = (abs(math.log(2) - math.log(1.5)) + 0 + abs(math.log(4) - math.log(8))) / 3
    assert scale_loss(pred, target).item() == pytest.approx(want)
    torch.testing.assert_close(scale_loss(pred, target), scale_loss_loop(pred, target))
    pred2 = torch.tensor([0.5, 2.5, 7.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: scale_loss(p, target), (pred2,))


def test_scale_target_recovers_a_known_scale():
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(3, 8, 10, generator=g, dtype=torch.float64) + 0.5
    conf = torch.rand(3, 8, 10, generator=g, dtype=torch.float64)
    metric = 2.5 * depth
    s = scale_target([metric], [depth], [conf])
    torch.testing.assert_close(s, torch.tensor([2.5], dtype=torch.float64))


def test_scale_target_mask_rules_by_hand():
    depth = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 0.0005, 2.0]]], dtype=torch.float64)
    metric = torch.tensor([[[2.0, 2.0, 9.0, 5.0, 1.0, 0.001]]], dtype=torch.float64)
    conf = torch.tensor([[[0.1, 0.5, 0.9, 0.7, 0.9, 0.9]]], dtype=torch.float64)
    sky = torch.tensor([[[0.0, 0.0, 0.0, 0.9, 0.0, 0.0]]], dtype=torch.float64)
    # non-sky confidences {0.1, 0.5, 0.9, 0.9, 0.9}: lower median 0.9 -> pixels 2, 4, 5 pass conf;
    # pixel 4 fails d* > 1e-3, pixel 5 fails m > 1e-2 -> only pixel 2: s* = 9 * 3 / 9 = 3
    s = scale_target([metric], [depth], [conf], sky_prob=[sky])
    assert s.item() == pytest.approx(3.0)
    # an empty mask gives 0
    assert scale_target([metric], [depth * 0], [conf]).item() == 0.0


def test_focal_correction_from_pose_enc():
    h, w, f = 392, 504, 400.0
    fov_h, fov_w = 2 * math.atan(h / 2 / f), 2 * math.atan(w / 2 / f)
    enc = torch.zeros(2, 9, dtype=torch.float64)
    enc[:, 7], enc[:, 8] = fov_h, fov_w
    focal = focal_from_pose_enc(enc, h, w)
    torch.testing.assert_close(focal, torch.full((2,), f, dtype=torch.float64))
    depth = torch.ones(2, 4, 4, dtype=torch.float64)
    s = scale_target([depth], [depth], [torch.ones_like(depth)], focal=[focal])
    assert s.item() == pytest.approx(f / 300)


def test_batch_of_different_sizes():
    a = torch.ones(2, 3, 4, dtype=torch.float64)
    b = torch.ones(1, 5, 5, dtype=torch.float64)
    s = scale_target([3 * a, 0.5 * b], [a, b], [torch.ones_like(a), torch.ones_like(b)])
    torch.testing.assert_close(s, torch.tensor([3.0, 0.5], dtype=torch.float64))
