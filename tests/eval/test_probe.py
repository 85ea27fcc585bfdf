"""Linear probes: closed-form ridge against an independent solve, known linear signals recovered,
grouped folds, and the probe tool end to end on synthetic videos with a tiny Qwen3-VL."""
import json

import numpy as np
import pytest
import torch

from geovr.eval.probe import PLANTED, fit_probes, main, planted_linear, probe_warnings
from geovr.eval.probe_data import ProbeData, collect, find_probe_videos, footprint_targets, rotation_vector
from geovr.eval.ridge import LAMBDAS, cross_validate, fit_ridge, group_folds, r2_score


def test_ridge_equals_an_independent_solve_at_the_chosen_penalty():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8)) * rng.uniform(0.1, 10, 8) + rng.normal(size=8)
    y = x @ rng.normal(size=(8, 3)) + rng.normal(size=(60, 3))
    fit = fit_ridge(x, y)
    mu, sd = x.mean(0), x.std(0)
    xs = (x - mu) / sd
    w = np.linalg.solve(xs.T @ xs + fit.lam * np.eye(8), xs.T @ (y - y.mean(0)))
    np.testing.assert_allclose(fit.predict(x), xs @ w + y.mean(0), rtol=1e-9, atol=1e-9)


def test_gcv_matches_brute_force_leave_out_choice_direction():
    """More noise -> a larger penalty."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(80, 30))
    w = rng.normal(size=(30, 1))
    clean = fit_ridge(x, x @ w + 0.01 * rng.normal(size=(80, 1)))
    noisy = fit_ridge(x, x @ w + 30 * rng.normal(size=(80, 1)))
    assert noisy.lam > clean.lam


def test_known_linear_signal_is_recovered_and_noise_is_not():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(12), 25)
    x = rng.normal(size=(300, 16))
    w = rng.normal(size=(16, 2))
    y = x @ w + 0.05 * rng.normal(size=(300, 2)) + 5
    s = cross_validate(x, y, groups)
    assert s.r2 > 0.99 and (s.r2_per_target > 0.99).all()
    fit = fit_ridge(x, y)
    np.testing.assert_allclose(fit.weights, w, atol=0.02)
    assert cross_validate(x, rng.normal(size=(300, 2)), groups).r2 < 0.05


def test_train_r2_and_penalty_show_overfitting():
    """Few rows, many noise features: the training R^2 far above the out-of-fold one; a clean
    signal: both near 1 with a small penalty; the penalty is one of LAMBDAS (relative)."""
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(10), 6)
    noise = cross_validate(rng.normal(size=(60, 40)), rng.normal(size=60), groups)
    assert noise.train_r2 > noise.r2 + 0.2
    x = rng.normal(size=(60, 5))
    clean = cross_validate(x, x @ rng.normal(size=5) + 0.01 * rng.normal(size=60), groups)
    assert clean.train_r2 > 0.99 and clean.r2 > 0.99
    assert clean.penalty in LAMBDAS and clean.penalty <= 1e-1 and noise.penalty > clean.penalty
    fit = fit_ridge(x, x[:, 0])
    assert fit.penalty in LAMBDAS and fit.lam == pytest.approx(fit.penalty * np.linalg.eigvalsh(
        ((x - x.mean(0)) / x.std(0)).T @ ((x - x.mean(0)) / x.std(0))).clip(0).mean())


def test_r2_by_hand():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert r2_score(y, y)[0] == 1.0
    assert r2_score(y, np.full(4, 2.5))[0] == 0.0
    assert r2_score(y, np.array([2.0, 2.0, 3.0, 3.0]))[0] == pytest.approx(1 - 2 / 5)
    assert np.isnan(r2_score(np.ones(3), np.ones(3))[0])


def test_group_folds_keep_videos_together():
    groups = np.repeat(np.arange(7), [3, 1, 4, 2, 5, 1, 2])
    fold = group_folds(groups, folds=3)
    for g in range(7):
        assert len(set(fold[groups == g])) == 1
    assert set(fold) == {0, 1, 2}
    with pytest.raises(ValueError, match="at least 2 videos"):
        group_folds(np.zeros(5), 3)
    assert len(LAMBDAS) == 10


def test_rotation_vector_against_scipy():
    from scipy.spatial.transform import Rotation

    rots = Rotation.concatenate([Rotation.random(50, random_state=3), Rotation.identity(),
                                 Rotation.from_rotvec([[1e-9, 0, 0], [0, np.pi - 1e-6, 0], [0, 0, np.pi]])])
    got = rotation_vector(torch.from_numpy(rots.as_matrix())).numpy()
    want = rots.as_rotvec()
    # at exactly pi the axis sign is ambiguous: compare as rotations
    np.testing.assert_allclose(Rotation.from_rotvec(got).as_matrix(), rots.as_matrix(), atol=1e-6)
    np.testing.assert_allclose(got[:-1], want[:-1], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1), atol=1e-6)


def _planted(n_videos=8, dim=12, seed=0) -> ProbeData:
    """Probe data whose layer 1 holds every target linearly, layer 0 none of them."""
    rng = np.random.default_rng(seed)
    d = ProbeData([0, 1], token_feats={0: [], 1: []}, frame_feats={0: [], 1: []}, video_feats={0: [], 1: []})
    a_depth, a_pose, a_scale = rng.normal(size=dim), rng.normal(size=(6, 2 * dim)), rng.normal(size=dim)
    for v in range(n_videos):
        tok = rng.normal(size=(40, dim))
        d.token_feats[1].append(tok)
        d.token_feats[0].append(rng.normal(size=(40, dim)))
        d.token_depth.append(tok @ a_depth * 0.1)
        d.token_group.append(np.full(40, v))
        fr = rng.normal(size=(5, 2 * dim))
        d.frame_feats[1].append(fr)
        d.frame_feats[0].append(rng.normal(size=(5, 2 * dim)))
        d.frame_pose.append(fr @ a_pose.T * 0.1)
        d.frame_group.append(np.full(5, v))
        vid = rng.normal(size=dim)
        d.video_feats[1].append(vid)
        d.video_feats[0].append(rng.normal(size=dim))
        d.video_scale.append(float(vid @ a_scale) * 0.1)
        d.names.append(f"v{v}")
    return d


def test_fit_probes_finds_the_planted_layer():
    r = fit_probes(_planted(n_videos=40))
    for probe in ("depth", "pose_translation", "pose_rotation", "scale"):
        assert r[1][probe]["r2"] > 0.9, probe
        assert r[0][probe]["r2"] < 0.2, probe
        assert r[0][probe]["train_r2"] > r[0][probe]["r2"] and r[1][probe]["penalty"] in LAMBDAS
    for layer in (0, 1):  # the planted linear functions of the probes' own features: every layer
        assert set(r[layer]["planted"]) == {"frame_linear", "video_linear"}  # no token targets here
        assert r[layer]["planted"]["frame_linear"]["r2"] > 0.95
        assert r[layer]["planted"]["video_linear"]["r2"] > 0.7  # 40 videos of 12 features
    assert r[1]["pose_translation"]["error_m"] < r[0]["pose_translation"]["error_m"]
    with pytest.raises(ValueError, match="at least 3 videos"):
        fit_probes(_planted(n_videos=2))


@pytest.fixture(scope="module")
def world3(tmp_path_factory):
    from geovr.data.synthetic import WorldConfig, generate

    out = tmp_path_factory.mktemp("world3")
    generate(out, scenes=3, seed=11, cfg=WorldConfig(height=96, width=128, fps=4.0, seconds=3.0), progress=False)
    return out


def test_collect_targets_follow_the_geometry(tiny_model_dir, world3):
    from scipy.spatial.transform import Rotation

    from geovr.eval.model_io import load_model

    model, tok = load_model(tiny_model_dir, torch.device("cpu"), torch.float32)
    videos = find_probe_videos(str(world3 / "train.jsonl"))
    data = collect(model, tok, videos, layers=[0, 2], max_tokens_per_video=10_000, progress=False)
    s = data.stacked()
    geo = np.load(videos[0].geometry)
    n0 = (s["token_group"] == 0).sum()
    frames = (s["frame_group"] == 0).sum() + 1
    assert s["token_feats"][2].shape == (len(s["token_depth"]), 64) and s["frame_feats"][0].shape[1] == 64
    # pose rows: camera-from-frame-0 of each later frame, as scipy composes them
    idx = np.linspace(0, len(geo["extrinsics"]) - 1, frames).round().astype(int)
    e = geo["extrinsics"][idx]
    rel_r = e[1:, :, :3] @ e[0, :, :3].T
    rel_t = e[1:, :, 3] - (rel_r @ e[0, :, 3:])[..., 0]
    pose = s["frame_pose"][s["frame_group"] == 0]
    np.testing.assert_allclose(pose[:, :3], rel_t, atol=1e-6)
    np.testing.assert_allclose(pose[:, 3:], Rotation.from_matrix(rel_r).as_rotvec(), atol=1e-6)
    # depth rows: log mean depth over each token's footprint (96x128 frames: 32x32-pixel tokens, no
    # resize); all tokens kept, so their mean is the frames' mean
    assert np.exp(s["token_depth"][:n0]).mean() == pytest.approx(geo["depth"][idx].mean(), rel=1e-4)
    np.testing.assert_allclose(s["video_scale"], [np.log(float(np.load(v.geometry)["metric_scale"])) for v in videos])
    # pose features: each later frame's mean state minus frame 0's; planted rows: one per depth row
    tokens = s["token_feats"][2][:n0].reshape(frames, -1, 64)  # every token kept: [T, h*w, D]
    np.testing.assert_allclose(s["frame_feats"][2][s["frame_group"] == 0], tokens[1:].mean(1) - tokens[0].mean(0),
                               rtol=1e-4, atol=1e-5)
    assert s["token_planted"].shape == (len(s["token_depth"]), 8)
    planted = s["token_planted"][:n0]
    assert planted[:, 0].min() == 0 and planted[:, 0].max() == 1 and planted[:, 1].max() == 1
    np.testing.assert_allclose(planted[:, 2:5].mean(0), planted[:, 5:8].mean(0), atol=1e-9)  # a permutation
    with pytest.raises(ValueError, match="outside 0..2"):
        collect(model, tok, videos, layers=[3], progress=False)


def test_footprint_targets_follow_the_token_order():
    """A frame red on its left half and green on its bottom rows, on a 3 x 4 token grid (32-pixel
    tokens): each token's colour is that of its own footprint, in row-major token order."""
    frames = torch.zeros(2, 3, 96, 128, dtype=torch.uint8)
    frames[0, 0, :, :64] = 255
    frames[0, 1, 64:, :] = 255
    frames[1, 2] = 255
    got = footprint_targets(frames, 3, 4, np.random.default_rng(0)).reshape(2, 3, 4, 8)
    np.testing.assert_allclose(got[0, :, :, 0], [[0] * 4, [0.5] * 4, [1] * 4])
    np.testing.assert_allclose(got[0, :, :, 1], [[0, 1 / 3, 2 / 3, 1]] * 3)
    np.testing.assert_allclose(got[0, :, :, 2], [[1, 1, 0, 0]] * 3)
    np.testing.assert_allclose(got[0, :, :, 3], [[0] * 4, [0] * 4, [1] * 4])
    np.testing.assert_allclose(got[1, :, :, 4], 1)
    shuffled = got[0, :, :, 5:].reshape(12, 3)
    assert sorted(map(tuple, shuffled)) == sorted(map(tuple, got[0, :, :, 2:5].reshape(12, 3)))
    assert not np.allclose(shuffled, got[0, :, :, 2:5].reshape(12, 3))


