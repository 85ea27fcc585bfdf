"""The synthetic teacher's targets are exact: depth and scale against the rendered geometry and
geovr.losses.scale_target, poses against reprojection, features consistent across views."""
import numpy as np
import pytest
import torch

from geovr.data.datasets import read_vsi590k
from geovr.data.synthetic import WorldConfig, generate
from geovr.losses import scale_target
from geovr.teachers import SyntheticTeacher, TeacherRequest
from geovr.teachers.pose_encoding import pose_enc_to_extrinsics

CFG = WorldConfig(height=112, width=160, fps=4.0, seconds=3.0)  # multiples of 16 and 14? 112 = 8 x 14


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn_teacher")
    generate(out, scenes=1, seed=11, cfg=CFG, progress=False)
    rec = read_vsi590k(str(out / "train.jsonl")).records[0]
    return out, rec


def request(rec, size, idx=(0, 3, 6)):
    return TeacherRequest(rec.id, torch.rand(len(idx), 3, *size), list(idx), rec.extra)


def test_native_size_depth_scale_and_pose(data):
    root, rec = data
    teacher = SyntheticTeacher(root, feature_dim=16, patch_size=16)  # 112x160 is a multiple of 16
    out = teacher(request(rec, (112, 160)))
    geo = np.load(root / rec.extra["geometry"])
    scale = float(geo["metric_scale"])
    assert out.scale.item() == pytest.approx(scale)
    torch.testing.assert_close(out.depth * out.scale, torch.from_numpy(geo["depth"][[0, 3, 6]]), rtol=1e-6, atol=0)
    assert torch.all(out.depth_conf == 1)
    # the metric-depth scale target recovers the exact scale from these targets
    s = scale_target([torch.from_numpy(geo["depth"][[0, 3, 6]])], [out.depth], [out.depth_conf])
    assert s.item() == pytest.approx(scale, rel=1e-5)
    # pose: frame 1 is the identity; translations in normalised units reproduce the metric motion
    enc = out.pose_enc.double()
    torch.testing.assert_close(enc[0, :7], torch.tensor([0, 0, 0, 0, 0, 0, 1.0], dtype=torch.float64), atol=1e-6, rtol=0)
    ext, k = pose_enc_to_extrinsics(enc, (112, 160))
    torch.testing.assert_close(k[0].float(), torch.from_numpy(geo["intrinsics"]).float(), atol=1e-3, rtol=0)
    e = torch.from_numpy(geo["extrinsics"][[0, 3, 6]])
    c_true = [-(e[i, :, :3].T @ e[i, :, 3]) for i in range(3)]
    c_enc = [-(ext[i, :, :3].T @ ext[i, :, 3]) * scale for i in range(3)]
    dist_true = torch.linalg.norm(c_true[2] - c_true[1])
    dist_enc = torch.linalg.norm(c_enc[2] - c_enc[1])
    assert dist_enc.item() == pytest.approx(dist_true.item(), rel=1e-5)


def test_exact_rerender_at_the_teacher_size(data):
    root, rec = data
    exact = SyntheticTeacher(root, feature_dim=8)(request(rec, (196, 280)))
    approx = SyntheticTeacher(root, feature_dim=8, exact=False)(request(rec, (196, 280)))
    assert exact.depth.shape == (3, 196, 280)
    rel = (exact.depth - approx.depth).abs() / exact.depth
    assert rel.median() < 0.01  # agree away from edges; the exact one has sharp edges
    assert {k: v.shape for k, v in exact.features.items()} == {l: (3, 14, 20, 8) for l in (4, 11, 17, 23)}


def test_features_are_deterministic_bounded_and_multiview_consistent(data):
    root, rec = data
    a = SyntheticTeacher(root, feature_dim=32, patch_size=16)(request(rec, (112, 160), (0, 1)))
    b = SyntheticTeacher(root, feature_dim=32, patch_size=16)(request(rec, (112, 160), (0, 1)))
    for layer in a.features:
        assert torch.equal(a.features[layer], b.features[layer])
        assert a.features[layer].abs().max() <= 1
    assert not torch.allclose(a.features[4], a.features[23])
    # consecutive frames share surfaces: for each patch of frame 0 the most similar patch of frame 1
    # is far more similar than a typical pair (features encode 3D position, not the image)
    f0, f1 = (a.features[4][i].reshape(-1, 32) for i in (0, 1))
    f0, f1 = torch.nn.functional.normalize(f0, dim=1), torch.nn.functional.normalize(f1, dim=1)
    sim = f0 @ f1.T
    best, typical = sim.max(1).values.median().item(), sim.median().item()
    assert best > 0.8 and best - typical > 0.4, (best, typical)


def test_errors(data):
    root, rec = data
    teacher = SyntheticTeacher(root, feature_dim=8)
    with pytest.raises(ValueError, match="no 'geometry' field"):
        teacher(TeacherRequest("x", torch.rand(1, 3, 28, 28), [0], {}))
    with pytest.raises(FileNotFoundError, match="not found"):
        teacher(TeacherRequest("x", torch.rand(1, 3, 28, 28), [0], {"geometry": "geometry/nope.npz"}))
    with pytest.raises(ValueError, match="multiples of the patch 14"):
        teacher(request(rec, (100, 100)))


def test_geometry_cache_reads_each_file_once_within_its_limit(data, tmp_path):
    import shutil

    from geovr.teachers.synthetic import GEOMETRY_KEYS, GeometryCache

    root, rec = data
    first = str(root / rec.extra["geometry"])
    second = str(tmp_path / "copy.npz")
    shutil.copy(first, second)
    with np.load(first) as z:
        size = sum(z[k].nbytes for k in GEOMETRY_KEYS)
        np.testing.assert_array_equal(GeometryCache()(first)["depth"], z["depth"])
    roomy = GeometryCache(limit=2 * size)
    for path in (first, second, first, second):
        roomy(path)
    assert roomy.reads == 2 and roomy.bytes == 2 * size
    tight = GeometryCache(limit=size)  # one fits: alternating files re-read each time
    for path in (first, second, first):
        tight(path)
    assert tight.reads == 3 and tight.bytes == size
    recent = GeometryCache(limit=size + 1)
    recent(first), recent(second), recent(second)
    assert recent.reads == 2
    teacher = SyntheticTeacher(root, feature_dim=16, patch_size=16)
    a, b = teacher(request(rec, (112, 160))), teacher(request(rec, (112, 160)))
    assert teacher.geometry.reads == 1
    torch.testing.assert_close(a.depth, b.depth, rtol=0, atol=0)
