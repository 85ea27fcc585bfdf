"""The release's frame sampling and sizes, against the rules (and HF's own code where it imports)."""
from __future__ import annotations

import numpy as np
import pytest

from geovr.data.sampling import (FrameSampling, QwenVision, qwen_frame_size, qwen_smart_resize,
                                 sample_indices, teacher_frame_size)


@pytest.mark.parametrize("n,fps,expect", [(300, 30.0, 20), (30 * 60, 30.0, 32), (30, 30.0, 4), (3, 30.0, 3),
                                          (1, 24.0, 1), (100, 10.0, 20)])
def test_sample_indices_count(n, fps, expect):
    idx = sample_indices(n, fps)
    assert len(idx) == expect
    assert idx[0] == 0 and idx[-1] == n - 1 and idx == sorted(idx) and len(set(idx)) == len(idx)


def test_sample_indices_matches_hf_rule():
    """HF's Qwen3-VL sampler: n = int(total / fps * 2) clamped; linspace(0, total-1, n).round()."""
    for n, fps in [(917, 29.97), (241, 24.0), (64, 5.0)]:
        k = min(max(int(n / fps * 2), 4), 32, n)
        assert sample_indices(n, fps) == np.linspace(0, n - 1, k).round().astype(int).tolist()


@pytest.mark.parametrize("n,fps,count", [(917, 29.97, 128), (50, 30.0, 128), (3, 24.0, 8), (1, 24.0, 4),
                                         (300, 30.0, 1), (64, 5.0, 64)])
def test_sample_indices_exact_count_is_hf_num_frames(n, fps, count):
    """FrameSampling(count=k): HF's Qwen3-VL processor given num_frames=k (the release's
    evaluation): exactly k frames whatever the video's length, repeats in a shorter video, the
    fps rule and its clamp unused."""
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
    from transformers.video_utils import VideoMetadata

    want = Qwen3VLVideoProcessor().sample_frames(VideoMetadata(total_num_frames=n, fps=fps), num_frames=count)
    got = sample_indices(n, fps, FrameSampling(fps=0.5, min_frames=2, max_frames=3, count=count))
    assert got == want.tolist() and len(got) == count
    assert (len(set(got)) < count) == (n < count)


def test_sampling_validation():
    with pytest.raises(ValueError, match="num_frames"):
        sample_indices(0, 30.0)
    with pytest.raises(ValueError, match="video_fps"):
        sample_indices(10, 0.0)
    with pytest.raises(ValueError, match="min_frames"):
        FrameSampling(min_frames=8, max_frames=4)
    with pytest.raises(ValueError, match="count"):
        FrameSampling(count=0)


def test_release_sizes():
    assert qwen_frame_size(16, 480, 640) == (480, 640)  # 15 x 20 = 300 merged tokens
    assert teacher_frame_size(480, 640) == (392, 504)  # 28 x 36 patches of 14
    assert teacher_frame_size(640, 480) == (504, 392)
    for t, h, w in [(4, 1080, 1920), (32, 720, 1280), (8, 1440, 1080), (5, 240, 320)]:
        hh, ww = qwen_frame_size(t, h, w)
        assert hh % 32 == 0 and ww % 32 == 0
        assert (hh // 32) * (ww // 32) <= QwenVision().max_tokens_per_frame
        th, tw = teacher_frame_size(h, w)
        assert max(th, tw) == 504 and min(th, tw) % 28 == 0


def test_smart_resize_equals_hf():
    hf = pytest.importorskip("transformers.models.qwen3_vl.video_processing_qwen3_vl",
                             reason="HF's Qwen3-VL video module needs transformers and pillow")
    rng = np.random.default_rng(0)
    for _ in range(300):
        t = int(rng.integers(2, 65))
        h, w = int(rng.integers(20, 2200)), int(rng.integers(20, 2200))
        budget = int(rng.integers(64, 1200)) * 1024
        args = (t, h, w, 2, 32, 128 * 32 * 32, t * budget)
        assert qwen_smart_resize(*args) == hf.smart_resize(*args), args
