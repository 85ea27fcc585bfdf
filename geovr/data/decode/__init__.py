"""Video decoding: `probe_video`, then `decode_frames(path, indices)` on any backend.

Backends: "pyav" (CPU, every FFmpeg codec), "dali-gpu" (NVDEC, frames stay on the GPU),
"dali-cpu" (VP8/VP9 only). "auto" picks DALI's GPU path when DALI and a GPU are present, else
PyAV. Every backend returns the same frames for the same file and indices (up to YUV->RGB
conversion, mean |diff| of a few levels), as `tests/data/test_decode.py` checks.
"""
from __future__ import annotations

import os

import torch

from ..errors import VideoDecodeError
from .dali_backend import dali_available, decode_dali, supports
from .info import Frames, VideoInfo
from .probe import probe_video
from .pyav_backend import decode_pyav

BACKENDS = ("auto", "pyav", "dali-gpu", "dali-cpu")


def available_backends() -> list[str]:
    """The concrete backends usable in this process."""
    names = ["pyav"]
    if dali_available():
        names.append("dali-cpu")
        if torch.cuda.is_available():
            names.append("dali-gpu")
    return names


def resolve_backend(backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "dali-gpu" if "dali-gpu" in available_backends() else "pyav"
    return backend


def indices_at_times(info: VideoInfo, times_s: list[float]) -> list[int]:
    """Frame indices shown at `times_s` (seconds from the first frame): the last frame whose
    presentation time is <= t, so variable-frame-rate files are handled exactly."""
    import bisect

    out = []
    for t in times_s:
        if t < 0 or t > info.frame_times_s[-1] + 1.0 / info.fps:
            raise ValueError(f"time {t:.3f} s is outside {info.path} (0..{info.duration_s:.3f} s)")
        out.append(max(0, bisect.bisect_right(info.frame_times_s, t + 1e-9) - 1))
    return out


def decode_frames(path: str | os.PathLike | VideoInfo, indices: list[int], backend: str = "auto",
                  device_id: int | None = None) -> Frames:
    """Decode frames `indices` (presentation order; repeats allowed) of a video.

    path: a file, or the `VideoInfo` from `probe_video` (saves probing twice).
    Returns `Frames` with uint8 data [T, 3, H, W] on the backend's device. A codec DALI cannot
    decode falls back to PyAV under backend="auto". Raises `VideoDecodeError` for unreadable
    files and `ValueError` for bad indices.
    """
    info = path if isinstance(path, VideoInfo) else probe_video(path)
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("indices is empty: ask for at least one frame")
    bad = [i for i in indices if not 0 <= i < info.num_frames]
    if bad:
        raise ValueError(f"frame indices {bad[:5]} are outside 0..{info.num_frames - 1} of {info.path}")
    name = resolve_backend(backend)
    if name == "dali-gpu" and backend == "auto" and not supports(info, "gpu"):
        name = "pyav"
    if name == "pyav":
        return decode_pyav(info, indices)
    return decode_dali(info, indices, device=name.split("-")[1], device_id=device_id)


__all__ = ["BACKENDS", "Frames", "VideoDecodeError", "VideoInfo", "available_backends",
           "decode_frames", "indices_at_times", "probe_video", "resolve_backend"]
