"""What a decoder returns: the probed `VideoInfo` and the decoded `Frames`."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class VideoInfo:
    """Container-level facts of one video, from `probe_video` (demux only, no decoding).

    `frame_times_s` holds every frame's presentation time in seconds from the first frame, in
    presentation order: frame index i (what the decoders take) is the i-th entry. For
    variable-frame-rate files these are uneven; `fps` is the average rate (frames / span).
    `frame_pts` and `keyframes` (empty when timestamps repeat) let PyAV seek by index.
    """

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str
    frame_times_s: tuple[float, ...]
    frame_pts: tuple[int, ...] = ()  # raw stream timestamps, presentation order (for seeking)
    keyframes: tuple[int, ...] = ()  # indices of keyframes (where a seek can land)

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0

    @property
    def variable_frame_rate(self) -> bool:
        """True when frame intervals differ by more than 1 % of the average interval."""
        if self.num_frames < 3:
            return False
        steps = [b - a for a, b in zip(self.frame_times_s, self.frame_times_s[1:])]
        mean = sum(steps) / len(steps)
        return mean > 0 and (max(steps) - min(steps)) > 0.01 * mean


@dataclass
class Frames:
    """Decoded frames of one video.

    data: uint8 [T, 3, H, W] on the decoder's device (CUDA for DALI's GPU path; a view of an
    NHWC buffer, not necessarily contiguous). indices: the T frame indices decoded, in request
    order (repeats allowed). timestamps_s: their presentation times (from `VideoInfo`).
    """

    data: torch.Tensor
    indices: list[int]
    timestamps_s: list[float]
    info: VideoInfo
    backend: str
