"""The cost of one training step, counted by running the real step on fake tensors (`ShapeMode`).

`measure_step(spec)` builds the step inside `ShapeMode` (`geovr.plan.step`: the student, Qwen3-VL
at a published size with the GeoVR wiring; the teachers when online, VGGT-1B and DA3METRIC-LARGE at
their sizes; AdamW; a synthetic micro-batch through the real data path) and runs teacher ->
student forward -> loss -> backward -> optimizer step. `torch.utils.flop_counter.FlopCounterMode`
counts the FLOPs of every op, attributed to the modules that ran them (forward and backward
apart); `LiveBytes` follows every tensor's storage and reports the peak split by kind
(parameters, gradients, optimizer state, activations) and the timeline the layouts read.

Two recipes, one code path:
- "geovr": layer taps only, the LM head on the supervised positions, geovr.losses, recompute
  keeping the attention outputs, the frozen networks' matmul weights in bf16, the teachers online
  or from the target cache;
- "release": every hidden state kept, logits at every position, the per-sample eager losses
  (`geovr.losses.release_loop`), whole-layer recompute, the teachers online every step.
A causal attention call (the LLM's) counts the share of its score matrix a causal kernel computes,
about half; `StepCost.per_sample_flops(attention="full")` gives the full-matrix count as well.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..model.attention import allowed_pairs
from .build import param_counts
from .memory import LiveBytes, Timeline
from .parts import PARTS, AttentionFormulas, PartStack, flops_by_part, module_flops, under
from .recipes import reference_losses
from .spec import MODELS, RECIPES, TEACHER_MODES, StepSpec
from .step import build_step, optimizer_tensors

MEMORY = ("parameters", "gradients", "optimizer", "activations", "teacher")
ATTENTION_COUNTS = ("causal", "full")
__all__ = ["MEMORY", "MODELS", "PARTS", "RECIPES", "TEACHER_MODES", "StepCost", "StepSpec", "measure_step"]


@dataclass
class StepCost:
    """One micro-batch's step. flops_forward / flops_backward: {part: FLOPs} (PARTS); memory: the
    peak's split {kind: bytes} (MEMORY), peak: its total; activations: the peak's activations by
    the part that made them (PARTS, plus "inputs" and "backward" for what no module's forward made); logits_bytes: what the LM head's outputs
    held; teacher_peak: the most bytes the teacher phase added (running it, or reading the cache);
    params: {group: count}; sequence: tokens per sample (after the inserted GeoVR tokens);
    supervised: LM-head rows; timeline: what was alive when, by kind (`Timeline`); fallbacks: ShapeMode's stand-ins taken; largest: the largest storages
    at the peak (bytes, op, shape, dtype); llm_dims: the LLM's (heads, KV heads, layers)."""

    spec: StepSpec
    flops_forward: dict[str, float]
    flops_backward: dict[str, float]
    memory: dict[str, int]
    activations: dict[str, int]
    peak: int
    logits_bytes: int
    teacher_peak: int
    params: dict[str, int]
    sequence: int
    supervised: int
    fallbacks: dict[str, int] = field(default_factory=dict)
    largest: list = field(default_factory=list)
    llm_dims: tuple[int, int, int] = (1, 1, 1)  # attention heads, KV heads, layers
    causal_skipped: tuple[float, float] = (0.0, 0.0)  # (forward, backward) FLOPs a full-matrix count adds
    timeline: Timeline | None = None  # bytes alive by kind after each allocation (the layouts' peaks)
    teacher_flops: dict[str, float] = field(default_factory=dict)  # {"vggt", "metric"}: per micro-batch

    def per_sample_flops(self, attention: str = "causal") -> dict[str, float]:
        """{part: forward + backward FLOPs} per sample. attention: "causal" counts a causal
        attention call as the kernels run it (the kept share of its score matrix); "full" counts
        the whole matrix, as `torch.utils.flop_counter` does (the LLM's attention is the only
        causal one, so only "llm" differs)."""
        if attention not in ATTENTION_COUNTS:
            raise ValueError(f"attention={attention!r}: choose from {list(ATTENTION_COUNTS)}")
        b = self.spec.micro_batch
        out = {k: (self.flops_forward.get(k, 0.0) + self.flops_backward.get(k, 0.0)) / b for k in PARTS}
        if attention == "full":
            out["llm"] += sum(self.causal_skipped) / b
        return out

    def total_flops_per_sample(self, attention: str = "causal") -> float:
        return sum(self.per_sample_flops(attention).values())


def measure_step(spec: StepSpec, fake: bool = True) -> StepCost:
    """Count one micro-batch's training step of `spec` (see the module docstring). fake=False runs
    it for real (weights, compute and memory on the CPU): the check of the fake run at small sizes."""
    built = build_step(spec, fake=fake)
    mode, student, network, optimizer, step = built.mode, built.student, built.network, built.optimizer, built.step
    logits_bytes = [0]
    hook = student.base.lm_head.register_forward_hook(
        lambda m, a, o: logits_bytes.__setitem__(0, logits_bytes[0] + o.numel() * o.element_size()))
    # Memory and FLOPs in two passes: the FLOP counter's module hooks keep the graphs of
    # checkpointed layers' recomputes alive, which would inflate the peak.
    parts = PartStack(step)
    live = LiveBytes(label=parts.current)
    with mode, reference_losses(), parts, _quiet("geovr.teachers.metric_depth"):
        live.track(*step.parameters(), *step.buffers(), *optimizer_tensors(optimizer),
                   *[v for v in built.batch.values() if torch.is_tensor(v)], *built.batch["teacher_frames"])
        with live:
            built.run(live, None, parts)
        hook.remove()
        groups = {"parameters": list(student.parameters()) + list(student.buffers()),
                  "gradients": [p.grad for p in built.trainable if p.grad is not None],
                  "optimizer": optimizer_tensors(optimizer),
                  "teacher": list(network.parameters()) if network is not None else []}
        split = live.classify(groups)
        activations = live.rest_by_label(groups)
        timeline = live.timeline(groups)
        optimizer.zero_grad(set_to_none=True)
        packed = None
        if built.plan.segments is not None:  # the segment rule's share of the packed score matrix
            segments = built.plan.segments
            packed = (segments.shape[1], allowed_pairs(segments) / (segments.numel() * segments.shape[1]))
        both_attention, fwd_attention = AttentionFormulas(packed), AttentionFormulas(packed)
        both = FlopCounterMode(display=False, custom_mapping=both_attention.mapping())
        fwd = FlopCounterMode(display=False, custom_mapping=fwd_attention.mapping())
        with both:
            built.run(None, fwd)
    text = student.base.config.text_config
    forward = flops_by_part(fwd)
    backward = {k: v - forward[k] for k, v in flops_by_part(both).items()}
    memory = {"parameters": split["parameters"], "gradients": split["gradients"], "optimizer": split["optimizer"],
              "activations": split["activations"], "teacher": split["teacher"]}
    return StepCost(spec=spec, flops_forward=forward, flops_backward=backward, memory=memory,
                    activations=activations, peak=live.peak,
                    logits_bytes=logits_bytes[0],
                    teacher_peak=live.phase_peak["teacher"] - live.phase_start["teacher"],
                    params=param_counts(student, network), sequence=int(built.plan.input_ids.shape[1]),
                    supervised=built.supervised, fallbacks=dict(mode.fallbacks), largest=live.largest_at_peak(12),
                    causal_skipped=(fwd_attention.skipped, both_attention.skipped - fwd_attention.skipped),
                    timeline=timeline, teacher_flops=_teacher_split(both),
                    llm_dims=(text.num_attention_heads, text.num_key_value_heads, text.num_hidden_layers))


def _teacher_split(counter: FlopCounterMode) -> dict[str, float]:
    """The teacher part's FLOPs by network (VGGT, DA3 metric)."""
    counts = module_flops(counter)
    return {name: under(counts, f"Step.teacher.{name}") for name in ("vggt", "metric")}


@contextmanager
def _quiet(name: str):
    """Silence a logger (the metric teacher warns about stand-in values of the fake run)."""
    log = logging.getLogger(name)
    level, log.level = log.level, logging.ERROR
    try:
        yield
    finally:
        log.setLevel(level)
