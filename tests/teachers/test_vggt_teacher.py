"""VGGTTeacher on a tiny VGGT-shaped module: target shapes, features = the frame half of the
tapped layers' patch tokens, the weight-loading paths, and clear errors when VGGT is missing."""
import sys
import types

import pytest
import torch

from geovr.teachers import TeacherRequest
from geovr.teachers.tiny_vggt import TinyVGGT
from geovr.teachers.vggt import VGGTTeacher, load_vggt

LAYERS = (4, 11, 17, 23)


@pytest.fixture(scope="module")
def tiny():
    return TinyVGGT(dim=16, depth=24).eval()


def req(t=3, h=56, w=70, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TeacherRequest("s0", torch.rand(t, 3, h, w, generator=g), list(range(t)))


def test_targets_shapes_and_values(tiny):
    teacher = VGGTTeacher(model=tiny, feature_dim=16, device="cpu")
    r = req()
    out = teacher(r)
    assert out.pose_enc.shape == (3, 9) and out.depth.shape == (3, 56, 70) and out.depth_conf.shape == (3, 56, 70)
    assert sorted(out.features) == list(LAYERS)
    for f in out.features.values():
        assert f.shape == (3, 4, 5, 16) and f.dtype == torch.float32
    assert out.scale is None and torch.all(out.depth > 0) and torch.all(out.depth_conf > 1)
    assert torch.all(out.pose_enc[:, 7:] > 0)  # FoV
    # independently: the module's own outputs, and the frame half of each tapped layer's patch tokens
    with torch.no_grad():
        full = tiny(r.frames[None])
        tokens, start = tiny.aggregator(r.frames[None])
    assert start == 5
    torch.testing.assert_close(out.pose_enc, full["pose_enc"][0])
    torch.testing.assert_close(out.depth, full["depth"][0, ..., 0])
    torch.testing.assert_close(out.depth_conf, full["depth_conf"][0])
    for l in LAYERS:
        patches = tokens[l][0, :, 5:, :16]  # [T, h*w, C]: frame attention half, special tokens dropped
        torch.testing.assert_close(out.features[l].reshape(3, 20, 16), patches)
        # the global half differs, so taking the wrong half would fail
        assert not torch.allclose(patches, tokens[l][0, :, 5:, 16:])


def test_one_frame_and_row_major_patches(tiny):
    teacher = VGGTTeacher(model=tiny, feature_dim=16, device="cpu", layers=(23,))
    r = req(t=1, h=28, w=42)
    out = teacher(r)
    assert out.features[23].shape == (1, 2, 3, 16)
    with torch.no_grad():
        tokens, _ = tiny.aggregator(r.frames[None])
    # patch (row 1, col 2) is token 5 + 1 * 3 + 2
    torch.testing.assert_close(out.features[23][0, 1, 2], tokens[23][0, 0, 5 + 5, :16])


def test_bad_inputs(tiny):
    teacher = VGGTTeacher(model=tiny, feature_dim=16, device="cpu")
    with pytest.raises(ValueError, match="multiples of the patch 14"):
        teacher(req(h=50))
    with pytest.raises(ValueError, match=r"float \[T, 3, H, W\]"):
        teacher(TeacherRequest("s", torch.zeros(2, 3, 28, 28, dtype=torch.uint8), [0, 1]))
    with pytest.raises(ValueError, match="outside the aggregator"):
        VGGTTeacher(model=tiny, layers=(24,), device="cpu")
    with pytest.raises(ValueError, match="expected depth=12"):
        VGGTTeacher(model=tiny, layers=(4,), depth=12, feature_dim=16, device="cpu")(req())
    with pytest.raises(TypeError, match="no `aggregator`"):
        VGGTTeacher(model=torch.nn.Linear(2, 2), device="cpu")
    with pytest.raises(ValueError, match="weights="):
        VGGTTeacher()


def test_missing_install_and_weights(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vggt(tmp_path / "nope.pt")
    (tmp_path / "w.pt").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "vggt", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install git\\+https://github.com/facebookresearch/vggt"):
        VGGTTeacher(weights=tmp_path / "w.pt")


def _fake_vggt_package(monkeypatch):
    """Install a `vggt` package whose VGGT class is TinyVGGT, to exercise the real loading code."""
    class VGGT(TinyVGGT):
        def __init__(self):
            super().__init__(dim=16, depth=24, seed=123)

    pkg, models, mod = (types.ModuleType(n) for n in ("vggt", "vggt.models", "vggt.models.vggt"))
    mod.VGGT = VGGT
    for name, m in (("vggt", pkg), ("vggt.models", models), ("vggt.models.vggt", mod)):
        monkeypatch.setitem(sys.modules, name, m)
    return VGGT


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_load_weights_file(tmp_path, monkeypatch, tiny, fmt):
    _fake_vggt_package(monkeypatch)
    state = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    path = tmp_path / f"model.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save(state, path)
    teacher = VGGTTeacher(weights=path, feature_dim=16, device="cpu")
    for k, v in teacher.model.state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    r = req()
    torch.testing.assert_close(teacher(r).depth, VGGTTeacher(model=tiny, feature_dim=16, device="cpu")(r).depth)
    assert teacher.cache_id.startswith(f"vggt-model.{fmt}-l4-11-17-23-c16")