def test_planted_targets_are_recovered_through_the_real_model(tiny_model_dir, tmp_path):
    """The instrument on the tiny Qwen3-VL: at the embeddings each token's footprint colour is
    decodable well above the same frame's colours put in the wrong places (a wrong
    token-to-footprint mapping would score like the shuffled control), and a planted linear
    function of the pose probe's features is recovered at every layer."""
    from geovr.data.synthetic import WorldConfig, generate
    from geovr.eval.model_io import load_model

    generate(tmp_path, scenes=16, seed=5, cfg=WorldConfig(height=96, width=128, fps=4.0, seconds=6.0), progress=False)
    model, tok = load_model(tiny_model_dir, torch.device("cpu"), torch.float32)
    data = collect(model, tok, find_probe_videos(str(tmp_path)), max_tokens_per_video=10_000, progress=False)
    r = fit_probes(data)
    planted = r[0]["planted"]
    assert set(planted) == set(PLANTED)
    assert planted["token_rgb"]["r2"] > 0.6 and planted["token_rgb"]["r2"] > planted["token_rgb_shuffled"]["r2"] + 0.3
    assert all(r[k]["planted"]["frame_linear"]["r2"] > 0.9 for k in r)
    # 16 videos of about 11 frame rows each, 64 feature dimensions: enough frames, too few videos
    warnings = probe_warnings(data, r)
    assert any(w.startswith("per-video probes (scale, planted video_linear) have 16 videos for 64 feature dimensions")
               and "use at least 64 videos" in w for w in warnings)
    assert not any("per-frame" in w or "frame_linear" in w for w in warnings)


