"""The metric teacher against the real Depth-Anything-3 package (`depth-anything-3`, random
weights: there is no hub here). DA3 imports torchvision, which does not import beside the CPU torch
of the main environment, so these tests skip there; `.ci/torchvision_env` runs them in the second
environment, where it does.

Checked against DA3's own network run directly: the values and shapes geovr reads, DA3's sky
handling (its sky score is a ReLU output, and its forward already sets sky depth), the strict
folder loading, MetricScaledTeacher's s* by hand, the target-cache CLI's VGGT + DA3 path, and a
training run with the real DA3 online (VGGT, not on the package index, is TinyVGGT behind a
`vggt` package; the pose loss is off there: this environment has no compiled geovr._ext)."""
import numpy as np
import pytest
import torch

da3_api = pytest.importorskip("depth_anything_3.api", reason="depth-anything-3 (needs torchvision) is not installed")

from geovr.losses.scale import focal_from_pose_enc  # noqa: E402
from geovr.teachers import TeacherRequest  # noqa: E402
from geovr.teachers.metric_depth import MetricDepthTeacher, MetricScaledTeacher, load_da3  # noqa: E402
from geovr.teachers.tiny_vggt import TinyVGGT  # noqa: E402
from geovr.teachers.vggt import VGGTTeacher  # noqa: E402

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 3, 1, 1)


def _frames(t=2, h=56, w=70, seed=0):
    return torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def da3_folder(tmp_path_factory):
    """A random-init da3metric-large (334M parameters) saved with DA3's own save_pretrained. Its
    sky head's last convolution is scaled up so that the sky score spreads over [0, ~2]: some
    pixels sky (>= 0.3), some exactly 0 (the ReLU), some above 1."""
    torch.manual_seed(0)
    model = da3_api.DepthAnything3(model_name="da3metric-large").eval()
    with torch.no_grad():
        conv = model.model.head.scratch.sky_output_conv2[-1]
        conv.weight.mul_(100.0)
        conv.bias.zero_()
    folder = tmp_path_factory.mktemp("da3") / "DA3METRIC-LARGE"
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def metric(da3_folder):
    return MetricDepthTeacher(weights=da3_folder, device="cpu")


def _direct(net, frames):
    """DA3's network as DA3's nested model calls its metric branch, in fp32."""
    with torch.no_grad():
        return net((frames[None] - MEAN) / STD, export_feat_layers=[])


def test_values_shapes_and_sky_equal_da3_run_directly(metric):
    frames = _frames()
    got = metric(TeacherRequest("s", frames, [0, 1]))
    ref = _direct(metric.model, frames)
    assert got.raw.shape == (2, 56, 70) and got.sky.shape == (2, 56, 70)
    assert got.raw.dtype == torch.float32 and got.sky.dtype == torch.float32
    torch.testing.assert_close(got.raw, ref["depth"][0].float(), rtol=0, atol=0)
    torch.testing.assert_close(got.sky, ref["sky"][0].float(), rtol=0, atol=0)
    # the sky score is a ReLU output, not a probability
    sky = got.sky >= 0.3
    assert (got.sky == 0).any() and (got.sky > 1).any() and sky.any() and (~sky).any()
    # DA3's forward has already set every sky pixel to the 99th percentile of the others
    assert torch.allclose(got.raw[sky], torch.quantile(got.raw[~sky], 0.99).expand(int(sky.sum())))
    assert not torch.allclose(got.raw[~sky], got.raw[~sky].mean())


def test_close_to_da3s_own_forward_in_its_half_precision(metric, da3_folder):
    """DepthAnything3.forward (what DA3's `inference` calls) runs fp16 autocast on a CPU; the
    teacher runs fp32 there: equal within half precision."""
    model = load_da3(da3_folder)
    frames = _frames(seed=1)
    got = metric(TeacherRequest("s", frames, [0, 1]))
    with torch.no_grad():
        own = model.forward((frames[None] - MEAN) / STD, export_feat_layers=[])
    torch.testing.assert_close(got.raw, own["depth"][0].float(), rtol=2e-2, atol=0)


