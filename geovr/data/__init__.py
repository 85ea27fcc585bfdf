"""The data room: everything between a video file on disk and a batch the model eats.

- `decode`: `probe_video`, `decode_frames` on PyAV (CPU) or DALI (GPU; VP9 on CPU).
- `sampling`: the release's frame sampling and frame sizes (Qwen3-VL and the 3D teacher).
- `datasets`: VSI-590K, VLM-3R and LLaVA-style readers with schema validation.
- `synthetic`: procedural rooms with exact depth, poses and QA (the default data).
- `video_writer`: encode frames to mp4/mkv/webm.
"""
from .errors import RecordError, VideoDecodeError

__all__ = ["RecordError", "VideoDecodeError"]
