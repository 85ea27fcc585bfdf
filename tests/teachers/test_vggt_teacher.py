"""VGGTTeacher on a tiny VGGT-shaped module: target shapes, features = the frame half of the
tapped layers' patch tokens, the weight-loading paths, and clear errors when VGGT is missing."""
import sys

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


class _FixedSizeVGGT(TinyVGGT):
    def __init__(self):
        super().__init__(dim=16, depth=24, seed=123)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_load_weights_file(tmp_path, fake_vggt, tiny, fmt):
    fake_vggt(_FixedSizeVGGT)
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


# ------------------------------------------------- guards for the real VGGT's interface

def test_tiny_vggt_returns_none_outside_its_cached_layers(tiny):
    tokens, _ = tiny.aggregator(req().frames[None])
    assert len(tokens) == 24
    assert [l for l, x in enumerate(tokens) if x is not None] == list(LAYERS)


def test_uncached_layer_is_added_to_the_cache_before_the_forward():
    model = TinyVGGT(dim=16, depth=24).eval()
    teacher = VGGTTeacher(model=model, feature_dim=16, device="cpu", layers=(5, 23))
    assert model.aggregator.cached_layer_indices == (4, 5, 11, 17, 23)
    r = req()
    out = teacher(r)
    with torch.no_grad():
        tokens, start = model.aggregator(r.frames[None])
    torch.testing.assert_close(out.features[5].reshape(3, 20, 16), tokens[5][0, :, start:, :16])
    # the heads still read their own layers: the depth equals the default-cache model's
    torch.testing.assert_close(out.depth, VGGTTeacher(model=TinyVGGT(dim=16, depth=24).eval(), feature_dim=16,
                                                      device="cpu")(r).depth)


class _FixedCacheAggregator(torch.nn.Module):
    """An aggregator whose cached set was fixed when it was built (changing the attribute does nothing)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.cached_layer_indices = inner, inner.cached_layer_indices

    def forward(self, images):
        return self.inner(images)


def test_layer_that_stays_uncached_is_an_error_naming_it():
    model = TinyVGGT(dim=16, depth=24).eval()
    model.aggregator = _FixedCacheAggregator(model.aggregator)
    teacher = VGGTTeacher(model=model, feature_dim=16, device="cpu", layers=(5, 11))
    with pytest.raises(ValueError, match=r"no tokens for layers \[5\].*cached_layer_indices"):
        teacher(req())


def test_field_of_view_is_a_relu_output_that_can_be_zero():
    out = VGGTTeacher(model=TinyVGGT(dim=16, depth=24, fov_offset=-100.0).eval(), feature_dim=16, device="cpu")(req())
    assert torch.all(out.pose_enc[:, 7:] == 0)


def test_load_from_pretrained_folder_strictly(tmp_path, fake_vggt):
    from safetensors.torch import load_file, save_file

    fake_vggt(TinyVGGT)  # TinyVGGT's from_pretrained is huggingface_hub's, as VGGT's
    model = TinyVGGT(dim=16, depth=24, seed=7)
    model.save_pretrained(tmp_path / "ok")
    loaded = load_vggt(tmp_path / "ok")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
    # a renamed key: huggingface_hub's default (strict=False) would leave that weight random
    state = load_file(str(tmp_path / "ok" / "model.safetensors"))
    state["camera_head.norm.weight_renamed"] = state.pop("camera_head.norm.weight")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    save_file(state, str(tmp_path / "bad" / "model.safetensors"))
    with pytest.raises(ValueError, match="camera_head.norm.weight_renamed") as err:
        load_vggt(tmp_path / "bad")
    assert "camera_head.norm.weight" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_vggt(tmp_path / "empty")


def test_lowered_matmul_weights_give_bit_identical_targets_under_autocast():
    """The aggregator's Linear/Conv2d weights stored in bf16 (what autocast casts them to) give
    the same targets as fp32 weights under bf16 autocast, with its norms and the heads left fp32."""
    import copy

    model = TinyVGGT(dim=32, depth=24, heads=2, embed_depth=2, seed=3).eval()
    plain = VGGTTeacher(model=copy.deepcopy(model), feature_dim=32, device="cpu", lower_weights=False)
    low = VGGTTeacher(model=copy.deepcopy(model), feature_dim=32, device="cpu", lower_weights=True)
    agg = low.model.aggregator
    assert agg.frame_blocks[0].qkv.weight.dtype == agg.embed.weight.dtype == torch.bfloat16
    assert agg.frame_blocks[0].norm1.weight.dtype == agg.special.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in low.model.depth_head.parameters())
    assert all(p.dtype == torch.float32 for p in low.model.camera_head.parameters())
    assert not any(p.requires_grad for p in low.model.parameters())
    bytes_of = lambda m: sum(p.numel() * p.element_size() for p in m.parameters())  # noqa: E731
    assert bytes_of(agg) < 0.55 * bytes_of(plain.model.aggregator)
    r = req(t=3, h=56, w=70, seed=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = plain(r), low(r)
    for name in ("pose_enc", "depth", "depth_conf"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for layer in a.features:
        assert torch.equal(a.features[layer], b.features[layer]), layer
    # on a CPU, by default, nothing is lowered (the teacher runs fp32 there)
    default = VGGTTeacher(model=copy.deepcopy(model), feature_dim=32, device="cpu")
    assert default.model.aggregator.embed.weight.dtype == torch.float32
