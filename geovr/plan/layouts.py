"""Per-GPU memory of a measured step under a parallel layout.

The step is measured whole on one device (`measure_step`: what is alive at every moment, by kind
and, for activations, by the part that made them); a layout says which share of each one GPU
holds, and its peak is the most that share sums to at any moment (a layout that shards the
gradients peaks earlier than DDP, at the end of the forward):

- "ddp" (the trainer's torch DDP): everything on every GPU.
- "zero2" (the release's DeepSpeed ZeRO-2): gradients and optimizer state split over the ranks.
- "fsdp" (the trainer's FSDP2): parameters, gradients and optimizer state split over the ranks,
  but the frozen vision tower (whole on every GPU); on top, the bf16 copies FSDP all-gathers: the
  root unit (embeddings, LM head, mergers, GeoVR parts) for the whole step and two decoder layers
  at a time. With `accumulate_whole` (the trainer's default when a step accumulates several
  micro-batches) the gradients stay whole, in fp32, until the step's last micro-batch; without it
  (`parallel.fsdp_sync_each_micro_batch=true`, or one micro-batch a step) each is reduce-scattered
  at once.
- "megatron" tp x pp (the trainer's megatron backend, dp = GPUs / (tp pp)): the LLM's weights,
  gradients and optimizer state split over tp x pp (the optimizer state also over dp with the
  distributed optimizer); the vision tower, the GeoVR heads and the teacher whole on the first
  stage; the LLM's activations split over tp with sequence parallelism (the first stage holds pp
  micro-batches in flight under 1F1B, each with 1/pp of the layers: no saving from pp), the LM
  head's over tp on the last stage. The GPU that needs most (first or last stage) is reported.
  Approximations: the LLM's bf16 weight copies count as its activations (split over tp only), and
  the backward pass's temporaries stay whole.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cost import StepCost

KINDS = ("parameters", "gradients", "optimizer", "activations", "teacher")
NAMES = ("ddp", "zero2", "fsdp", "megatron")


@dataclass(frozen=True)
class Layout:
    """name: ddp | zero2 | fsdp | megatron; gpus: all of them; tp, pp: megatron's sizes;
    distributed_optimizer / sequence_parallel: megatron's options; accumulate_whole: fsdp's
    gradients whole between the micro-batches of a step (see the module)."""

    name: str
    gpus: int
    tp: int = 1
    pp: int = 1
    distributed_optimizer: bool = False
    sequence_parallel: bool = False
    accumulate_whole: bool = False

    def __post_init__(self):
        if self.name not in NAMES:
            raise ValueError(f"layout {self.name!r}: choose from {list(NAMES)}")
        if self.gpus < 1 or self.gpus % (self.tp * self.pp):
            raise ValueError(f"{self.gpus} GPUs cannot hold tp={self.tp} x pp={self.pp}")
        if self.name != "megatron" and (self.tp, self.pp) != (1, 1):
            raise ValueError(f"layout {self.name}: tp and pp are megatron's")

    @property
    def dp(self) -> int:
        return self.gpus // (self.tp * self.pp)

    @property
    def simplicity(self) -> tuple:
        """Sorts the layouts the planner recommends: DDP, then FSDP (accumulating whole first: no
        reduce-scatter per micro-batch), then the fewest model-parallel ranks."""
        rank = {"ddp": 0, "fsdp": 1 if self.accumulate_whole else 2, "megatron": 3, "zero2": 4}[self.name]
        return rank, self.tp * self.pp, self.distributed_optimizer

    @property
    def label(self) -> str:
        if self.name == "fsdp":
            return f"fsdp x{self.gpus}" + (" +whole-grad accum" if self.accumulate_whole else "")
        if self.name != "megatron":
            return f"{self.name} x{self.gpus}"
        extra = "".join([" +dist-opt" if self.distributed_optimizer else "", " +SP" if self.sequence_parallel else ""])
        return f"megatron tp{self.tp} pp{self.pp} dp{self.dp}{extra}"

    def overrides(self) -> list[str]:
        """The trainer's config overrides for this layout (`python -m geovr.train ...`)."""
        if self.name == "zero2":
            return []
        if self.name == "ddp":
            return ["parallel.backend=ddp"]
        if self.name == "fsdp":
            return ["parallel.backend=fsdp"] + ([] if self.accumulate_whole else ["parallel.fsdp_sync_each_micro_batch=true"])
        return ["parallel.backend=megatron", f"parallel.tp={self.tp}", f"parallel.pp={self.pp}",
                f"parallel.distributed_optimizer={str(self.distributed_optimizer).lower()}",
                f"parallel.sequence_parallel={str(self.sequence_parallel).lower()}"]


