"""Real video files for the data tests, written with PyAV: index-coded frames (each frame
differs from every other by a clear margin, so a decoder that returns the wrong frame is caught),
every codec we support, variable frame rate, and each kind of broken file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from geovr.data.video_writer import write_video

N_FRAMES, HEIGHT, WIDTH, FPS = 40, 64, 96, 10.0


def coded_frames(n: int = N_FRAMES, h: int = HEIGHT, w: int = WIDTH) -> np.ndarray:
    """uint8 [n, h, w, 3]: smooth content whose colour and a moving bar encode the index."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        phase = 2 * np.pi * i / n
        r = 128 + 100 * np.sin(phase) * np.ones_like(xx)
        g = 128 + 100 * np.cos(phase) + 0 * yy
        b = (xx / w) * 200 + 20
        bar = np.abs(xx - (i * w / n)) < 3
        b[bar] = 250
        out[i] = np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8)
    return out


def vfr_times(n: int = N_FRAMES, seed: int = 0) -> list[float]:
    steps = np.random.default_rng(seed).uniform(0.04, 0.25, n - 1)
    return [0.0] + np.cumsum(steps).round(3).tolist()


GOOD = {  # name: (codec, suffix, kwargs)
    "h264.mp4": ("h264", ".mp4", {}),
    "h264_gop5.mp4": ("h264", ".mp4", {"gop": 5}),
    "hevc.mkv": ("hevc", ".mkv", {}),
    "vp9.webm": ("vp9", ".webm", {}),
    "av1.mp4": ("av1", ".mp4", {}),
    "vfr_vp9.webm": ("vp9", ".webm", {"times_s": vfr_times()}),
    "vfr_h264.mp4": ("h264", ".mp4", {"times_s": vfr_times()}),
}


def write_good(folder: Path) -> dict[str, Path]:
    frames = coded_frames()
    out = {}
    for name, (codec, _, kw) in GOOD.items():
        write_video(folder / name, frames, fps=FPS, codec=codec, **kw)
        out[name] = folder / name
    return out


def write_png(path: Path, rgb: np.ndarray) -> None:
    """A one-frame png (lossless) of uint8 [h, w, 3], written with PyAV."""
    import av

    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream("png")
        s.width, s.height, s.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
        for p in [*s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")), *s.encode()]:
            c.mux(p)


def write_audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000)
        s.layout = "mono"
        for k in range(10):
            samples = (np.sin(np.arange(1024) * 0.05 * (k + 1))[None] * 0.3).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = k * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_bad(folder: Path, good: dict[str, Path]) -> dict[str, Path]:
    """Broken files, each named by its fault."""
    out = {"missing": folder / "missing.mp4"}
    data = good["h264.mp4"].read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    out["truncated"] = folder / "truncated.mp4"
    webm = good["vp9.webm"].read_bytes()
    (folder / "truncated.webm").write_bytes(webm[: len(webm) // 3])
    out["truncated_webm"] = folder / "truncated.webm"
    (folder / "empty.mp4").write_bytes(b"")
    out["zero_bytes"] = folder / "empty.mp4"
    rng = np.random.default_rng(1)
    (folder / "garbage.mp4").write_bytes(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    out["garbage"] = folder / "garbage.mp4"
    corrupt = bytearray(data)
    mid = len(corrupt) // 3
    corrupt[mid: mid + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    (folder / "corrupt.mp4").write_bytes(bytes(corrupt))
    out["corrupt"] = folder / "corrupt.mp4"
    write_audio_only(folder / "audio.mp4")
    out["audio_only"] = folder / "audio.mp4"
    os.makedirs(folder / "a_directory.mp4", exist_ok=True)
    out["directory"] = folder / "a_directory.mp4"
    return out
