"""The whole training step at real sizes, the release recipe beside geovr's, counted on a CPU.

    python benchmarks/train_step.py [--models 2b 4b 8b] [--frames 32] [--gpus 8]
    python benchmarks/train_step.py --time [--device cuda] [--models 2b] [--layers N] [--steps 5]
    python benchmarks/train_step.py --epoch [--models 2b 4b 8b] [--mfu 0.35]

For each model size: FLOPs per sample by part (forward + backward, counted by FlopCounterMode while
the real step runs on fake tensors, `geovr.plan`; causal attention as the kernels run it, and the
total with full matrices) and the peak memory per GPU under the same layouts (the trainer's DDP,
the release's ZeRO-2 over --gpus, each at its own peak moment), for the release recipe (every
hidden state kept, full-vocabulary logits, the per-sample eager losses, whole-layer recompute,
VGGT-1B and DA3 metric online) and geovr's with the teachers online and from the target cache;
then the ratios to the release. With --time (on a GPU, benchmarks/gpu/README.md): real steps of
the three runs instead, samples/s and the ratios (`geovr.plan.timing`; --layers N for a model that
does not fit one GPU whole). With --epoch: what an epoch of the GeoVR mix costs (`geovr.plan.epoch`:
VSI-590K's video subset by source plus VLM-3R's 205K on the same videos) for the release, geovr one
question a sample and geovr grouped by video (K = 4, 8, 16, 32), teachers online and cached, and
the goals of shared-prefix training checked against it.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geovr.cli import at_least, share  # noqa: E402
from geovr.plan import PARTS, Layout, StepSpec, measure_step, per_gpu  # noqa: E402

GB = 1e9
RUNS = (("release", "release", "online"), ("geovr online", "geovr", "online"), ("geovr cache", "geovr", "cache"))


def table(model: str, frames: int, micro_batch: int, gpus: int) -> str:
    costs = {}
    for label, recipe, teacher in RUNS:
        t0 = time.perf_counter()
        costs[label] = measure_step(StepSpec(model=model, frames=frames, micro_batch=micro_batch, recipe=recipe,
                                             teacher=teacher))
        print(f"  counted {model} {label} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    ref = costs["release"]
    head = f"| {model}, {frames} frames, micro-batch {micro_batch} | " + " | ".join(costs) + " |"
    lines = [head, "|" + "---|" * (len(costs) + 1)]
    for part in PARTS:
        lines.append(f"| {part} TFLOP/sample | " + " | ".join(f"{c.per_sample_flops()[part] / 1e12:.1f}"
                                                            for c in costs.values()) + " |")
    for name, label in (("vggt", "VGGT-1B"), ("metric", "DA3 metric")):
        lines.append(f"| &nbsp; teacher: {label} TFLOP/sample | " + " | ".join(
            f"{c.teacher_flops.get(name, 0.0) / c.spec.micro_batch / 1e12:.1f}" for c in costs.values()) + " |")
    for attention, label in (("causal", "**total TFLOP/sample**"), ("full", "total, attention as full matrices")):
        r = ref.total_flops_per_sample(attention)
        lines.append(f"| {label} | " + " | ".join(
            f"**{c.total_flops_per_sample(attention) / 1e12:.1f}** ({c.total_flops_per_sample(attention) / r:.2f}x)"
            for c in costs.values()) + " |")
    for kind in ref.memory:
        lines.append(f"| {kind} GB (1 GPU) | " + " | ".join(f"{c.memory[kind] / GB:.1f}" for c in costs.values()) + " |")
    labels = sorted({k for c in costs.values() for k in c.activations}, key=lambda k: (k not in PARTS, k))
    for label in labels:
        lines.append(f"| &nbsp; activations: {label} GB | " + " | ".join(
            f"{c.activations.get(label, 0) / GB:.1f}" for c in costs.values()) + " |")
    lines.append("| LM-head outputs GB | " + " | ".join(f"{c.logits_bytes / GB:.2f}" for c in costs.values()) + " |")
    lines.append("| teacher's own peak GB | " + " | ".join(f"{c.teacher_peak / GB:.1f}" for c in costs.values()) + " |")
    for layout in ("ddp", "zero2"):
        totals = {k: per_gpu(c, Layout(layout, gpus)).total for k, c in costs.items()}
        lines.append(f"| **peak GB/GPU, {layout} x{gpus}** | " + " | ".join(
            f"**{v / GB:.1f}** ({v / totals['release']:.2f}x)" for v in totals.values()) + " |")
    return "\n".join(lines)


def time_table(model: str, frames: int, device: str, layers: int | None, steps: int, **shape) -> str:
    """samples/s of real steps of the three runs on `device`, and the ratios to the release.
    shape: StepSpec's tokens_per_frame / teacher_longest."""
    from geovr.plan.timing import time_step

    times = {}
    for label, recipe, teacher in RUNS:
        spec = StepSpec(model=model, frames=frames, recipe=recipe, teacher=teacher, layers=layers, **shape)
        times[label] = time_step(spec, device=device, steps=steps)
        print(f"  timed {model} {label}: {times[label].median_s:.3f} s a step", file=sys.stderr)
    ref = times["release"].samples_per_s
    head = (f"| {model}{f' ({layers} LLM layers)' if layers else ''}, {frames} frames, micro-batch 1, {device} | "
            + " | ".join(times) + " |")
    lines = [head, "|" + "---|" * (len(times) + 1),
             "| **samples/s** | " + " | ".join(f"**{t.samples_per_s:.3f}** ({t.samples_per_s / ref:.2f}x)"
                                             for t in times.values()) + " |",
             "| median s/step | " + " | ".join(f"{t.median_s:.3f}" for t in times.values()) + " |",
             "| peak GB allocated | " + " | ".join(f"{t.peak_bytes / GB:.1f}" for t in times.values()) + " |"]
    return "\n".join(lines)


