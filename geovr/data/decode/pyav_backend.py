"""CPU decoding with PyAV (FFmpeg): every codec FFmpeg has, no GPU.

Strategy: one sequential pass that decodes up to the last wanted frame and converts only the
wanted ones to RGB. For the 2-fps sampling of training clips this beats per-frame seeking unless
the GOP is short relative to the sampling stride (measured in `benchmarks/decode.py`).
"""
from __future__ import annotations

import numpy as np
import torch

from .info import Frames, VideoInfo
from ..errors import VideoDecodeError


def decode_pyav(info: VideoInfo, indices: list[int], threads: int = 0) -> Frames:
    """Decode frames `indices` (presentation order, repeats allowed) of `info.path`.

    Returns uint8 [T, 3, H, W] on the CPU at the probed size (a mid-stream resolution change is
    rescaled to it). threads: FFmpeg decoding threads (0 = FFmpeg's choice).
    Raises `VideoDecodeError` when the file ends before a wanted frame (truncated) or FFmpeg fails.
    """
    import av

    wanted = set(indices)
    last = max(indices)
    got: dict[int, np.ndarray] = {}
    try:
        with av.open(info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if threads:
                stream.codec_context.thread_count = threads
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    got[i] = frame.to_ndarray(format="rgb24", width=info.width, height=info.height)
                if i >= last:
                    break
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoDecodeError(info.path, f"decoding failed: {exc}", "corrupt") from exc
    missing = sorted(wanted - got.keys())
    if missing:
        raise VideoDecodeError(
            info.path, f"truncated or corrupt: frame {missing[0]} of {info.num_frames} did not decode "
                       f"({len(got)} of {len(wanted)} wanted frames did)", "truncated")
    data = torch.from_numpy(np.stack([got[i] for i in indices])).permute(0, 3, 1, 2)
    return Frames(data=data, indices=list(indices),
                  timestamps_s=[info.frame_times_s[i] for i in indices], info=info, backend="pyav")
