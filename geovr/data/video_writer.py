"""`write_video`: encode RGB frames to a file with PyAV (used by the synthetic world, the tests and
the decode benchmark). Container from the suffix: .mp4, .mkv, .webm."""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

CODECS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1",
          "mpeg4": "mpeg4"}


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 10.0, codec: str = "h264",
                gop: int | None = None, quality: int | None = None,
                times_s: list[float] | None = None) -> None:
    """Encode `frames` (uint8 [T, H, W, 3] RGB, even H and W) to `path`.

    codec: one of `CODECS` (h264, hevc, vp9, av1, mpeg4). gop: keyframe interval in frames
    (None = the encoder's default). quality: CRF for x264/x265/vp9/av1 (lower is better; None =
    near-lossless 10 for x264/x265/vp9). times_s: per-frame presentation times for a
    variable-frame-rate file (strictly increasing; default i / fps).
    The file is written to `path + ".part"` and renamed, so a crash never leaves a half file.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if t == 0 or h % 2 or w % 2:
        raise ValueError(f"need >= 1 frame and even height/width for yuv420p, got {frames.shape}")
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    if times_s is not None and (len(times_s) != t or np.any(np.diff(times_s) <= 0)):
        raise ValueError("times_s must hold one strictly increasing time per frame")
    path = os.fspath(path)
    fmt = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm"}.get(os.path.splitext(path)[1])
    if fmt is None:
        raise ValueError(f"{path}: use a .mp4, .mkv or .webm suffix")
    tmp = path + ".part"
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(tmp, "w", format=fmt) as container:
        stream = container.add_stream(CODECS[codec], rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        options = {}
        crf = quality if quality is not None else 10
        if codec in ("h264", "hevc"):
            options["crf"] = str(crf)
            if codec == "hevc":
                options["x265-params"] = "log-level=error"
        elif codec == "vp9":
            options.update({"crf": str(crf), "b": "0", "deadline": "realtime", "cpu-used": "8"})
        elif codec == "av1":
            options.update({"crf": str(quality if quality is not None else 10), "preset": "8",
                            })
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its config unless told not to
        elif codec == "mpeg4":
            stream.bit_rate = 20_000_000
        stream.options = options
        if gop is not None:
            stream.codec_context.gop_size = gop
        if times_s is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)  # ms: what webm forces anyway
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            if times_s is not None:
                frame.pts = round(times_s[i] * 1000)
                frame.time_base = stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
