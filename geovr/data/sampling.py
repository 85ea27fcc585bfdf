"""Which frames of a video to decode, and at what sizes (the release's rules).

- `sample_indices`: 2 fps, clamped to 4..32 frames (and to the frames the video has), evenly
  spaced over the whole video, as the Qwen3-VL video processor samples; or exactly `count` frames
  (the processor given `num_frames`: the release's evaluation).
- `qwen_frame_size`: Qwen3-VL's `smart_resize` for a clip whose frames are duplicated (one real
  frame per temporal patch), capped at `max_tokens_per_frame` merged tokens per frame.
- `teacher_frame_size`: VGGT's rule: longest edge 504, the other edge scaled and rounded to a
  multiple of 28 (480x640 -> 392x504).
- `teacher_plan`: both for one media file, from its probe: what a teacher-target cache keys a
  sample by (`geovr.teachers.cache.cache_key`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FrameSampling:
    """fps: frames sampled per second of video; min_frames/max_frames clamp the count. count: take
    exactly this many frames whatever the video's length (fps and the clamp unused; a video with
    fewer frames repeats some), as HF's Qwen3-VL processor does given `num_frames`."""

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 32
    count: int | None = None

    def __post_init__(self):
        if self.fps <= 0:
            raise ValueError(f"FrameSampling.fps must be > 0, got {self.fps}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"FrameSampling.count must be >= 1, got {self.count}")

    def to_dict(self) -> dict:
        """The rule as reports record it (count only when set, as before it existed)."""
        return {k: v for k, v in asdict(self).items() if k != "count" or v is not None}


def sample_indices(num_frames: int, video_fps: float, rule: FrameSampling = FrameSampling()) -> list[int]:
    """Frame indices to decode: int(duration * rule.fps) frames clamped to
    [min_frames, max_frames] and to num_frames (or exactly rule.count, repeats allowed), at
    round(linspace(0, num_frames - 1, n))."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if video_fps <= 0:
        raise ValueError(f"video_fps must be > 0, got {video_fps}")
    if rule.count is not None:
        n = rule.count
    else:
        n = int(num_frames / video_fps * rule.fps)
        n = min(max(n, rule.min_frames), rule.max_frames, num_frames)
    return np.linspace(0, num_frames - 1, n).round().astype(int).tolist()


def qwen_smart_resize(num_frames: int, height: int, width: int, temporal_factor: int = 2,
                      factor: int = 32, min_pixels: int = 128 * 32 * 32,
                      max_pixels: int = 768 * 32 * 32) -> tuple[int, int]:
    """Qwen3-VL's video resize rule: (height, width) as multiples of `factor` near the input's
    aspect ratio with num_frames * H * W within [min_pixels, max_pixels] (pixels summed over the
    `num_frames` frames fed to the processor, duplicates included)."""
    if num_frames < temporal_factor:
        raise ValueError(f"num_frames ({num_frames}) must be >= temporal_factor ({temporal_factor})")
    if height < factor or width < factor:
        up = max(factor / height, factor / width)
        height, width = int(height * up), int(width * up)
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} exceeds 200")
    t_bar = round(num_frames / temporal_factor) * temporal_factor
    return _fit(height, width, factor, min_pixels, max_pixels, t_bar, num_frames)


def _fit(height: int, width: int, factor: int, min_pixels: int, max_pixels: int, count_rounded: int,
         count: int) -> tuple[int, int]:
    """Qwen's rule shared by videos and images: round (H, W) to multiples of `factor`, then rescale
    when count_rounded * H * W leaves [min_pixels, max_pixels] (count frames; 1 for an image)."""
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if count_rounded * h_bar * w_bar > max_pixels:
        beta = math.sqrt(count * height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif count_rounded * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (count * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class QwenPatchGrid:
    """Qwen3-VL's patch grid: patch size (px), spatial merge and temporal patch."""

    patch_size: int = 16
    merge_size: int = 2
    temporal_patch_size: int = 2

    @property
    def factor(self) -> int:
        """Side (px) of one merged token: resized frames are multiples of it."""
        return self.patch_size * self.merge_size


@dataclass(frozen=True)
class QwenVision(QwenPatchGrid):
    """Qwen3-VL video geometry. max_tokens_per_frame: merged tokens per real frame (release: 300).
    pair_frames: consecutive real frames share a temporal patch, as HF's video processor packs the
    frames it is given (the release's evaluation: `num_frames` frames, 4..384 tokens each); off (the
    default, the release's training): each frame is duplicated into its own patch. The pixel
    budget is then min_tokens_per_frame..max_tokens_per_frame merged tokens per real frame;
    min_pixels: the whole clip's minimum when frames are duplicated."""

    max_tokens_per_frame: int = 300
    min_pixels: int = 128 * 32 * 32
    pair_frames: bool = False
    min_tokens_per_frame: int = 4

    @property
    def frames_per_patch(self) -> int:
        """Real frames in one temporal patch."""
        return self.temporal_patch_size if self.pair_frames else 1


def qwen_frame_size(num_frames: int, height: int, width: int, vision: QwenVision = QwenVision()) -> tuple[int, int]:
    """Resized (H, W) of `num_frames` real frames: each duplicated into its own temporal patch, or
    with vision.pair_frames, as they are (the budget over the real frames)."""
    tokens = vision.factor ** 2
    if vision.pair_frames:
        return qwen_smart_resize(num_frames, height, width, vision.temporal_patch_size, vision.factor,
                                 num_frames * vision.min_tokens_per_frame * tokens,
                                 num_frames * vision.max_tokens_per_frame * tokens)
    dup = num_frames * vision.temporal_patch_size
    return qwen_smart_resize(dup, height, width, vision.temporal_patch_size, vision.factor,
                             vision.min_pixels, dup * vision.max_tokens_per_frame * tokens)


def patch_timestamps(indices: list[int], video_fps: float, vision: QwenVision = QwenVision()) -> list[float]:
    """One time (s) per temporal patch, as HF's Qwen3-VL processor gives it: the frames' times
    (index / fps), the last repeated to fill the last patch, each patch's first and last averaged."""
    n = vision.frames_per_patch
    idx = list(indices) + [indices[-1]] * (-len(indices) % n)
    times = [i / video_fps for i in idx]
    return [(times[k] + times[k + n - 1]) / 2 for k in range(0, len(times), n)]


@dataclass(frozen=True)
class QwenImageVision(QwenPatchGrid):
    """Qwen3-VL image geometry (its preprocessor_config.json): min/max pixels of one image."""

    min_pixels: int = 65536
    max_pixels: int = 16777216


def qwen_image_size(height: int, width: int, vision: QwenImageVision = QwenImageVision()) -> tuple[int, int]:
    """Qwen's image resize rule: multiples of `factor`, pixels within [min_pixels, max_pixels]."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} exceeds 200")
    return _fit(height, width, vision.factor, vision.min_pixels, vision.max_pixels, 1, 1)


def teacher_frame_size(height: int, width: int, longest: int = 504, multiple: int = 28) -> tuple[int, int]:
    """(H, W) for the 3D teacher: the longest edge becomes `longest`, the other keeps the aspect
    ratio rounded to a multiple of `multiple` (at least one multiple)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"bad frame size {height}x{width}")
    if width >= height:
        return max(multiple, round(height * longest / width / multiple) * multiple), longest
    return longest, max(multiple, round(width * longest / height / multiple) * multiple)


def teacher_plan(kind: str, num_frames: int, video_fps: float, height: int, width: int, rule: FrameSampling,
                 teacher_longest: int) -> tuple[list[int], tuple[int, int]]:
    """The frame indices a record of `kind` ("video" or "image") takes from a media file of
    `num_frames` frames at `video_fps`, `height` x `width` pixels, and its teacher frame size (H, W):
    known from a probe, before anything is decoded."""
    indices = [0] if kind == "image" else sample_indices(num_frames, video_fps, rule)
    return indices, teacher_frame_size(height, width, teacher_longest)
