"""`python -m geovr.plan`: will a run fit, and what will it cost?

    python -m geovr.plan --model 8b --gpus 8 --frames 32 --micro-batch 1 [--teacher cache]
        [--gpu-memory 80] [--mfu 0.35 --peak-tflops 989]
        [--checkpoint-keep attention|nothing] [--checkpoint-layers K] [--no-recompute-search]
        [--data FILE [--format F] [--media-root R] | --qa-per-video N --videos V | --mix geovr]
        [--group-by-video 4 8 16 32 --global-batch 32] [--lora-rank 64]

Counts one micro-batch's step on fake tensors (about a minute at 8B on 2 CPU cores, no GPU
needed) and prints the FLOPs per sample by part (causal attention as the kernels run it, and the
full-matrix count), the activations at the peak by part, the peak memory per GPU for every layout
the trainer runs (DDP, FSDP, megatron TP x PP with and without the distributed optimizer) beside the
release's ZeRO-2, whether each fits `--gpu-memory` GB, the simplest one that fits within
`--headroom`, with its command; how many decoder layers that layout can leave un-checkpointed
(fewer recompute FLOPs) and still fit (from a second count with none checkpointed: memory and
FLOPs are linear in the layers checkpointed). With an epoch (`--data`: its questions per video read
from the annotations, no decoding; `--qa-per-video N --videos V`; `--mix geovr`: the GeoVR mix as
modelled in `geovr.plan.epoch`) it then prints what the epoch costs (`geovr.plan.epoch`): FLOPs and
GPU-hours at `--mfu` for the release, geovr one question a sample and geovr grouped at each
`--group-by-video` K, teachers online and cached (the cache filled once per video, its FLOPs and disk
counted), sequences and steps per epoch, and the peak per GPU of the longest packed sequence.
With `--lora-rank R` the step is a LoRA run's (`model.lora_rank=R`): gradients and optimizer
state for the adapters, the vision mergers and the GeoVR parts only, on the DDP and FSDP layouts.
"""
from __future__ import annotations

import argparse

from ..model.config import CHECKPOINT_KEEP
from ..cli import at_least, check_inputs, positive, share
from .command import train_command
from .cost import MODELS, PARTS, RECIPES, TEACHER_MODES, StepCost, StepSpec, measure_step
from .epoch import EpochData, count_steps, epoch_rows, epoch_table, from_annotations, from_counts, geovr_mix
from .layouts import KINDS, Layout, layouts, per_gpu

GB = 1e9


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m geovr.plan", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="2b")
    p.add_argument("--gpus", type=at_least(1), default=8, help="data-parallel GPUs")
    p.add_argument("--frames", type=at_least(1), default=32)
    p.add_argument("--micro-batch", type=at_least(1), default=1)
    p.add_argument("--teacher", choices=TEACHER_MODES, default="online")
    p.add_argument("--recipe", choices=RECIPES, default="geovr")
    p.add_argument("--gpu-memory", type=positive, default=80.0, help="GB per GPU")
    p.add_argument("--headroom", type=share, default=0.9,
                   help="the share of --gpu-memory a recommended layout may use (allocator, CUDA context, NCCL)")
    p.add_argument("--data", default=None, help="annotation file(s), comma-separated: the epoch's questions per video")
    p.add_argument("--format", default="vsi590k", help="--data's format(s): vsi590k, vlm3r, llava (comma-separated)")
    p.add_argument("--media-root", default=None, help="folder --data's video paths are relative to")
    p.add_argument("--qa-per-video", type=at_least(1), default=None, help="an epoch of --videos videos with N questions each")
    p.add_argument("--videos", type=at_least(1), default=5963, help="videos of a --qa-per-video epoch (VSI-590K: 5,963)")
    p.add_argument("--mix", choices=["geovr"], default=None, help="the GeoVR mix (VSI-590K videos + VLM-3R), modelled")
    p.add_argument("--group-by-video", type=at_least(1), nargs="+", default=[4, 8, 16, 32], metavar="K",
                   help="questions per packed sequence to cost (data.group_by_video)")
    p.add_argument("--global-batch", type=at_least(1), default=32, help="questions per optimizer step (train.global_batch)")
    p.add_argument("--mfu", type=share, default=0.35, help="assumed model FLOPs utilisation")
    p.add_argument("--peak-tflops", type=positive, default=989.0, help="the GPU's dense bf16 peak (H100: 989)")
    p.add_argument("--checkpoint-keep", choices=CHECKPOINT_KEEP, default=None,
                   help="what a checkpointed decoder layer keeps (default: the recipe's)")
    p.add_argument("--checkpoint-layers", type=at_least(0), default=None, help="decoder layers checkpointed (default: all)")
    p.add_argument("--lora-rank", type=at_least(0), default=0,
                   help="count a LoRA run (model.lora_rank): adapters of this rank on the LLM, its weights frozen")
    p.add_argument("--no-recompute-search", action="store_true",
                   help="skip the search for fewer checkpointed layers (one count instead of two)")
    a = p.parse_args(argv)
    check_inputs(p, "--data", a.data)
    return a


