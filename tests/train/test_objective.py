"""The objective's scale part when the teacher could not measure some samples' scale (NaN target:
no frame with a positive field of view): those samples are skipped, the others keep their
per-sample weight, and the step stays finite."""
import torch

from geovr.losses import scale_loss
from geovr.model.geovr_model import GeoOutputs
from geovr.teachers.base import TeacherTargets
from geovr.train.config import LossConfig
from geovr.train.objective import micro_loss


def _targets(scales):
    return [TeacherTargets(pose_enc=torch.zeros(1, 9), depth=torch.ones(1, 2, 2), depth_conf=torch.ones(1, 2, 2),
                           features={}, scale=torch.tensor(s)) for s in scales]


def _loss(pred, scales):
    out = GeoOutputs(loss_text=None, logits=torch.zeros(1, 1, 1), video_samples=list(range(len(scales))),
                     scale=pred)
    return micro_loss(out, _targets(scales), LossConfig(), 1.0, {"scale": True})


def test_nan_targets_are_skipped_with_the_others_weighted_per_sample():
    pred = torch.tensor([1.5, 0.7, 2.0], requires_grad=True)
    got = _loss(pred, [2.0, float("nan"), 3.0])
    assert got.finite
    expected = scale_loss(pred[[0, 2]].detach(), torch.tensor([2.0, 3.0])) * 2 / 3
    torch.testing.assert_close(got.parts["scale"], expected)
    got.total.backward()
    assert pred.grad[1] == 0 and pred.grad[0] != 0 and torch.isfinite(pred.grad).all()


def test_all_nan_targets_give_zero_connected_to_the_graph():
    pred = torch.tensor([1.5, 0.7], requires_grad=True)
    got = _loss(pred, [float("nan"), float("nan")])
    assert got.finite and got.parts["scale"].item() == 0.0
    got.total.backward()
    assert torch.equal(pred.grad, torch.zeros(2))


def test_full_targets_are_the_plain_mean():
    pred = torch.tensor([1.5, 0.7])
    got = _loss(pred, [2.0, 1.0])
    torch.testing.assert_close(got.parts["scale"], scale_loss(pred, torch.tensor([2.0, 1.0])))
