"""Seconds per question, the same questions trained grouped by video and one a sample, in one run.

    python benchmarks/grouped_training.py [--qa-per-video 8] [--scenes 8] [--steps 6] [--out DIR]

Writes the tiny job's synthetic world (8 scenes of 6 s at 240x320, as `python -m geovr.train`) and a
questions file with exactly `--qa-per-video` questions per video (each scene's questions repeated in
turn, new ids: the timing does not depend on the words), then trains the `tiny` preset on it twice
in this process: one question a sample (micro-batch 2, or 1 for an odd batch) and `data.group_by_video=K` (K questions a
sequence, micro-batch 1), each `--steps` steps of `--global-batch` questions (a multiple of K). It
prints a table: wall-clock seconds per question of the whole loop (decoding, teacher, step) and of the
steps alone, the first step left out of both (warm-up), and the ratio grouped / ungrouped.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geovr.cli import at_least  # noqa: E402


def questions_file(world: Path, per_video: int) -> Path:
    """world/train.jsonl with exactly `per_video` questions per video (cycling each scene's)."""
    by_video: dict[str, list[dict]] = {}
    for line in (world / "train.jsonl").read_text().splitlines():
        rec = json.loads(line)
        by_video.setdefault(rec["video"], []).append(rec)
    out = world / f"train_{per_video}_per_video.jsonl"
    with open(out, "w") as f:
        for recs in by_video.values():
            for i in range(per_video):
                f.write(json.dumps({**recs[i % len(recs)], "id": f"{recs[0]['video']}#{i}"}) + "\n")
    return out


def timed_run(data: Path, output: Path, steps: int, global_batch: int, group: int) -> dict:
    """Train the tiny preset; seconds per question of the loop and of the steps, after step 1."""
    from geovr.train.config import tiny
    from geovr.train.loop import Trainer

    cfg = tiny()
    cfg.data.path, cfg.data.synthetic, cfg.data.group_by_video = str(data), False, group
    ungrouped_micro = 2 if global_batch % 2 == 0 else 1  # the tiny preset's 2 where the batch allows
    cfg.train.steps, cfg.train.global_batch, cfg.train.micro_batch = steps, global_batch, 1 if group else ungrouped_micro
    cfg.train.output = str(output)
    cfg.checkpoint.every, cfg.checkpoint.export = 0, False
    cfg.metrics.progress, cfg.metrics.tensorboard = False, False
    trainer = Trainer(cfg)
    stamps: list[float] = []
    finish = trainer._finish_step

    def stamped(*args, **kwargs):
        record = finish(*args, **kwargs)
        stamps.append(time.perf_counter())
        return record

    trainer._finish_step = stamped
    trainer.train()
    records = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    later = records[1:]
    questions = sum(r["samples_per_s"] * r["step_s"] for r in later)
    trainer.close()
    return {"loop_s_per_q": (stamps[-1] - stamps[0]) / questions, "step_s_per_q": sum(r["step_s"] for r in later) / questions,
            "qa_per_sequence": sum(r["data/qa_per_sequence"] for r in later) / len(later), "questions": questions}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--qa-per-video", type=at_least(1), default=8)
    p.add_argument("--scenes", type=at_least(1), default=8)
    p.add_argument("--steps", type=at_least(1), default=6)
    p.add_argument("--global-batch", type=at_least(1), default=None, help="questions a step (default: --qa-per-video)")
    p.add_argument("--out", default=None, help="where the world and the runs go (default: a temporary folder)")
    a = p.parse_args(argv)
    import logging

    logging.getLogger("geovr").setLevel(logging.WARNING)
    from geovr.data.synthetic import generate
    from geovr.train.build import synthetic_world
    from geovr.train.config import tiny

    k = a.qa_per_video
    batch = a.global_batch or k
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.out or tmp)
        world = root / "world"
        if not (world / "train.jsonl").is_file():
            generate(world, scenes=a.scenes, seed=0, cfg=synthetic_world(tiny().data), progress=False)
        data = questions_file(world, k)
        runs = {"one question a sample": timed_run(data, root / "ungrouped", a.steps, batch, 0),
                f"grouped, K={k}": timed_run(data, root / "grouped", a.steps, batch, k)}
    ref = runs["one question a sample"]
    print(f"| tiny preset, {a.scenes} scenes x {k} questions, {batch} questions a step, steps 2..{a.steps} | "
          + " | ".join(runs) + " |")
    print("|---|" + "---:|" * len(runs))
    print("| questions per sequence | " + " | ".join(f"{r['qa_per_sequence']:.1f}" for r in runs.values()) + " |")
    for key, label in (("loop_s_per_q", "**s per question, whole loop**"), ("step_s_per_q", "s per question, steps only")):
        print(f"| {label} | " + " | ".join(f"{r[key]:.3f} ({r[key] / ref[key]:.2f}x)" for r in runs.values()) + " |")


if __name__ == "__main__":
    main()