def _spec(a: argparse.Namespace, **kw) -> StepSpec:
    return StepSpec(model=a.model, frames=a.frames, micro_batch=a.micro_batch, recipe=a.recipe, teacher=a.teacher,
                    checkpoint_keep=a.checkpoint_keep, lora_rank=a.lora_rank,
                    **{"checkpoint_layers": a.checkpoint_layers, **kw})


def _recompute(spec: StepSpec, layers: int) -> str:
    if not spec.gradient_checkpointing:
        return "none (no decoder layer checkpointed)"
    which = "every one" if spec.checkpoint_layers is None else f"the first {spec.checkpoint_layers}"
    return f"{which} of the {layers} decoder layers checkpointed, keeping {spec.checkpoint_keep}"


def fewest_checkpointed(full: StepCost, none: StepCost, layout: Layout, budget: float) -> tuple[int, float] | None:
    """The fewest decoder layers checkpointed (of L) for which `layout`'s peak fits `budget`
    bytes, and the FLOPs per sample then, from the counts with all (`full`) and none (`none`)
    checkpointed (both linear in the layers checkpointed); None when even all do not fit."""
    layers = full.llm_dims[2]
    hi, lo = per_gpu(full, layout).total, per_gpu(none, layout).total
    f_hi, f_lo = full.total_flops_per_sample(), none.total_flops_per_sample()
    if hi > budget:
        return None
    per_layer = (lo - hi) / layers
    k = 0 if lo <= budget else max(0, layers - int((budget - hi) // per_layer))
    return k, f_lo + (f_hi - f_lo) * k / layers


def report(a: argparse.Namespace) -> str:
    cost = measure_step(_spec(a))
    flops = cost.per_sample_flops()
    total = sum(flops.values())
    spec = cost.spec
    lora = f", LoRA rank {spec.lora_rank}" if spec.lora_rank else ""
    held = sum(cost.params[k] for k in ("llm", "vision", "geovr_parts"))
    lines = [f"{a.model}, {a.recipe} recipe{lora}, teacher {a.teacher}, {a.frames} frames, "
             f"micro-batch {a.micro_batch}: {cost.sequence} tokens per sample, {cost.supervised // a.micro_batch} supervised",
             f"Parameters (M): trained {cost.params['trainable'] / 1e6:,.1f} "
             f"(adapters {cost.params['adapters'] / 1e6:,.1f}), held {held / 1e6:,.1f}",
             "", "FLOPs per sample (forward + backward, TFLOP):"]
    lines += [f"  {k:<13}{flops[k] / 1e12:9.1f}  {100 * flops[k] / total:5.1f} %" for k in PARTS]
    lines += [f"  {'total':<13}{total / 1e12:9.1f}   (causal attention as the kernels run it; counted as full "
              f"matrices: {cost.total_flops_per_sample('full') / 1e12:.1f})",
              f"  recompute: {_recompute(spec, cost.llm_dims[2])}", "",
              "Activations at the peak, by part (GB, one GPU): "
              + ", ".join(f"{k} {v / GB:.1f}" for k, v in sorted(cost.activations.items(), key=lambda x: -x[1])),
              "", f"Peak memory per GPU (GB) on {a.gpus} GPUs:"]
    width = 34
    lines.append("  " + f"{'layout':<{width}}" + "".join(f"{k:>12}" for k in KINDS) + f"{'total':>9}  fits {a.gpu_memory:g} GB")
    fitting = []
    # megatron: LoRA runs on DDP/FSDP only; its recompute is every layer or none (no checkpoint_layers)
    megatron = not spec.lora_rank and spec.checkpoint_layers is None
    for layout in layouts(a.gpus, *cost.llm_dims, megatron=megatron):
        m = per_gpu(cost, layout)
        fits = m.total / GB <= a.gpu_memory
        if m.total / GB <= a.headroom * a.gpu_memory and layout.name != "zero2":
            fitting.append((m.total, layout))
        lines.append("  " + f"{layout.label:<{width}}" + "".join(f"{m.parts[k] / GB:12.1f}" for k in KINDS)
                     + f"{m.total / GB:9.1f}  {'yes' if fits else 'no'}")
    why = "; LoRA runs on DDP and FSDP only" if spec.lora_rank else (
        "; megatron recomputes every layer or none, not --checkpoint-layers" if not megatron else "")
    lines.append(f"  (zero2 is the release's DeepSpeed layout, for comparison; the trainer runs the others{why})")
    if fitting:
        # the simplest that fits: DDP, FSDP, then the fewest model-parallel ranks, the distributed optimizer last
        best = min(fitting, key=lambda x: (x[1].simplicity, x[0]))[1]
        lines += ["", f"Fits in {a.headroom:.0%} of {a.gpu_memory:g} GB with: {best.label}"]
        search = (not a.no_recompute_search and best.name in ("ddp", "fsdp") and spec.recipe == "geovr"
                  and spec.gradient_checkpointing and spec.checkpoint_layers is None)
        fewer = None
        if search:  # the HF path (DDP, FSDP) checkpoints per layer (megatron's recompute is all or nothing)
            none = measure_step(_spec(a, checkpoint_layers=0))
            found = fewest_checkpointed(cost, none, best, a.headroom * a.gpu_memory * GB)
            if found is not None and found[0] < cost.llm_dims[2]:
                fewer, f = found
                lines.append(f"  with fewer layers recomputed, model.checkpoint_layers={fewer} (of {cost.llm_dims[2]}) "
                             f"still fits: {f / 1e12:.1f} TFLOP/sample, {100 * (1 - f / total):.1f} % fewer")
        command = train_command(spec, best, a.global_batch, fewer, a.data, a.format, a.media_root)
        lines += ["", "Command (fill in the <...> placeholders):", "  " + command.text]
        lines += [f"  {note}" for note in command.notes]
    else:
        lines += ["", f"No layout the trainer runs fits {a.headroom:.0%} of {a.gpu_memory:g} GB per GPU: use more GPUs, "
                  "the target cache, or fewer frames"]
    epoch = epoch_data(a)
    if epoch is None:
        lines += ["", "What an epoch costs: add --data FILE (its questions per video), --qa-per-video N --videos V, "
                      "or --mix geovr"]
    else:
        lines += ["", epoch_report(a, epoch)]
    return "\n".join(lines)


def epoch_data(a: argparse.Namespace) -> EpochData | None:
    if sum(x is not None for x in (a.data, a.qa_per_video, a.mix)) > 1:
        raise SystemExit("python -m geovr.plan: give one of --data, --qa-per-video, --mix")
    if a.data is not None:
        return from_annotations(a.data, a.format, a.media_root)
    if a.qa_per_video is not None:
        return from_counts(a.qa_per_video, a.videos)
    return geovr_mix() if a.mix == "geovr" else None


def epoch_report(a: argparse.Namespace, epoch: EpochData) -> str:
    if a.global_batch % a.gpus:
        raise SystemExit(f"python -m geovr.plan: --global-batch {a.global_batch} must be a multiple of --gpus {a.gpus}")
    ks = sorted(set(a.group_by_video))
    counts = count_steps(a.model, a.frames, max(ks))
    rows = epoch_rows(epoch, counts, ks, a.global_batch, a.micro_batch, a.gpus)
    return epoch_table(epoch, rows, counts, a.mfu, a.peak_tflops, a.gpus, a.model)


def main(argv=None) -> None:
    print(report(_args(argv)))


if __name__ == "__main__":
    main()
