"""`python -m geovr.plan`: will a run fit, and what will it cost?

    python -m geovr.plan --model 8b --gpus 8 --frames 32 --micro-batch 1 [--teacher cache]
        [--gpu-memory 80] [--samples 590000 --mfu 0.35 --peak-tflops 989]

Counts one micro-batch's step on fake tensors (a minute or so at 8B, no GPU needed) and prints the
FLOPs per sample by part, the peak memory per GPU for each data-parallel layout, whether it fits
`--gpu-memory` GB, and the GPU-hours for `--samples` at an assumed MFU.
"""
from __future__ import annotations

import argparse
import logging

from .cost import MODELS, PARTS, RECIPES, TEACHER_MODES, StepSpec, measure_step
from .layouts import LAYOUTS, per_gpu

GB = 1e9


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m geovr.plan", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="2b")
    p.add_argument("--gpus", type=int, default=8, help="data-parallel GPUs")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--teacher", choices=TEACHER_MODES, default="online")
    p.add_argument("--recipe", choices=RECIPES, default="geovr")
    p.add_argument("--gpu-memory", type=float, default=80.0, help="GB per GPU")
    p.add_argument("--samples", type=int, default=590_000, help="training samples (VSI-590K: one epoch)")
    p.add_argument("--mfu", type=float, default=0.35, help="assumed model FLOPs utilisation")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="the GPU's dense bf16 peak (H100: 989)")
    return p.parse_args(argv)


def report(a: argparse.Namespace) -> str:
    cost = measure_step(StepSpec(model=a.model, frames=a.frames, micro_batch=a.micro_batch, recipe=a.recipe,
                                 teacher=a.teacher))
    flops = cost.per_sample_flops()
    total = sum(flops.values())
    lines = [f"{a.model}, {a.recipe} recipe, teacher {a.teacher}, {a.frames} frames, micro-batch {a.micro_batch}: "
             f"{cost.sequence} tokens per sample, {cost.supervised // a.micro_batch} supervised",
             "", "FLOPs per sample (forward + backward, TFLOP):"]
    lines += [f"  {k:<13}{flops[k] / 1e12:9.1f}  {100 * flops[k] / total:5.1f} %" for k in PARTS]
    lines += [f"  {'total':<13}{total / 1e12:9.1f}", "", f"Peak memory per GPU (GB), {a.gpus} GPUs:"]
    kinds = list(cost.memory)
    lines.append("  " + f"{'layout':<8}" + "".join(f"{k:>13}" for k in kinds) + f"{'total':>10}  fits {a.gpu_memory:g} GB")
    for layout in LAYOUTS:
        m = per_gpu(cost, layout, a.gpus)
        fits = "yes" if m.total / GB <= a.gpu_memory else "no"
        lines.append("  " + f"{layout:<8}" + "".join(f"{m.parts[k] / GB:13.1f}" for k in kinds)
                     + f"{m.total / GB:10.1f}  {fits}")
    hours = a.samples * total / (a.mfu * a.peak_tflops * 1e12) / 3600
    lines += ["", f"GPU-hours for {a.samples} samples at MFU {a.mfu:g} of {a.peak_tflops:g} TFLOP/s: {hours:,.0f} "
              f"({hours / a.gpus:,.1f} h on {a.gpus} GPUs)",
              "(zero2 is the release's DeepSpeed layout; the trainer runs ddp, megatron TP/PP is not modelled yet)"]
    return "\n".join(lines)


def main(argv=None) -> None:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    print(report(_args(argv)))


if __name__ == "__main__":
    main()
