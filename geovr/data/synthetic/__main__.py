"""python -m geovr.data.synthetic --out DIR --scenes N: write a synthetic spatial-QA dataset."""
from __future__ import annotations

import argparse
import sys

from ...cli import at_least, check_output, positive
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m geovr.data.synthetic", description=__doc__)
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--scenes", type=at_least(1), default=8, help="number of scenes (default 8)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--size", type=_size, default=(240, 320), help="render HxW (default 240x320)")
    p.add_argument("--fps", type=positive, default=4.0, help="video frame rate (default 4)")
    p.add_argument("--seconds", type=positive, default=8.0, help="video length (default 8 s)")
    p.add_argument("--codec", default="h264", choices=["h264", "hevc", "vp9", "av1"], help="video codec")
    p.add_argument("--no-geometry", action="store_true", help="skip the depth/pose npz files")
    p.add_argument("--colour-by-category", action="store_true",
                   help="each category has its own colour (questions a tiny model can ground)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    check_output(p, "--out", a.out)
    cfg = WorldConfig(height=a.size[0], width=a.size[1], fps=a.fps, seconds=a.seconds,
                      colour_by_category=a.colour_by_category)
    jsonl = generate(a.out, a.scenes, a.seed, cfg, a.codec, not a.no_geometry, progress=not a.quiet)
    n = sum(1 for _ in open(jsonl))
    print(f"wrote {a.scenes} scenes, {n} questions: {jsonl} (one per record) and "
          f"{jsonl.parent / SCENES_JSONL} (one conversation per scene)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
