"""`probe_video`: frame count, per-frame times, size and codec by demuxing (no decoding).

Demuxing packets is ~100x cheaper than decoding them and gives the true frame count for
containers whose headers omit it (webm/mkv) and the real timestamps of variable-frame-rate files.
"""
from __future__ import annotations

import os

from .info import VideoInfo
from ..errors import VideoDecodeError


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Probe `path` with PyAV. Raises `VideoDecodeError` for missing files, files with no video
    stream (audio-only), no frames, or a container FFmpeg cannot parse."""
    import av

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "file not found", "missing")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise VideoDecodeError(path, f"no video stream (streams: {', '.join(kinds)})", "no_video")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            width, height = ctx.width, ctx.height
            codec = stream.codec.canonical_name  # 'av1', not the decoder's name 'libdav1d'
            base = stream.time_base
            declared = _declared_duration_s(container, stream)
            rate = stream.average_rate or stream.base_rate  # PyAV >= 18.1.1: a closed stream is unreadable
            pts, key_pts = [], set()
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue  # the flush packet, or a packet without a timestamp
                pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.add(packet.pts)
    except VideoDecodeError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoDecodeError(path, f"cannot demux: {exc}", "corrupt") from exc
    if not pts:
        raise VideoDecodeError(path, "the video stream has no frames", "no_frames")
    if width <= 0 or height <= 0:
        raise VideoDecodeError(path, f"bad frame size {width}x{height}", "corrupt")
    pts.sort()  # decode order -> presentation order
    t0 = pts[0]
    times = tuple(float((p - t0) * base) for p in pts)
    n = len(times)
    if n > 1 and times[-1] > 0:
        fps = (n - 1) / times[-1]
    else:
        fps = float(rate) if rate else 0.0
    if fps <= 0:
        raise VideoDecodeError(path, "cannot tell the frame rate (no timestamps, no rate)", "corrupt")
    covered = times[-1] + 1.0 / fps
    if declared is not None and declared - covered > max(0.5, 0.1 * declared):
        raise VideoDecodeError(path, f"truncated: frames end at {covered:.2f} s of the declared "
                                     f"{declared:.2f} s", "truncated")
    unique = len(set(pts)) == n  # seeking needs one frame per timestamp
    keyframes = tuple(i for i, p in enumerate(pts) if p in key_pts) if unique else ()
    return VideoInfo(path=path, num_frames=n, fps=fps, width=width, height=height, codec=codec,
                     frame_times_s=times, frame_pts=tuple(pts) if unique else (), keyframes=keyframes)


def _declared_duration_s(container, stream) -> float | None:
    """The video's duration as its header declares it, to catch files cut short: the stream's own
    duration, else the container's when the video is its only stream (audio may run longer)."""
    if stream.duration is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if len(container.streams) == 1 and container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None