def cache_table(frames: int, size: tuple[int, int] = (392, 504), layers: int = 4, dim: int = 1024,
                teacher_tflop: float = 168.9, reps: int = 5) -> str:
    """One sample's cached targets at the release shape, pooled and full: bytes on disk and the
    read time here (warm page cache), beside the time VGGT's counted FLOPs take at 40 % MFU of an
    H100's 989 dense bf16 TFLOP/s."""
    import tempfile

    import torch

    from geovr.teachers.base import TeacherTargets
    from geovr.teachers.cache import TeacherCache

    h, w = size
    g = torch.Generator().manual_seed(0)
    targets = TeacherTargets(pose_enc=torch.randn(frames, 9, generator=g), depth=torch.rand(frames, h, w, generator=g),
                             depth_conf=1 + torch.rand(frames, h, w, generator=g),
                             features={l: torch.randn(frames, h // 14, w // 14, dim, generator=g) for l in range(layers)},
                             scale=torch.tensor(1.5))
    teacher_s = teacher_tflop / (0.4 * 989)
    lines = [f"| target cache, {frames} frames at {h}x{w}, {layers} x {dim} features | on disk MB | read ms (warm) |"
             " VGGT on an H100 at 40 % MFU, ms |", "|---|---|---|---|"]
    for kind in ("full", "pooled"):
        with tempfile.TemporaryDirectory() as tmp:
            cache = TeacherCache(tmp, "bench", features=kind)
            cache.add("k", targets)
            cache.flush()
            size_mb = sum(f.stat().st_size for f in Path(tmp).glob("*.safetensors")) / 1e6
            cache.get("k")  # first read verifies the checksum
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                cache.get("k")
                times.append(time.perf_counter() - t0)
        lines.append(f"| {kind} | {size_mb:.0f} | {1e3 * sorted(times)[len(times) // 2]:.0f} | {1e3 * teacher_s:.0f} |")
    return "\n".join(lines)


def epoch_tables(model: str, frames: int, gpus: int, mfu: float, ks=(4, 8, 16, 32), global_batch: int = 32) -> str:
    """The epoch table of the GeoVR mix at `model`, and the goals (K <= 32 against the release)."""
    from geovr.plan.epoch import count_steps, epoch_rows, epoch_table, geovr_mix

    t0 = time.perf_counter()
    counts = count_steps(model, frames, max(ks))
    print(f"  counted {model}'s five steps in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    data = geovr_mix()
    rows = epoch_rows(data, counts, list(ks), global_batch, 1, gpus)
    release = rows[0].flops
    best = {t: min(r.flops for r in rows if "grouped" in r.label and f"teachers {t}" in r.label) for t in ("online", "cache")}
    zero2 = per_gpu(counts.release, Layout("zero2", gpus)).total
    top = max(per_gpu(counts.geovr[(t, max(ks))], Layout("zero2", gpus)).total for t in ("online", "cache"))
    goals = [f"Goals at {model}: grouped, teachers online {best['online'] / release:.3f}x the release's epoch "
             f"(<= 0.05: {'met' if best['online'] <= 0.05 * release else 'NOT met'}); cached, its fill included "
             f"{best['cache'] / release:.3f}x (<= 0.03: {'met' if best['cache'] <= 0.03 * release else 'NOT met'}); "
             f"the K={max(ks)} sequence's peak under ZeRO-2 {top / zero2:.2f}x the release's one-question peak "
             f"(<= 0.6: {'met' if top <= 0.6 * zero2 else 'NOT met'})"]
    return epoch_table(data, rows, counts, mfu, 989.0, gpus, model) + "\n\n" + "\n".join(goals)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["2b", "4b", "8b"])
    p.add_argument("--frames", type=at_least(1), default=32)
    p.add_argument("--micro-batch", type=at_least(1), default=1)
    p.add_argument("--gpus", type=at_least(1), default=8)
    p.add_argument("--time", action="store_true", help="time real steps on --device instead of counting")
    p.add_argument("--epoch", action="store_true",
                   help="the epoch of the GeoVR mix, grouped and not (geovr.plan.epoch)")
    p.add_argument("--mfu", type=share, default=0.35, help="assumed MFU for --epoch's GPU-hours")
    p.add_argument("--device", default="cuda")
    p.add_argument("--layers", type=at_least(1), default=None, help="LLM layers for --time (default: all)")
    p.add_argument("--steps", type=at_least(1), default=5,
                   help="timed steps per run for --time (after 2 warm-up steps)")
    p.add_argument("--tokens-per-frame", type=at_least(4), default=300, help="merged tokens per frame (--time)")
    p.add_argument("--teacher-longest", type=at_least(28), default=504, help="teacher frames' longest edge (--time)")
    a = p.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if a.epoch:
        for model in a.models:
            print(epoch_tables(model, a.frames, a.gpus, a.mfu), flush=True)
            print(flush=True)
        return
    if a.time:
        for model in a.models:
            print(time_table(model, a.frames, a.device, a.layers, a.steps, tokens_per_frame=a.tokens_per_frame,
                             teacher_longest=a.teacher_longest), flush=True)
            print(flush=True)
        return
    print(cache_table(a.frames), flush=True)
    print(flush=True)
    for model in a.models:
        print(table(model, a.frames, a.micro_batch, a.gpus), flush=True)
        print(flush=True)


if __name__ == "__main__":
    main()
