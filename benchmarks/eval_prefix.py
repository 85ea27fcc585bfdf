"""Seconds per question of the VSI-Bench harness with one prefill per video and with a prefill per question, in one run.

    python benchmarks/eval_prefix.py [--qa-per-video 8] [--scenes 4] [--batch-size 8] [--max-new-tokens 16]
    python benchmarks/eval_prefix.py --count [--model 2b] [--frames 32 128] [--videos 288] [--qa-per-video 18]
    python benchmarks/eval_prefix.py --count --protocol release      # 128 frames, two a patch, <= 384 tokens

Writes the tiny job's synthetic world (`--scenes` scenes of 6 s at 240x320) and a questions file
with exactly `--qa-per-video` questions per video (`grouped_training.questions_file`), builds the
tiny random Qwen3-VL (`geovr.model.tiny`, the default job's size), and answers every question
three times in this process: a warm-up, `--share-prefix off` (HF's generate on each whole prompt,
batched) and `--share-prefix on`. Prints the seconds per question of each (video decoding
included), their ratio, and whether the replies are the same.

With --count: no timing, the real setting counted instead (`geovr.plan.prefill`, fake tensors at a
published size): VSI-Bench's 288 videos with about 18 questions each, the prefill FLOPs of every
question's whole prompt against one prefix per video and each question's suffix over its cache.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from geovr.cli import at_least  # noqa: E402


def replies(output: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in next(output.glob("samples_*.jsonl")).read_text().splitlines()]
    return {str(r["doc"]["id"]): r["resps"][0][0] for r in rows}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--qa-per-video", type=at_least(1), default=None,
                   help="questions per video (default 8; --count: 18)")
    p.add_argument("--count", action="store_true", help="count the prefill FLOPs at a published size instead")
    p.add_argument("--model", default="2b", choices=("tiny", "2b", "4b", "8b"), help="--count: the model size")
    p.add_argument("--frames", type=at_least(1), nargs="+", default=None,
                   help="--count: frames per video (default 32 128; release: 128)")
    p.add_argument("--videos", type=at_least(1), default=288, help="--count: videos (default VSI-Bench's 288)")
    p.add_argument("--tokens-per-frame", type=at_least(4), default=None,
                   help="--count: merged tokens per frame at most (default: the protocol's, 300 or 384)")
    p.add_argument("--protocol", default="lmms-eval", choices=("lmms-eval", "release"),
                   help="--count: the frames as `geovr.eval.vsibench --protocol` feeds them (release: two a temporal "
                        "patch, --frames 128 by default)")
    p.add_argument("--scenes", type=at_least(1), default=4)
    p.add_argument("--batch-size", type=at_least(1), default=8)
    p.add_argument("--max-new-tokens", type=at_least(1), default=16)
    p.add_argument("--max-frames", type=at_least(1), default=32)
    p.add_argument("--out", default=None, help="where the world and the answers go (default: a temporary folder)")
    a = p.parse_args(argv)
    if a.qa_per_video is None:
        a.qa_per_video = 18 if a.count else 8
    release = a.protocol == "release"
    if a.frames is None:
        a.frames = [128] if release else [32, 128]
    if a.tokens_per_frame is None:
        a.tokens_per_frame = 384 if release else 300
    if a.count:
        if min(a.frames) < 2:
            p.error(f"--frames must be >= 2 (a temporal patch), got {a.frames}")
        from geovr.plan.prefill import count_prefill, prefill_table

        counts = {f: count_prefill(a.model, f, a.tokens_per_frame, pair_frames=release) for f in a.frames}
        note = f" ({a.protocol}: {'two a patch, ' if release else ''}<= {a.tokens_per_frame} tokens a frame)"
        print(prefill_table(counts, a.model, a.videos, a.qa_per_video, note))
        return
    import logging

    import torch

    logging.getLogger("geovr").setLevel(logging.WARNING)
    from grouped_training import questions_file

    from geovr.data.sampling import FrameSampling
    from geovr.data.synthetic import generate
    from geovr.data.tiny_tokenizer import build_tiny_tokenizer
    from geovr.eval.generation import GenerationSettings
    from geovr.eval.questions import read_questions
    from geovr.eval.vsibench import evaluate
    from geovr.model.tiny import tiny_qwen3vl
    from geovr.train.build import synthetic_world
    from geovr.train.config import tiny

    torch.manual_seed(0)
    tok = build_tiny_tokenizer()
    m = tiny().model
    model = tiny_qwen3vl(tok, layers=m.tiny_layers, hidden=m.tiny_hidden).eval()
    settings = GenerationSettings(max_new_tokens=a.max_new_tokens)
    sampling = FrameSampling(max_frames=a.max_frames)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.out or tmp)
        world = root / "world"
        if not (world / "train.jsonl").is_file():
            generate(world, scenes=a.scenes, seed=0, cfg=synthetic_world(tiny().data), progress=False)
        questions = read_questions(str(questions_file(world, a.qa_per_video)), "llava")
        seconds, answers, counts = {}, {}, {}
        for mode in ("warm-up", "off", "on"):
            out = root / f"answers_{mode}"
            t0 = time.perf_counter()
            result = evaluate(model, tok, questions, out, {"benchmark": mode}, settings, sampling, backend="pyav",
                              batch_size=a.batch_size, overwrite=True, progress=False,
                              share_prefix="on" if mode == "on" else "off")
            seconds[mode] = (time.perf_counter() - t0) / len(questions)
            answers[mode], counts[mode] = replies(out), result["prefix"]
    same = sum(answers["on"][k] == answers["off"][k] for k in answers["off"])
    n = len(questions)
    print(f"| tiny Qwen3-VL ({m.tiny_layers} layers, hidden {m.tiny_hidden}), {a.scenes} videos x {a.qa_per_video} "
          f"questions, <= {a.max_frames} frames, batch {a.batch_size}, <= {a.max_new_tokens} new tokens "
          "| s per question "
          "| ratio |")
    print("|---|---:|---:|")
    print(f"| prefill per question (`--share-prefix off`) | {seconds['off']:.3f} | 1.00x |")
    print(f"| one prefill per video (`--share-prefix on`, {counts['on']['prefills']} prefills) | {seconds['on']:.3f} | "
          f"{seconds['on'] / seconds['off']:.2f}x |")
    print(f"same replies: {same} of {n}; goal <= 0.25x the time per question: "
          f"{'met' if seconds['on'] <= 0.25 * seconds['off'] else 'not met'} ({seconds['on'] / seconds['off']:.3f}x)")


if __name__ == "__main__":
    main()
