"""Decoding real files: every codec on every available backend returns the requested frames
(each decoded frame is nearest to its own source frame), backends agree with each other, VFR
files are indexed by presentation order, and broken files raise VideoDecodeError."""
from __future__ import annotations

import os
import numpy as np
import pytest
import torch

from clips import FPS, N_FRAMES, coded_frames, vfr_times, write_png
from geovr.data.decode import (VideoDecodeError, available_backends, decode_frames,
                               indices_at_times, probe_video)
from geovr.data.decode.dali_backend import supports

SOURCE = coded_frames().astype(np.float32)
INDICES = [0, 7, 7, 39, 3, 20]  # unsorted, with a repeat and the last frame


def nearest_source(frames: torch.Tensor) -> list[int]:
    """For each decoded frame [T, 3, H, W], the index of the closest source frame."""
    x = frames.permute(0, 2, 3, 1).float().cpu().numpy()
    d = ((x[:, None] - SOURCE[None]) ** 2).mean(axis=(2, 3, 4))
    return d.argmin(1).tolist()


def backends_for(info) -> list[str]:
    names = ["pyav"]
    for name in available_backends():
        if name.startswith("dali") and supports(info, name.split("-")[1]):
            names.append(name)
    return names


@pytest.mark.parametrize("name", ["h264.mp4", "h264_gop5.mp4", "hevc.mkv", "vp9.webm", "av1.mp4",
                                  "vfr_vp9.webm", "vfr_h264.mp4"])
def test_probe(good_clips, name):
    info = probe_video(good_clips[name])
    assert info.num_frames == N_FRAMES
    assert (info.height, info.width) == (64, 96)
    assert info.codec == {"hevc.mkv": "hevc", "vp9.webm": "vp9", "vfr_vp9.webm": "vp9", "av1.mp4": "av1"}.get(name, "h264")
    if name.startswith("vfr"):
        assert info.variable_frame_rate
        np.testing.assert_allclose(info.frame_times_s, vfr_times(), atol=1.5e-3)
    else:
        assert not info.variable_frame_rate
        assert info.fps == pytest.approx(FPS, rel=1e-3)


def test_probe_and_decode_a_one_frame_image(tmp_path):
    """An image record's png: one frame, its rate from the stream header (read while the file is
    open: PyAV >= 18.1.1 refuses a closed stream's attributes), its pixels exactly."""
    rgb = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
    write_png(tmp_path / "one.png", rgb)
    info = probe_video(tmp_path / "one.png")
    assert (info.num_frames, info.height, info.width) == (1, 40, 56) and info.fps > 0
    frames = decode_frames(info, [0], backend="pyav")
    assert torch.equal(frames.data[0].permute(1, 2, 0), torch.from_numpy(rgb))


@pytest.mark.parametrize("name", ["h264.mp4", "h264_gop5.mp4", "hevc.mkv", "vp9.webm", "av1.mp4",
                                  "vfr_vp9.webm", "vfr_h264.mp4"])
def test_decode_returns_requested_frames_on_every_backend(good_clips, name):
    info = probe_video(good_clips[name])
    results = {}
    for backend in backends_for(info):
        out = decode_frames(info, INDICES, backend=backend)
        assert out.data.dtype == torch.uint8 and out.data.shape == (len(INDICES), 3, 64, 96)
        assert out.indices == INDICES
        assert out.timestamps_s == [info.frame_times_s[i] for i in INDICES]
        assert nearest_source(out.data) == INDICES, backend
        err = (out.data.permute(0, 2, 3, 1).float().cpu().numpy() - SOURCE[INDICES]).__abs__().mean()
        assert err < 6.0, (backend, err)  # lossy coding + YUV 4:2:0
        results[backend] = out.data.float().cpu()
    ref = results.pop("pyav")
    for backend, data in results.items():  # same frames, up to YUV->RGB conversion
        assert (data - ref).abs().mean() < 3.0, backend


def test_dali_cpu_path_is_exercised_in_ci():
    """CI installs `.[dev]`, which brings DALI: there its CPU path (VP9) must really run."""
    if not os.environ.get("CI"):
        pytest.skip("only enforced in CI (.ci/run sets CI=true)")
    assert "dali-cpu" in available_backends(), "DALI did not import in CI: check the .[dev] install"


def test_dali_cpu_rejects_gpu_only_codec(good_clips):
    if "dali-cpu" not in available_backends():
        pytest.skip("nvidia-dali-cuda130 is not installed")
    with pytest.raises(VideoDecodeError, match="does not support codec 'h264'"):
        decode_frames(good_clips["h264.mp4"], [0], backend="dali-cpu")