@dataclass(frozen=True)
class LayoutMemory:
    """bytes per GPU (the GPU that needs most), by kind (KINDS), and their total."""

    layout: Layout
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def _ceil(x: float) -> int:
    return int(-(-x // 1))


def stage_weights(cost: StepCost, layout: Layout) -> list[dict[str, float]]:
    """The share of each measured category (`Timeline.categories`: the kinds, and "act:<part>"
    for activations) one GPU holds under `layout`, per pipeline stage that can need most (see the
    module docstring)."""
    kinds = {"parameters": 1.0, "gradients": 1.0, "optimizer": 1.0, "teacher": 1.0}
    act = {c: 1.0 for c in cost.timeline.categories if c.startswith("act:")}
    if layout.name == "ddp":
        return [kinds | act]
    if layout.name == "zero2":
        return [kinds | {"gradients": 1 / layout.gpus, "optimizer": 1 / layout.gpus} | act]
    p = cost.params
    if layout.name == "fsdp":
        n, everything = layout.gpus, max(1, p["llm"] + p["vision"] + p["geovr_parts"])
        frozen = (p["vision"] - p["vision_trainable"]) / everything
        layers = p.get("llm_layers", p["llm"])
        root = p["llm"] - layers + p["vision_trainable"] + p["geovr_parts"]
        gathered = 0.5 * min(1.0, (root + 2 * layers / max(1, cost.llm_dims[2])) / everything)  # bf16 of fp32
        return [kinds | act | {"parameters": frozen + (1 - frozen) / n + gathered,
                               "gradients": 1.0 if layout.accumulate_whole else 1 / n, "optimizer": 1 / n}]
    llm_all = p["llm"] / max(1, p["llm"] + p["vision"] + p["geovr_parts"])
    llm_trainable = p["llm"] / max(1, p["trainable"])
    shards = layout.tp * layout.pp
    opt_shards = shards * (layout.dp if layout.distributed_optimizer else 1)
    states = {"parameters": llm_all / shards + 1 - llm_all, "gradients": llm_trainable / shards + 1 - llm_trainable,
              "optimizer": llm_trainable / opt_shards + 1 - llm_trainable, "teacher": 1.0}
    llm = 1 / (layout.tp if layout.sequence_parallel else 1)
    if layout.pp == 1:
        return [states | act | {"act:llm": llm, "act:lm_head": 1 / layout.tp}]
    first = states | act | {"act:llm": llm, "act:lm_head": 0.0}
    last = states | {c: 0.0 for c in act} | {"act:llm": llm / layout.pp, "act:lm_head": 1 / layout.tp}
    return [first, last]


def per_gpu(cost: StepCost, layout: Layout) -> LayoutMemory:
    """The per-GPU peak of `cost` under `layout`: the most any stage's GPU holds at any moment of
    the step (from `cost.timeline`)."""
    if cost.timeline is None:
        raise ValueError("per_gpu: the cost has no timeline (measure it with geovr.plan.measure_step)")
    best: tuple[float, dict[str, float]] | None = None
    for weights in stage_weights(cost, layout):
        total, at = cost.timeline.peak(weights)
        if best is None or total > best[0]:
            best = (total, at)
    at = best[1]
    parts = {k: _ceil(at.get(k, 0.0)) for k in KINDS if k != "activations"}
    parts["activations"] = _ceil(sum(v for c, v in at.items() if c.startswith("act:")))
    return LayoutMemory(layout, {k: parts[k] for k in KINDS})


def layouts(gpus: int, heads: int, kv_heads: int, layers: int, megatron: bool = True) -> list[Layout]:
    """ddp, zero2, fsdp (both ways of accumulating) and every megatron layout the trainer accepts on `gpus` GPUs for an LLM of
    `heads` attention heads, `kv_heads` KV heads and `layers` layers (tp divides the heads, pp the
    layers), with and without the distributed optimizer (where dp > 1; tp = pp = 1 only with it);
    sequence parallelism whenever tp > 1. megatron=False: none of megatron's (a LoRA run)."""
    out = [Layout("ddp", gpus), Layout("zero2", gpus), Layout("fsdp", gpus, accumulate_whole=True), Layout("fsdp", gpus)]
    for tp in (1, 2, 4, 8) if megatron else ():
        for pp in (1, 2, 4, 8):
            if gpus % (tp * pp) or heads % tp or kv_heads % tp or layers % pp:
                continue
            dp = gpus // (tp * pp)
            for dist in (False, True):
                if (dist and dp == 1) or ((tp, pp) == (1, 1) and not dist):  # no-op / plain DDP
                    continue
                out.append(Layout("megatron", gpus, tp, pp, distributed_optimizer=dist, sequence_parallel=tp > 1))
    return out
