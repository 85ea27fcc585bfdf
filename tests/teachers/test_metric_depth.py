"""The scale target from a metric-depth model: the synthetic world's metric depth recovers its true
scale through MetricScaledTeacher; a DA3-shaped module gets ImageNet-normalised frames, its sky is
masked out; clear errors when Depth-Anything-3 is missing."""
import sys

import numpy as np
import pytest
import torch
from torch import nn

from geovr.data.datasets import read_vsi590k
from geovr.data.qwen_pixels import to_teacher_frames
from geovr.data.dataset import VideoQADataset
from geovr.teachers import SyntheticTeacher, TeacherRequest
from geovr.teachers.metric_depth import (MetricDepthTeacher, MetricScaledTeacher, SyntheticMetricDepth,
                                         load_da3)


@pytest.fixture(scope="module")
def sample(synthetic_root):
    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    rec = recs[0]
    frames = VideoQADataset(recs).load(0)
    return TeacherRequest(rec.id, to_teacher_frames(frames.data, longest=140), list(frames.indices), rec.extra,
                          rec.media_rel)


def test_synthetic_metric_depth_recovers_the_world_scale(synthetic_root, sample):
    geo = np.load(synthetic_root / sample.extra["geometry"])
    teacher = MetricScaledTeacher(SyntheticTeacher(synthetic_root, feature_dim=8), SyntheticMetricDepth(synthetic_root))
    out = teacher(sample)
    assert out.scale.item() == pytest.approx(float(geo["metric_scale"]), rel=1e-4)
    assert teacher.cache_id == SyntheticTeacher(synthetic_root, feature_dim=8).cache_id + "+synthetic-metric"
    assert teacher.layers == (4, 11, 17, 23) and teacher.feature_dim == 8


class TinyDA3(nn.Module):
    """Shaped like DA3's metric network (`DepthAnything3Net.forward(x, extrinsics=None,
    intrinsics=None, export_feat_layers=[], infer_gs=False, use_ray_pose=False, ref_view_strategy=...)`
    -> {'depth': [1, T, H, W], 'sky': [1, T, H, W]}), including its failure when
    export_feat_layers is None. Depth is `value` except on the top rows (sky: score 2.5, a ReLU
    output above 1, depth 1000 m); it records what it was given. The real network is tested in
    test_da3_real.py."""

    def __init__(self, value: float, sky_rows: int):
        super().__init__()
        self.value, self.sky_rows, self.seen = value, sky_rows, None
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x, extrinsics=None, intrinsics=None, export_feat_layers=[], infer_gs=False,  # noqa: B006
                use_ray_pose=False, ref_view_strategy="saddle_balanced"):
        if 0 in export_feat_layers:  # DA3's ViT tests `i in export_feat_layers`: a TypeError for None
            raise AssertionError("no layer was asked for")
        self.seen = x.clone()
        depth = torch.full(x.shape[:2] + x.shape[-2:], self.value)
        depth[..., : self.sky_rows, :] = 1000.0
        sky = torch.zeros_like(depth)
        sky[..., : self.sky_rows, :] = 2.5
        return {"depth": depth, "sky": sky}


def test_da3_shaped_model_normalisation_and_sky(synthetic_root, sample):
    da3 = TinyDA3(value=2.0, sky_rows=14)
    metric = MetricDepthTeacher(model=da3, device="cpu", weights_id="tiny")
    teacher = MetricScaledTeacher(SyntheticTeacher(synthetic_root, feature_dim=8), metric)
    out = teacher(sample)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)
    torch.testing.assert_close(da3.seen, (sample.frames[None] - mean) / std)
    # by hand: m = 2 * f / 300 on the non-sky rows (confidence is 1 everywhere, so the median keeps all)
    d = out.depth.double().numpy()
    enc = out.pose_enc.double().numpy()
    h, w = d.shape[1:]
    f = ((w / 2) / np.tan(enc[:, 8] / 2) + (h / 2) / np.tan(enc[:, 7] / 2)) / 2
    m = 2.0 * f[:, None, None] / 300.0 * np.ones_like(d)
    keep = np.ones_like(d, dtype=bool)
    keep[:, :14] = False
    keep &= d > 1e-3
    expected = (m * d)[keep].sum() / (d * d)[keep].sum()
    assert out.scale.item() == pytest.approx(expected, rel=1e-5)
    assert metric.cache_id == "da3metric-tiny"


def test_metric_errors(tmp_path, monkeypatch, sample):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_da3(tmp_path / "none")
    monkeypatch.setitem(sys.modules, "depth_anything_3", None)
    monkeypatch.setitem(sys.modules, "depth_anything_3.api", None)
    with pytest.raises(ImportError, match="Depth-Anything-3"):
        MetricDepthTeacher(weights=tmp_path)
    with pytest.raises(ValueError, match="weights="):
        MetricDepthTeacher()
    bad = TeacherRequest("s", torch.rand(2, 3, 30, 28), [0, 1])
    with pytest.raises(ValueError, match="multiples of 14"):
        MetricDepthTeacher(model=TinyDA3(1.0, 0), device="cpu")(bad)


class _ZeroFov(SyntheticTeacher):
    """The synthetic world's targets with the field of view of some frames set to 0 (as VGGT's
    ReLU camera head can give)."""

    def __init__(self, root, frames):
        super().__init__(root, feature_dim=8)
        self.zero = frames

    def __call__(self, request):
        out = super().__call__(request)
        out.pose_enc[self.zero, 7:9] = 0.0
        return out


def test_frames_without_a_field_of_view_are_left_out_and_counted(synthetic_root, sample):
    from geovr.losses import scale_target
    from geovr.losses.scale import focal_from_pose_enc

    da3 = TinyDA3(value=2.0, sky_rows=14)
    teacher = MetricScaledTeacher(_ZeroFov(synthetic_root, [1, 3]), MetricDepthTeacher(model=da3, device="cpu"))
    out = teacher(sample)
    assert teacher.counts == {"frames_no_fov": 2, "samples_no_scale": 0}
    keep = [i for i in range(out.depth.shape[0]) if i not in (1, 3)]
    h, w = out.depth.shape[-2:]
    raw = torch.full_like(out.depth, 2.0)
    sky = torch.zeros_like(out.depth)
    sky[:, :14] = 2.5
    expected = scale_target([raw[keep]], [out.depth[keep]], [out.depth_conf[keep]], [sky[keep]],
                            [focal_from_pose_enc(out.pose_enc[keep].double(), h, w)])
    assert torch.isfinite(out.scale) and out.scale.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_sample_without_any_field_of_view_has_no_scale_target(synthetic_root, sample):
    t = len(sample.frame_indices)
    teacher = MetricScaledTeacher(_ZeroFov(synthetic_root, list(range(t))),
                                  MetricDepthTeacher(model=TinyDA3(2.0, 14), device="cpu"))
    out = teacher(sample)
    assert torch.isnan(out.scale)  # no target, never a silent 0
    assert teacher.counts == {"frames_no_fov": t, "samples_no_scale": 1}