def test_planted_linear_is_linear_in_the_features():
    x = np.random.default_rng(0).normal(size=(50, 6)) * 3 + 1
    y = planted_linear(x)
    coef, *_ = np.linalg.lstsq(np.c_[x, np.ones(50)], y, rcond=None)
    np.testing.assert_allclose(np.c_[x, np.ones(50)] @ coef, y, atol=1e-10)
    np.testing.assert_array_equal(planted_linear(x), y)  # fixed weights


def test_probe_cli_writes_table_json_and_plot(tiny_model_dir, world3, tmp_path, capsys):
    out = tmp_path / "probe"
    assert main(["--model", str(tiny_model_dir), "--data", str(world3), "--output", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    res = json.loads((out / "probe.json").read_text())
    assert sorted(res["layers"], key=int) == ["0", "1", "2"] and res["config"]["videos"] == 3
    # 3 videos for 64 feature dimensions: the report and the output say so, and what is needed
    assert any("have 3 videos for 64 feature dimensions" in w and "at least 64 videos" in w for w in res["warnings"])
    assert any(w.startswith("per-frame probes") and "use at least 64 rows" in w for w in res["warnings"])
    assert "## Warnings" in (out / "probe.md").read_text()
    assert set(res["layers"]["1"]) == {"depth", "pose_translation", "pose_rotation", "scale", "planted"}
    assert "## The instrument" in (out / "probe.md").read_text()
    assert (out / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    captured = capsys.readouterr()
    assert "| layer |" in captured.out and "warning: per-video probes" in captured.err
    with pytest.raises(SystemExit) as exit_:  # a usage error before the model loads
        main(["--model", str(tiny_model_dir), "--data", str(world3), "--videos", "2", "--quiet"])
    assert exit_.value.code == 2 and "argument --videos: must be >= 3, got 2" in capsys.readouterr().err
    assert main(["--model", str(tiny_model_dir), "--data", str(world3 / "videos"), "--quiet"]) == 2
    assert "no videos/<name>.mp4 with geometry" in capsys.readouterr().err


def test_few_videos_many_features_do_not_overfit_wildly():
    """A per-video probe on 12 videos with 64 features of pure noise: the grouped inner split
    picks large penalties, so out-of-fold R^2 stays near that of predicting the training mean
    (about -0.2 with 5 folds of 12 rows); GCV alone averages -0.56 on these draws."""
    rng = np.random.default_rng(4)
    r2 = [cross_validate(rng.normal(size=(12, 64)), rng.normal(size=12), np.arange(12)).r2 for _ in range(10)]
    assert np.mean(r2) > -0.45
