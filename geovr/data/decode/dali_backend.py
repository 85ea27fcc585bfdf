"""Decoding with NVIDIA DALI's in-memory video decoder (`fn.decoders.video`, explicit frame indices).

GPU (`device="gpu"`): DALI's mixed backend decodes with NVDEC (H.264, HEVC, AV1, VP8/9, MPEG-4) and
the frames stay on the GPU (DLPack into torch, no host round-trip). CPU (`device="cpu"`): VP8/VP9
(and MJPEG) only. The decoder builds a frame index (`build_index=True`) so it seeks by index and
copes with variable frame rate. One pipeline per (device, device_id) is built once and fed a file's
bytes and its frame list per call. DALI is an optional extra: `pip install nvidia-dali-cuda130`.
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from .info import Frames, VideoInfo
from ..errors import VideoDecodeError

CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
GPU_CODECS = frozenset({"h264", "hevc", "av1", "vp8", "vp9", "mpeg4", "mjpeg"})


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def supports(info: VideoInfo, device: str) -> bool:
    """Whether DALI's `device` backend decodes `info.codec`."""
    return info.codec in (GPU_CODECS if device == "gpu" else CPU_CODECS)


class _Pipeline:
    """A built DALI pipeline: encoded bytes + int32 frame list in, [F, H, W, 3] uint8 out."""

    def __init__(self, device: str, device_id: int | None, num_threads: int):
        try:
            from nvidia.dali import fn, pipeline_def, types
        except ImportError as exc:
            raise ImportError("the DALI backend needs NVIDIA DALI: pip install nvidia-dali-cuda130 "
                              "(or use backend='pyav')") from exc

        @pipeline_def(batch_size=1, num_threads=num_threads, device_id=device_id,
                      prefetch_queue_depth=1, exec_dynamic=True)
        def video_pipeline():
            encoded = fn.external_source(name="encoded", dtype=types.UINT8, ndim=1)
            frames = fn.external_source(name="frames", dtype=types.INT32, ndim=1)
            return fn.decoders.video(encoded, device="mixed" if device == "gpu" else "cpu",
                                     frames=frames, build_index=True)

        self.pipe = video_pipeline()
        self.pipe.build()
        self.device_id = device_id
        self.lock = threading.Lock()

    def run(self, encoded: np.ndarray, frames: np.ndarray, device: str) -> torch.Tensor:
        with self.lock:
            self.pipe.feed_input("encoded", [encoded])
            self.pipe.feed_input("frames", [frames])
            (out,) = self.pipe.run()
            sample = out.at(0)  # sample 0 of the batch: [F, H, W, 3]
            if device == "cpu":
                return torch.from_numpy(np.array(sample))  # copy: DALI reuses its buffers
            torch.cuda.synchronize(self.device_id)  # DALI's stream has finished writing the frames
            return torch.from_dlpack(sample).clone()  # device-to-device copy, same reason


_PIPELINES: dict[tuple[str, int | None], _Pipeline] = {}
_PIPELINES_LOCK = threading.Lock()


def _pipeline(device: str, device_id: int | None, num_threads: int) -> _Pipeline:
    key = (device, device_id)
    with _PIPELINES_LOCK:
        if key not in _PIPELINES:
            _PIPELINES[key] = _Pipeline(device, device_id, num_threads)
        return _PIPELINES[key]


def decode_dali(info: VideoInfo, indices: list[int], device: str = "gpu",
                device_id: int | None = None, num_threads: int = 2) -> Frames:
    """Decode frames `indices` of `info.path` with DALI on `device` ("gpu" or "cpu").

    Returns uint8 [T, 3, H, W] (CUDA tensor on GPU `device_id`, default the current device).
    Raises `VideoDecodeError` for codecs the backend lacks or files DALI cannot decode; a DALI
    pipeline that failed is rebuilt on the next call.
    """
    if device not in ("gpu", "cpu"):
        raise ValueError(f"device must be 'gpu' or 'cpu', got {device!r}")
    if not supports(info, device):
        raise VideoDecodeError(info.path, f"DALI's {device} decoder does not support codec "
                                          f"'{info.codec}' (CPU: {sorted(CPU_CODECS)})", "unsupported")
    if device == "gpu" and device_id is None:
        device_id = torch.cuda.current_device()
    if device == "cpu":
        device_id = None
    encoded = np.fromfile(info.path, dtype=np.uint8)
    frames = np.asarray(indices, dtype=np.int32)
    try:
        nhwc = _pipeline(device, device_id, num_threads).run(encoded, frames, device)
    except RuntimeError as exc:
        with _PIPELINES_LOCK:  # a failed pipeline is no longer valid
            _PIPELINES.pop((device, device_id), None)
        raise VideoDecodeError(info.path, f"DALI failed: {str(exc).splitlines()[0]}", "corrupt") from exc
    if nhwc.shape[0] != len(indices):
        raise VideoDecodeError(info.path, f"DALI returned {nhwc.shape[0]} of {len(indices)} frames", "truncated")
    return Frames(data=nhwc.permute(0, 3, 1, 2), indices=list(indices),
                  timestamps_s=[info.frame_times_s[i] for i in indices], info=info,
                  backend=f"dali-{device}")
