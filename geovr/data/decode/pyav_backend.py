"""CPU decoding with PyAV (FFmpeg): every codec FFmpeg has, no GPU.

Strategy: walk the wanted frames in order; decode forward while the next wanted frame is near,
and seek to the keyframe before it when that skips more than `SEEK_GAIN` frames (short GOPs,
long videos). Decoded frames are identified by their timestamps (from `probe_video`), so a seek
can never mislabel a frame; files whose timestamps repeat are decoded sequentially.
"""
from __future__ import annotations

import bisect

import numpy as np
import torch

from .info import Frames, VideoInfo
from ..errors import VideoDecodeError

SEEK_GAIN = 8  # seek only when it skips at least this many frames (a seek flushes the decoder)


def _plan_seek(info: VideoInfo, current: int, target: int) -> int | None:
    """The keyframe to seek to before decoding `target` from `current` (last decoded index), or
    None to keep decoding forward."""
    if not info.keyframes or not info.frame_pts:
        return None
    k = info.keyframes[bisect.bisect_right(info.keyframes, target) - 1] if target >= info.keyframes[0] else None
    if k is None or k - (current + 1) < SEEK_GAIN:
        return None
    return k


def decode_pyav(info: VideoInfo, indices: list[int], threads: int = 0, seek: bool = True) -> Frames:
    """Decode frames `indices` (presentation order, repeats allowed) of `info.path`.

    Returns uint8 [T, 3, H, W] on the CPU at the probed size (a mid-stream resolution change is
    rescaled to it). threads: FFmpeg decoding threads (0 = FFmpeg's choice). seek: allow keyframe
    seeks (False = one sequential pass). Raises `VideoDecodeError` when the file ends before a
    wanted frame (truncated) or FFmpeg fails.
    """
    import av
    from av.video.reformatter import VideoReformatter

    # Our own converter, not `frame.to_ndarray(width=...)`: PyAV >= 18.1.1 keeps one converter per
    # thread, and the swscale worker threads it starts do not survive a fork, so a DataLoader
    # worker forked after the parent converted a frame waited on them forever.
    to_rgb = VideoReformatter()
    wanted_set = set(indices)
    wanted = sorted(wanted_set)
    got: dict[int, np.ndarray] = {}
    index_of = {p: i for i, p in enumerate(info.frame_pts)}
    try:
        with av.open(info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if threads:
                stream.codec_context.thread_count = threads
            frames = container.decode(stream)
            current, seq = -1, -1  # last decoded index; running count for sequential labelling
            for target in wanted:
                if target in got:
                    continue
                k = _plan_seek(info, current, target) if seek and index_of else None
                if k is not None:
                    container.seek(info.frame_pts[k], stream=stream, backward=True, any_frame=False)
                    frames = container.decode(stream)
                for frame in frames:
                    seq += 1
                    i = index_of.get(frame.pts, -1) if index_of else seq
                    if i < 0:
                        raise VideoDecodeError(info.path, f"decoded a frame with unknown timestamp {frame.pts}",
                                               "corrupt")
                    current = i
                    if i in wanted_set and i not in got:
                        got[i] = to_rgb.reformat(frame, width=info.width, height=info.height,
                                                 format="rgb24").to_ndarray()
                    if i >= target:
                        break
                if target not in got:
                    break
    except (av.error.FFmpegError, ValueError) as exc:
        raise VideoDecodeError(info.path, f"decoding failed: {exc}", "corrupt") from exc
    missing = sorted(wanted_set - got.keys())
    if missing and seek and index_of:
        return decode_pyav(info, indices, threads, seek=False)  # a seek misbehaved: one plain pass
    if missing:
        raise VideoDecodeError(
            info.path, f"truncated or corrupt: frame {missing[0]} of {info.num_frames} did not decode "
                       f"({len(got)} of {len(wanted)} wanted frames did)", "truncated")
    data = torch.from_numpy(np.stack([got[i] for i in indices])).permute(0, 3, 1, 2)
    return Frames(data=data, indices=list(indices),
                  timestamps_s=[info.frame_times_s[i] for i in indices], info=info, backend="pyav")