def test_indices_at_times_on_vfr(good_clips):
    info = probe_video(good_clips["vfr_vp9.webm"])
    times = vfr_times()
    assert indices_at_times(info, [0.0, times[5], times[5] + 0.01, times[-1]]) == [0, 5, 5, N_FRAMES - 1]
    with pytest.raises(ValueError, match="outside"):
        indices_at_times(info, [times[-1] + 10])


def test_bad_indices(good_clips):
    with pytest.raises(ValueError, match="outside 0..39"):
        decode_frames(good_clips["h264.mp4"], [0, 40])
    with pytest.raises(ValueError, match="empty"):
        decode_frames(good_clips["h264.mp4"], [])
    with pytest.raises(ValueError, match="backend must be one of"):
        decode_frames(good_clips["h264.mp4"], [0], backend="opencv")


@pytest.mark.parametrize("fault,kinds", [
    ("missing", {"missing"}), ("truncated", {"truncated", "corrupt"}), ("truncated_webm", {"truncated"}),
    ("zero_bytes", {"corrupt"}), ("garbage", {"corrupt"}), ("corrupt", {"corrupt", "truncated"}),
    ("audio_only", {"no_video"}), ("directory", {"missing"})])
def test_broken_files_raise_video_decode_error(bad_clips, fault, kinds):
    """Probe or decode of every broken file fails with VideoDecodeError naming the file; never
    another exception type and never a crash."""
    path = bad_clips[fault]
    with pytest.raises(VideoDecodeError) as info:
        meta = probe_video(path)
        decode_frames(meta, list(range(meta.num_frames)), backend="pyav")
    assert str(path) in str(info.value)
    assert info.value.kind in kinds, info.value


@pytest.mark.gpu
def test_dali_gpu_frames_stay_on_gpu(good_clips):
    if "dali-gpu" not in available_backends():
        pytest.skip("DALI not installed")
    out = decode_frames(good_clips["h264.mp4"], INDICES, backend="dali-gpu")
    assert out.data.is_cuda and nearest_source(out.data) == INDICES


@pytest.mark.parametrize("name", ["h264_gop5.mp4", "hevc.mkv", "vp9.webm", "vfr_h264.mp4", "av1.mp4"])
def test_keyframe_seeking_returns_the_frames_of_one_sequential_pass(good_clips, name):
    from geovr.data.decode.pyav_backend import _plan_seek, decode_pyav

    info = probe_video(good_clips[name])
    assert info.keyframes and info.keyframes[0] == 0 and len(info.frame_pts) == N_FRAMES
    if name == "h264_gop5.mp4":
        assert len(info.keyframes) >= N_FRAMES // 5 and max(np.diff(info.keyframes)) <= 5
        last_key = max(k for k in info.keyframes if k <= 37)
        assert _plan_seek(info, -1, 37) == last_key  # far: seek to the keyframe before
        assert _plan_seek(info, 33, 37) is None  # near: decode on
    rng = np.random.default_rng(0)
    for ids in ([0, 39], [39, 0, 20, 20], rng.integers(0, N_FRAMES, 12).tolist(), list(range(0, 40, 13))):
        one_pass = decode_pyav(info, ids, seek=False)
        seeking = decode_pyav(info, ids, seek=True)
        assert torch.equal(one_pass.data, seeking.data), ids
        assert nearest_source(seeking.data) == ids


def _decode_in_child(path: str, indices: list[int], out) -> None:
    torch.set_num_threads(1)  # as a DataLoader worker does (OpenMP does not survive a fork either)
    out.put(decode_frames(probe_video(path), indices, backend="pyav").data.numpy().tobytes())


def test_pyav_decodes_in_a_process_forked_after_the_parent_decoded(good_clips):
    """A DataLoader worker is forked from a parent that has often decoded already (the tests, a
    data check, an eval). PyAV >= 18.1.1 caches a per-thread frame converter whose swscale
    threads do not survive a fork: converting with it in the child waited forever."""
    import multiprocessing as mp

    path = str(good_clips["h264.mp4"])
    parent = decode_frames(probe_video(path), [0, 3, 7], backend="pyav").data.numpy().tobytes()
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_decode_in_child, args=(path, [0, 3, 7], out), daemon=True)
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("decoding in a forked process hung (the converter's threads did not survive the fork)")
    assert child.exitcode == 0
    assert out.get(timeout=5) == parent
