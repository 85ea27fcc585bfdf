"""Benchmark video decoding: frames/s of each available backend for the release's access pattern
(32 evenly spaced frames of a clip), at 480x640, with a short and a long GOP.

    python benchmarks/decode.py                 # all backends available here
    python benchmarks/decode.py --clips 8 --seconds 20 --height 480 --width 640

Clips are generated once (moving textured content with noise, so the encoders work as on real
footage) into --cache (default: a temporary folder). Columns: codec, GOP, backend, median seconds
per clip, decoded frames/s (32 / that), and speed-up over PyAV on the same clip. On a GPU the
target is DALI's GPU decoder >= 3x PyAV per process. Record figures in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from geovr.cli import at_least, positive
from geovr.data.decode import available_backends, decode_frames, probe_video
from geovr.data.decode.dali_backend import supports
from geovr.data.video_writer import write_video

TARGET_SPEEDUP = 3.0


def make_clip(path: Path, codec: str, gop: int, n: int, h: int, w: int, fps: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = (np.sin(xx / 23.0) + np.cos(yy / 17.0)) * 60 + 128
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        shift = int(i * 3) % w
        moving = np.roll(base, shift, axis=1)
        noise = rng.normal(0, 6, (h, w)).astype(np.float32)
        frames[i, ..., 0] = np.clip(moving + noise, 0, 255)
        frames[i, ..., 1] = np.clip(np.roll(base, -shift, axis=0) + noise, 0, 255)
        frames[i, ..., 2] = np.clip(255 - moving, 0, 255)
    write_video(path, frames, fps=fps, codec=codec, gop=gop, quality=23)


def time_backend(path: Path, backend: str, indices: list[int], reps: int) -> float:
    info = probe_video(path)
    decode_frames(info, indices, backend=backend)  # warm-up (builds DALI pipelines)
    times = []
    for _ in range(reps):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = decode_frames(probe_video(path), indices, backend=backend)
        if out.data.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="video decoding benchmark")
    ap.add_argument("--height", type=at_least(16), default=480)
    ap.add_argument("--width", type=at_least(16), default=640)
    ap.add_argument("--seconds", type=positive, default=10.0, help="clip length (default 10 s)")
    ap.add_argument("--fps", type=positive, default=30.0, help="clip frame rate (default 30)")
    ap.add_argument("--frames", type=at_least(1), default=32, help="frames decoded per clip (default 32)")
    ap.add_argument("--gops", type=at_least(1), nargs="+", default=[10, 250],
                    help="keyframe intervals (default 10 250)")
    ap.add_argument("--codecs", nargs="+", default=["h264", "vp9"], choices=["h264", "hevc", "vp9", "av1"])
    ap.add_argument("--reps", type=at_least(1), default=3, help="timed repetitions per cell (median)")
    ap.add_argument("--cache", default=None, help="folder for the generated clips (default: temporary)")
    a = ap.parse_args(argv)
    n = max(a.frames, int(a.seconds * a.fps))
    indices = np.linspace(0, n - 1, a.frames).round().astype(int).tolist()
    backends = available_backends()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"decode benchmark on {device}; backends: {', '.join(backends)}; {a.height}x{a.width}, "
          f"{n} frames at {a.fps:g} fps, {a.frames} frames decoded per clip")
    tmp = tempfile.TemporaryDirectory() if a.cache is None else None
    folder = Path(a.cache or tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for codec in a.codecs:
        for gop in a.gops:
            path = folder / f"bench_{codec}_gop{gop}_{a.height}x{a.width}_{n}.{'webm' if codec == 'vp9' else 'mp4'}"
            if not path.exists():
                make_clip(path, codec, gop, n, a.height, a.width, a.fps)
            info = probe_video(path)
            base = None
            for backend in backends:
                if backend != "pyav" and not supports(info, backend.split("-")[1]):
                    rows.append((codec, gop, backend, None, None, None, "codec not supported"))
                    continue
                sec = time_backend(path, backend, indices, a.reps)
                base = sec if backend == "pyav" else base
                rows.append((codec, gop, backend, sec, a.frames / sec, base / sec if base else None, ""))
    print("\n| codec | GOP | backend | s / clip | frames/s | x PyAV | note |")
    print("|---|---|---|---|---|---|---|")
    for codec, gop, backend, sec, fps, speed, note in rows:
        fmt = (lambda v, f: "-" if v is None else format(v, f))
        print(f"| {codec} | {gop} | {backend} | {fmt(sec, '.4f')} | {fmt(fps, '.0f')} | {fmt(speed, '.2f')} | {note} |")
    gpu = [r for r in rows if r[2] == "dali-gpu" and r[5] is not None]
    if gpu:
        worst = min(r[5] for r in gpu)
        print(f"\ntarget DALI GPU >= {TARGET_SPEEDUP:g}x PyAV per process: worst {worst:.2f}x -> "
              f"{'met' if worst >= TARGET_SPEEDUP else 'NOT met'}")
    else:
        print("\ntarget DALI GPU >= 3x PyAV: not measured (no GPU or no DALI here)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
