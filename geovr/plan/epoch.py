"""What an epoch costs: the release, geovr one question a sample, and geovr with the questions of a
video packed on its prefix (`data.group_by_video=K`), with the teachers online or cached.

An epoch is N questions over V videos (`EpochData`: the questions per video, read from the
annotations without decoding, or given). Its sequences come from the trainer's own sampler
(`VideoGroupSampler`'s plan over the GPUs: a video's questions may be split at step and rank
boundaries, so there are at least ceil(n_v / K) per video). A packed sequence's FLOPs are affine
in its questions K (the vision tower, the teachers and the heads run once; the LLM's tokens and
the allowed attention pairs grow by a fixed amount per question), so two counted steps, K = 1 and
K = K_max, give every K exactly: cost(K) = c_1 + (K - 1) (c_max - c_1) / (K_max - 1). The cache
is filled once per video (the teachers' FLOPs per video and its disk are counted with it).

A sequence holds one rank's questions of one step (the prefix's activations belong to that step's
weights), so a rank packs at most global_batch / GPUs questions: 4 at the release's 32 on 8 GPUs.
Each K is therefore costed at the global batch that lets a rank fill it (`grouped_batch`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..data.sampling import teacher_frame_size
from ..model.config import GeoVRConfig
from .batch import BatchShape
from .cost import StepCost, measure_step
from .layouts import Layout, per_gpu
from .spec import StepSpec

# The GeoVR mix (VSI-590K's video subset + VLM-3R's 205K), by source: (videos, questions per video).
# Published: 374,148 VSI-590K questions with a video over ~5,963 videos, and per-source means (ADT
# 329, ScanNet++ 162, ScanNet 77, ProcTHOR 32, S3DIS 26, ARKitScenes 20); VLM-3R's ~205K questions
# over ScanNet and ScanNet++ scenes, read from the same videos. The videos per source are not
# published: these counts are an assumption that reproduces both totals with those means (5,963
# videos, 374,125 questions); a file's own counts come from `--data`. VLM-3R's questions are spread
# over the ScanNet / ScanNet++ videos in proportion to their numbers. Whatever the split, the
# sequences at K lie between N / K and N / K + V.
VSI590K_MIX = {"arkitscenes": (3000, 20), "procthor": (1000, 32), "s3dis": (200, 26), "scannet": (1000, 77),
               "scannetppv2": (306, 162), "adt": (457, 329)}
VLM3R_QUESTIONS = 205_000
VLM3R_SOURCES = ("scannet", "scannetppv2")


@dataclass
class EpochData:
    """questions per video group (the sampler's groups); what they describe."""

    per_video: list[int]
    label: str

    @property
    def questions(self) -> int:
        return sum(self.per_video)

    @property
    def videos(self) -> int:
        return len(self.per_video)


def geovr_mix() -> EpochData:
    """The GeoVR mix of VSI590K_MIX plus VLM-3R's questions on the ScanNet / ScanNet++ videos."""
    per_video: list[int] = []
    shared = sum(VSI590K_MIX[s][0] for s in VLM3R_SOURCES)
    extra = VLM3R_QUESTIONS / shared
    for source, (videos, mean) in VSI590K_MIX.items():
        add = extra if source in VLM3R_SOURCES else 0.0
        per_video += [round(mean + add)] * videos
    return EpochData(per_video, "the GeoVR mix (VSI-590K videos + VLM-3R, modelled by source)")


def from_counts(qa_per_video: int, videos: int) -> EpochData:
    return EpochData([qa_per_video] * videos, f"{videos} videos x {qa_per_video} questions")


def from_annotations(path: str, fmt: str = "vsi590k", media_root: str | None = None) -> EpochData:
    """The questions per video group of annotation file(s) (comma-separated), read without decoding."""
    from ..data.datasets import read_dataset
    from ..data.video_groups import video_groups

    res = read_dataset(fmt, path, media_root)
    if not res.records:
        raise ValueError(f"{path}: no valid records ({len(res.errors)} invalid)")
    return EpochData([len(g) for g in video_groups(res.records)], path)


def sequences_per_epoch(data: EpochData, k: int, global_batch: int, micro_batch: int, gpus: int) -> tuple[int, int]:
    """(sequences, steps) of one epoch in the trainer's plan (`VideoGroupSampler`, every rank)."""
    from ..data.video_groups import VideoGroupSampler

    groups, start = [], 0
    for n in data.per_video:
        groups.append(list(range(start, start + n)))
        start += n
    sampler = VideoGroupSampler(groups, k, global_batch, micro_batch, seed=0, rank=0, world_size=gpus)
    plan = sampler.plan(0)
    return sum(len(mb) for step in plan for rank in step.ranks for mb in rank), len(plan)


@dataclass
class EpochRow:
    """One way of training the epoch: FLOPs (the cache fill included), the global batch (questions
    a step), sequences, steps, the cache fill's FLOPs and bytes."""

    label: str
    flops: float
    global_batch: int
    sequences: int
    steps: int
    fill_flops: float = 0.0
    fill_bytes: float = 0.0

    def gpu_hours(self, mfu: float, peak_tflops: float) -> float:
        return self.flops / (mfu * peak_tflops * 1e12) / 3600


def cache_entry_bytes(frames: int, size: tuple[int, int], layers: int, dim: int, patch: int = 14) -> int:
    """Disk of one cache entry (`geovr.teachers.cache`): depth fp32 + confidence fp16 per pixel,
    the features 2x2 pooled in fp16, the pose and scale."""
    h, w = size
    return frames * h * w * (4 + 2) + layers * frames * (h // patch // 2) * (w // patch // 2) * dim * 2 + frames * 9 * 4 + 4


@dataclass
class EpochCounts:
    """The counted steps an epoch table needs: the release's, and geovr's at K = 1 and K = k_max,
    each online and cached."""

    release: StepCost
    geovr: dict[tuple[str, int], StepCost]
    k_max: int

    def per_sequence(self, teacher: str, k: int) -> float:
        """FLOPs of one sequence of k questions (affine between the counted K = 1 and K = k_max)."""
        one = self.geovr[(teacher, 1)].total_flops_per_sample()
        if self.k_max == 1:
            return one
        top = self.geovr[(teacher, self.k_max)].total_flops_per_sample()
        return one + (k - 1) * (top - one) / (self.k_max - 1)


def count_steps(model: str, frames: int, k_max: int, progress=None, **spec) -> EpochCounts:
    """The five counted steps (`measure_step` on fake tensors) of `epoch_rows`; spec: other
    `StepSpec` fields (tokens per frame, teacher frame size...)."""
    def measure(**kw) -> StepCost:
        cost = measure_step(StepSpec(model=model, frames=frames, **spec, **kw))
        if progress is not None:
            progress(kw)
        return cost

    release = measure(recipe="release", teacher="online")
    geovr = {(t, k): measure(teacher=t, qa_per_sequence=k) for t in ("online", "cache") for k in sorted({1, k_max})}
    return EpochCounts(release, geovr, k_max)


def grouped_batch(k: int, global_batch: int, gpus: int) -> int:
    """The global batch at which every rank's share of a step (global_batch / gpus questions) can
    fill a sequence of k: `global_batch`, or k x gpus when that is larger (a sequence never spans
    steps or ranks: the prefix's activations belong to one step's weights)."""
    return max(global_batch, k * gpus)


def epoch_rows(data: EpochData, counts: EpochCounts, ks: list[int], global_batch: int, micro_batch: int,
               gpus: int) -> list[EpochRow]:
    """Every row of the epoch table (see the module): grouped runs at each K at `grouped_batch`."""
    n, v = data.questions, data.videos
    teacher_per_video = counts.geovr[("online", 1)].per_sample_flops()["teacher"]
    spec = counts.release.spec
    paper = GeoVRConfig.paper()
    size = teacher_frame_size(*BatchShape().source, spec.teacher_longest)  # the counted batch's frames
    entry = cache_entry_bytes(spec.frames, size, len(paper.teacher_layers), paper.teacher_dim, paper.teacher_patch)
    fill = (v * teacher_per_video, v * entry)
    steps = math.ceil(n / global_batch)
    rows = [EpochRow("release (1 question a sample, teachers online)",
                     n * counts.release.total_flops_per_sample(), global_batch, n, steps)]
    grouped = {}
    for k in ks:
        batch = grouped_batch(k, global_batch, gpus)
        grouped[k] = (batch, sequences_per_epoch(data, k, batch, micro_batch, gpus)[0], math.ceil(n / batch))
    for teacher in ("online", "cache"):
        extra = fill if teacher == "cache" else (0.0, 0.0)
        rows.append(EpochRow(f"geovr, 1 question a sample, teachers {teacher}",
                             n * counts.per_sequence(teacher, 1) + extra[0], global_batch, n, steps, *extra))
        slope = counts.per_sequence(teacher, 2) - counts.per_sequence(teacher, 1)
        for k in ks:
            batch, seqs, k_steps = grouped[k]
            # the sum over sequences of cost(K_s) = S c_1 + (N - S) slope: affine in K
            flops = seqs * counts.per_sequence(teacher, 1) + (n - seqs) * slope + extra[0]
            rows.append(EpochRow(f"geovr, grouped K={k}, teachers {teacher}", flops, batch, seqs, k_steps, *extra))
    return rows


def epoch_table(data: EpochData, rows: list[EpochRow], counts: EpochCounts, mfu: float, peak_tflops: float,
                gpus: int, model: str) -> str:
    """The markdown table of `rows`, and the per-GPU peak of the longest packed sequence."""
    release = rows[0]
    lines = [f"Epoch of {data.label}: {data.questions:,} questions over {data.videos:,} videos "
             f"({data.questions / data.videos:.1f} a video), {model}, {counts.release.spec.frames} frames, "
             f"{gpus} GPUs, MFU {mfu:g} of {peak_tflops:g} TFLOP/s", "",
             "| run | global batch | PFLOP / epoch | x release | GPU-hours | sequences (questions each) | steps "
             "| cache fill (PFLOP, TB) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        fill = f"{r.fill_flops / 1e15:,.0f}, {r.fill_bytes / 1e12:.2f}" if r.fill_bytes else ""
        lines.append(f"| {r.label} | {r.global_batch} | {r.flops / 1e15:,.0f} | {r.flops / release.flops:.3f} | "
                     f"{r.gpu_hours(mfu, peak_tflops):,.0f} | {r.sequences:,} ({data.questions / r.sequences:.1f}) "
                     f"| {r.steps:,} | {fill} |")
    lines += ["", f"A sequence holds one rank's questions of one step: at a global batch of B questions on {gpus} "
                  f"GPUs at most B / {gpus} ({release.global_batch // gpus} at {release.global_batch}), so K > "
                  f"{release.global_batch // gpus} needs a global batch of K x {gpus} (fewer optimizer steps; "
                  "scale the learning rate as for any batch change)."]
    ref = per_gpu(counts.release, Layout("zero2", gpus)).total
    lines += ["", f"Peak per GPU (GB), {gpus} GPUs: the release's one-question sample under ZeRO-2 {ref / 1e9:.1f}"]
    for (teacher, k), cost in sorted(counts.geovr.items(), key=lambda x: (x[0][1], x[0][0])):
        peaks = {name: per_gpu(cost, Layout(name, gpus)).total for name in ("ddp", "fsdp", "zero2")}
        lines.append(f"  geovr K={k}, teachers {teacher}: {cost.sequence:,} tokens, "
                     + ", ".join(f"{name.upper() if name != 'zero2' else 'ZeRO-2'} {b / 1e9:.1f} ({b / ref:.2f}x)"
                                 for name, b in peaks.items()))
    lines.append("  (a packed sequence's peak is counted with the SDPA path's dense [L, L] mask; flex_attention "
                 "needs none)")
    return "\n".join(lines)
