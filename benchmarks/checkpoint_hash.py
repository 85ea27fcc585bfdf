"""What verifying checkpoints costs: SHA-256 of a checkpoint's files (geovr.train.manifest), on a
tiny run's real checkpoint and on one file the size of a 2B run's checkpoint.

    python benchmarks/checkpoint_hash.py                 # tiny checkpoint + a 2B-size file (~23 GB of disk)
    python benchmarks/checkpoint_hash.py --size-gb 2     # a smaller stand-in file

The 2B size: Qwen3-VL-2B's parameters counted on the meta device, the trainable ones at 12 B each
(fp32 weight and AdamW's two moments), the frozen ViT blocks at their bf16 2 B (the GeoVR heads add
about 1 %, not counted). The file is written with random bytes first, so its pages may still be in
the page cache when hashed (as a checkpoint's are right after it is written, and unlike a resume
after a restart, which reads them from the file system: then the disk's read speed bounds it).
A run's ranks share the hashing, so a checkpoint costs this / ranks.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geovr.cli import positive  # noqa: E402


def checkpoint_bytes_2b() -> int:
    """Bytes of a DDP checkpoint of GeoVR at 2B (see the module docstring)."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from geovr.model.freeze import freeze_vision_tower
    from geovr.model.qwen_sizes import qwen3vl_config

    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration._from_config(qwen3vl_config("2B"))
    freeze_vision_tower(model.model.visual)
    return sum(p.numel() * (12 if p.requires_grad else 2) for p in model.parameters())


def hash_folder(folder: Path) -> tuple[int, float]:
    from geovr.train.manifest import file_digest

    files = [p for p in folder.rglob("*") if p.is_file()]
    t0 = time.perf_counter()
    for p in files:
        file_digest(p)
    return sum(p.stat().st_size for p in files), time.perf_counter() - t0


def tiny_checkpoint(tmp: Path) -> Path:
    """A real checkpoint of the tiny preset (one step on the synthetic world)."""
    import logging

    from geovr.train.config import tiny
    from geovr.train.loop import Trainer

    logging.getLogger("geovr").setLevel(logging.WARNING)
    cfg = tiny()
    cfg.data.path = str(tmp / "world" / "train.jsonl")
    cfg.data.synthetic, cfg.data.synthetic_scenes = True, 2
    cfg.train.steps, cfg.train.output = 1, str(tmp / "run")
    cfg.train.global_batch = cfg.train.micro_batch = 1
    cfg.metrics.progress = cfg.metrics.tensorboard = cfg.checkpoint.export = False
    trainer = Trainer(cfg)
    trainer.train()
    trainer.close()
    return trainer.checkpointer.latest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=positive, default=None,
                    help="the stand-in file's size (default: a 2B checkpoint's)")
    ap.add_argument("--dir", default=None, help="where to write it (default: a temporary folder)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        ckpt = tiny_checkpoint(tmp)
        size, seconds = hash_folder(ckpt)
        rows.append(("tiny preset checkpoint", size, seconds))
        size = int(args.size_gb * 1e9) if args.size_gb else checkpoint_bytes_2b()
        big = tmp / "stand_in.bin"
        block = os.urandom(1 << 26)
        with open(big, "wb") as f:
            for _ in range(size // len(block)):
                f.write(block)
            f.write(block[:size % len(block)])
        from geovr.train.manifest import file_digest

        t0 = time.perf_counter()
        file_digest(big)
        rows.append(("2B checkpoint size, one file" if not args.size_gb else f"{args.size_gb:g} GB file", size,
                     time.perf_counter() - t0))
    print(f"{'what':32s} {'GB':>8s} {'s (1 rank)':>11s} {'GB/s':>6s} {'s at 8 ranks*':>14s}")
    for what, size, seconds in rows:
        print(f"{what:32s} {size / 1e9:8.3f} {seconds:11.2f} {size / 1e9 / seconds:6.2f} {seconds / 8:14.2f}")
    print("* DCP spreads a checkpoint's tensors over the ranks' files and the ranks hash their share of them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
