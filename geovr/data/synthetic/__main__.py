"""python -m geovr.data.synthetic --out DIR --scenes N: write a synthetic spatial-QA dataset."""
from __future__ import annotations

import argparse
import sys

from .world import WorldConfig
from .writer import SCENES_JSONL, generate


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size wants HxW such as 240x320, got {text!r}")
    if h < 16 or w < 16 or h % 2 or w % 2:
        raise argparse.ArgumentTypeError(f"--size needs even sides >= 16, got {text!r}")
    return h, w


def _check_writable(p: argparse.ArgumentParser, out: str) -> None:
    """--out can be created (or exists as a folder) and written: a usage error before any work."""
    import os
    from pathlib import Path

    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        p.error(f"--out {out} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        p.error(f"--out {out}: cannot create the folder ({err.strerror})")
    if not os.access(folder, os.W_OK):
        p.error(f"--out {out}: the folder is not writable")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m geovr.data.synthetic", description=__doc__)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--scenes", type=int, default=8, help="number of scenes (default 8)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--size", type=_size, default=(240, 320), help="render HxW (default 240x320)")
    p.add_argument("--fps", type=float, default=4.0, help="video frame rate (default 4)")
    p.add_argument("--seconds", type=float, default=8.0, help="video length (default 8 s)")
    p.add_argument("--codec", default="h264", choices=["h264", "hevc", "vp9", "av1"], help="video codec")
    p.add_argument("--no-geometry", action="store_true", help="skip the depth/pose npz files")
    p.add_argument("--colour-by-category", action="store_true",
                   help="each category has its own colour (questions a tiny model can ground)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.scenes < 1:
        p.error("--scenes must be >= 1")
    if a.fps <= 0 or a.seconds <= 0:
        p.error(f"--fps and --seconds must be > 0, got {a.fps:g} and {a.seconds:g}")
    _check_writable(p, a.out)
    cfg = WorldConfig(height=a.size[0], width=a.size[1], fps=a.fps, seconds=a.seconds,
                      colour_by_category=a.colour_by_category)
    jsonl = generate(a.out, a.scenes, a.seed, cfg, a.codec, not a.no_geometry, progress=not a.quiet)
    n = sum(1 for _ in open(jsonl))
    print(f"wrote {a.scenes} scenes, {n} questions: {jsonl} (one per record) and "
          f"{jsonl.parent / SCENES_JSONL} (one conversation per scene)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