def test_loading_is_strict(da3_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    model = load_da3(da3_folder)
    assert model.model_name == "da3metric-large"
    state = load_file(str(da3_folder / "model.safetensors"))
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    key = "model.head.scratch.sky_output_conv2.2.bias"
    state[key + "_renamed"] = state.pop(key)
    bad = tmp_path / "renamed"
    bad.mkdir()
    (bad / "config.json").write_text((da3_folder / "config.json").read_text())
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(ValueError, match=key + "_renamed") as err:
        MetricDepthTeacher(weights=bad, device="cpu")
    assert "Missing key" in str(err.value)


def test_a_relative_depth_model_is_refused(tmp_path):
    da3_api.DepthAnything3(model_name="da3-small").save_pretrained(str(tmp_path / "small"))
    with pytest.raises(ValueError, match="relative depth, not metric"):
        load_da3(tmp_path / "small")


def test_metric_scaled_teacher_by_hand(metric):
    """s* = <m, d*> / <d*, d*> over {conf >= median(conf over non-sky), sky < 0.3, m > 1e-2,
    d* > 1e-3}, m = raw x f / 300, computed here in numpy from DA3's direct output."""
    vggt = VGGTTeacher(model=TinyVGGT(dim=16, depth=24).eval(), feature_dim=16, device="cpu")
    frames = _frames(t=3, seed=2)
    out = MetricScaledTeacher(vggt, metric)(TeacherRequest("s", frames, [0, 1, 2]))
    ref = _direct(metric.model, frames)
    raw, sky = ref["depth"][0].double().numpy(), ref["sky"][0].double().numpy()
    d, c = out.depth.double().numpy(), out.depth_conf.double().numpy()
    enc = out.pose_enc.double().numpy()
    h, w = d.shape[1:]
    f = ((w / 2) / np.tan(enc[:, 8] / 2) + (h / 2) / np.tan(enc[:, 7] / 2)) / 2
    m = raw * f[:, None, None] / 300.0
    nonsky = sky < 0.3
    conf_ns = np.sort(c[nonsky])
    median = conf_ns[(conf_ns.size - 1) // 2]  # the lower median, as torch.median
    keep = nonsky & (c >= median) & (m > 1e-2) & (d > 1e-3)
    assert 0 < keep.sum() < keep.size
    expected = (m * d)[keep].sum() / (d * d)[keep].sum()
    assert out.scale.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(focal_from_pose_enc(out.pose_enc.double(), h, w).numpy(), f)


def _vggt_folder(fake_vggt, folder):
    """VGGT as TinyVGGT (huggingface_hub's from_pretrained, as VGGT's) and a folder of its weights."""
    fake_vggt(TinyVGGT)(dim=16, depth=24, seed=3).save_pretrained(str(folder))
    return folder


def test_target_cache_cli_with_vggt_and_da3(da3_folder, metric, synthetic_root, tmp_path, fake_vggt):
    """`python -m geovr.teachers.cache --teacher vggt --metric-weights <DA3 folder>`: the real DA3
    loaded from its folder."""
    from geovr.data.dataset import VideoQADataset
    from geovr.data.datasets import read_vsi590k
    from geovr.data.qwen_pixels import to_teacher_frames
    from geovr.data.sampling import FrameSampling
    from geovr.teachers.cache import TeacherCache, cache_key, main

    _vggt_folder(fake_vggt, tmp_path / "VGGT-1B")
    out = tmp_path / "cache"
    argv = ["--data", str(synthetic_root / "train.jsonl"), "--teacher", "vggt", "--vggt-weights",
            str(tmp_path / "VGGT-1B"), "--metric-weights", str(da3_folder), "--feature-dim", "16", "--out", str(out),
            "--max-frames", "4", "--teacher-longest", "112", "--backend", "pyav", "--quiet"]
    assert main(argv) == 0
    cache = TeacherCache(out)
    assert len(cache) == 2  # the two videos
    # the id the run-level check computes from the settings alone (no weights read) is the built teacher's
    from geovr.teachers.factory import teacher_cache_id

    assert cache.teacher_id == teacher_cache_id("vggt", str(tmp_path / "VGGT-1B"), str(da3_folder), feature_dim=16)
    assert cache.teacher_id.endswith("+" + "da3metric-" + da3_folder.name)
    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    frames = VideoQADataset(recs, sampling=FrameSampling(fps=2.0, min_frames=4, max_frames=4), backend="pyav").load(0)
    tf = to_teacher_frames(frames.data, longest=112)
    teacher = MetricScaledTeacher(VGGTTeacher(model=TinyVGGT(dim=16, depth=24, seed=3).eval(), feature_dim=16,
                                              device="cpu", weights_id="VGGT-1B"), metric)
    key = cache_key(teacher.cache_id, recs[0].media_rel, frames.indices, tuple(tf.shape[-2:]))
    got = cache.get(key)
    assert got is not None
    online = teacher(TeacherRequest(recs[0].id, tf, list(frames.indices), recs[0].extra, recs[0].media_rel))
    assert torch.isfinite(got.scale) and got.scale.item() == pytest.approx(online.scale.item(), rel=1e-6)
    torch.testing.assert_close(got.depth, online.depth)


def test_training_with_the_real_da3_online(da3_folder, tmp_path, fake_vggt):
    """`python -m geovr.train teacher.name=vggt teacher.metric_weights=<DA3 folder>`: two steps on
    the synthetic world with the teachers run online; the scale loss is finite, no step is bad."""
    import json

    from geovr.train.main import main

    vggt = _vggt_folder(fake_vggt, tmp_path / "VGGT-1B")
    rc = main([f"data.path={tmp_path}/syn/train.jsonl", "data.synthetic=true", "data.synthetic_scenes=2", "data.synthetic_seconds=2",
               "data.synthetic_height=96", "data.synthetic_width=128", "data.max_frames=4", "data.teacher_longest=112",
               "teacher.name=vggt", f"teacher.vggt_weights={vggt}", f"teacher.metric_weights={da3_folder}",
               "teacher.feature_dim=16", "loss.pose=0", "train.steps=2", "train.global_batch=2", "train.micro_batch=1",
               f"train.output={tmp_path}/run", "train.device=cpu", "checkpoint.every=0", "metrics.tensorboard=false",
               "metrics.progress=false"])
    assert rc == 0
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scale = [r["loss/scale"] for r in steps if "loss/scale" in r]
    assert len(scale) == 2 and all(0 < v < 10 for v in scale)
    assert all(r["bad_steps"] == 0 for r in steps if "bad_steps" in r)
