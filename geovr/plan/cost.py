"""The cost of one training step, counted by running the real step on fake tensors (`ShapeMode`).

`measure_step(spec)` builds the student (Qwen3-VL at a published size with the GeoVR wiring), the
teachers when online (VGGT-1B and DA3METRIC-LARGE at their sizes, `geovr.teachers.shapes`) and AdamW inside `ShapeMode`, makes a synthetic
micro-batch through the real data path, and runs teacher -> student forward -> loss -> backward ->
optimizer step. `torch.utils.flop_counter.FlopCounterMode` counts the FLOPs of every op, attributed
to the modules that ran them (forward and backward apart); `LiveBytes` follows every tensor's
storage and reports the peak split by kind (parameters, gradients, optimizer state, activations).

Two recipes, one code path:
- "geovr": layer taps only, the LM head on the supervised positions, geovr.losses, teacher
  online or from the target cache;
- "release": every hidden state kept, logits at every position, the per-sample eager losses
  (`geovr.losses.release_loop`), the teacher online every step.
A causal attention call (the LLM's) counts the share of its score matrix a causal kernel computes,
about half; `StepCost.per_sample_flops(attention="full")` gives the full-matrix count as well.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .batch import BatchShape, synthetic_batch
from .build import cached_targets, metric_network, param_counts, plan_tokenizer, student_model, teacher_network
from .memory import LiveBytes, Timeline
from .parts import PARTS, AttentionFormulas, PartStack, flops_by_part, module_flops, under
from .recipes import all_hidden_states, masks_as_in_a_real_run, placeholders_from_ids, reference_losses, release_loss
from .shape_mode import ShapeMode
from .spec import MODELS, RECIPES, TEACHER_MODES, StepSpec

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


class _Real(nullcontext):
    """Stands in for ShapeMode in a real run (re-enterable, no stand-ins taken)."""

    fallbacks: dict = {}


class _Teachers(nn.Module):
    """The teacher part: VGGT (the 3D teacher) and DA3 metric (the scale target's depth)."""

    def __init__(self, vggt: nn.Module, metric: nn.Module):
        super().__init__()
        self.vggt, self.metric = vggt, metric


class _Step(nn.Module):
    """Names the parts for the FLOP counter: student (GeoVRModel) and teacher (its networks).
    Calling it does nothing but make the counter's module tracker name every submodule from here."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None):
        super().__init__()
        self.student, self.teacher = student, teacher

    def forward(self) -> None:
        return None


def measure_step(spec: StepSpec, fake: bool = True) -> StepCost:
    """Count one micro-batch's training step of `spec` (see the module docstring). fake=False runs
    it for real (weights, compute and memory on the CPU): the check of the fake run at small sizes."""
    from ..model.precision import bf16_autocast
    from ..teachers.base import TeacherRequest
    from ..teachers.metric_depth import MetricDepthTeacher, MetricScaledTeacher
    from ..teachers.vggt import VGGTTeacher
    from ..train.config import LossConfig
    from ..train.objective import micro_loss

    tok = plan_tokenizer()
    batch = synthetic_batch(tok, BatchShape(frames=spec.frames, micro_batch=spec.micro_batch,
                                                  tokens_per_frame=spec.tokens_per_frame,
                                                  teacher_longest=spec.teacher_longest))
    mode = ShapeMode() if fake else _Real()
    amp = (lambda: bf16_autocast("cpu")) if spec.autocast else nullcontext
    with mode:
        student = student_model(spec, tok)
        network = _Teachers(teacher_network(spec), metric_network(spec)) if spec.teacher == "online" else None
        step = _Step(student, network)
        teacher = None
        if network is not None:
            vggt = VGGTTeacher(model=network.vggt, feature_dim=student.cfg.teacher_dim, device="cpu",
                               lower_weights=spec.autocast and spec.recipe == "geovr")
            metric = MetricDepthTeacher(model=network.metric, device="cpu",
                                        lower_weights=spec.autocast and spec.recipe == "geovr")
            teacher = MetricScaledTeacher(vggt, metric)
        trainable = [p for p in student.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
        _steady_state(optimizer, trainable)
    plan = student.plan(batch)  # real integer work on the CPU batch, as the trainer does
    geo_cfg = student.cfg
    enabled = {"pose": geo_cfg.camera, "depth": geo_cfg.depth, "align": geo_cfg.align, "scale": geo_cfg.scale}
    supervised = int(len(plan.text_targets))
    logits_bytes = [0]
    hook = student.base.lm_head.register_forward_hook(
        lambda m, a, o: logits_bytes.__setitem__(0, logits_bytes[0] + o.numel() * o.element_size()))

    def run(live: LiveBytes | None, forward_counter: FlopCounterMode | None, labels: "PartStack | None" = None) -> None:
        """One step: teacher -> forward -> loss (under forward_counter) -> backward -> optimizer."""
        if labels is not None:
            labels.outside = "heads_losses"
        phase = live.phase("teacher") if live is not None else nullcontext()
        with forward_counter if forward_counter is not None else nullcontext():
            if forward_counter is not None:
                step()  # names every module "_Step.<path>" for the counters
            with phase:
                if teacher is not None:
                    with amp():
                        targets = [teacher(TeacherRequest(sid, frames, idx)) for sid, frames, idx in
                                   zip(batch["ids"], batch["teacher_frames"], batch["frame_indices"])]
                else:
                    targets = cached_targets(batch, geo_cfg.teacher_dim, geo_cfg.teacher_layers)
            keep = all_hidden_states(student) if spec.recipe == "release" else nullcontext()
            with keep, placeholders_from_ids(student, plan.input_ids), masks_as_in_a_real_run(), amp():
                out = student(batch, num_items_in_batch=max(supervised, 1), geo=plan)
                if spec.recipe == "release":
                    loss = release_loss(out, targets)
                else:
                    loss = micro_loss(out, targets, LossConfig(), 1.0, enabled).total
        if labels is not None:
            labels.outside = "backward"
        loss.backward()
        del out, loss, targets
        optimizer.step()

    # Memory and FLOPs in two passes: the FLOP counter's module hooks keep the graphs of
    # checkpointed layers' recomputes alive, which would inflate the peak.
    parts = PartStack(step)
    live = LiveBytes(label=parts.current)
    with mode, reference_losses(), parts, _quiet("geovr.teachers.metric_depth"):
        live.track(*step.parameters(), *step.buffers(), *_optimizer_tensors(optimizer),
                   *[v for v in batch.values() if torch.is_tensor(v)], *batch["teacher_frames"])
        with live:
            run(live, None, parts)
        hook.remove()
        groups = {"parameters": list(student.parameters()) + list(student.buffers()),
                  "gradients": [p.grad for p in trainable if p.grad is not None],
                  "optimizer": _optimizer_tensors(optimizer),
                  "teacher": list(network.parameters()) if network is not None else []}
        split = live.classify(groups)
        activations = live.rest_by_label(groups)
        timeline = live.timeline(groups)
        optimizer.zero_grad(set_to_none=True)
        both_attention, fwd_attention = AttentionFormulas(), AttentionFormulas()
        both = FlopCounterMode(display=False, custom_mapping=both_attention.mapping())
        fwd = FlopCounterMode(display=False, custom_mapping=fwd_attention.mapping())
        with both:
            run(None, fwd)
    text = student.base.config.text_config
    forward = flops_by_part(fwd)
    backward = {k: v - forward[k] for k, v in flops_by_part(both).items()}
    memory = {"parameters": split["parameters"], "gradients": split["gradients"], "optimizer": split["optimizer"],
              "activations": split["activations"], "teacher": split["teacher"]}
    return StepCost(spec=spec, flops_forward=forward, flops_backward=backward, memory=memory,
                    activations=activations, peak=live.peak,
                    logits_bytes=logits_bytes[0],
                    teacher_peak=live.phase_peak["teacher"] - live.phase_start["teacher"],
                    params=param_counts(student, network), sequence=int(plan.input_ids.shape[1]),
                    supervised=supervised, fallbacks=dict(mode.fallbacks), largest=live.largest_at_peak(12),
                    causal_skipped=(fwd_attention.skipped, both_attention.skipped - fwd_attention.skipped),
                    timeline=timeline, teacher_flops=_teacher_split(both),
                    llm_dims=(text.num_attention_heads, text.num_key_value_heads, text.num_hidden_layers))


def _teacher_split(counter: FlopCounterMode) -> dict[str, float]:
    """The teacher part's FLOPs by network (VGGT, DA3 metric)."""
    counts = module_flops(counter)
    return {name: under(counts, f"_Step.teacher.{name}") for name in ("vggt", "metric")}


@contextmanager
def _quiet(name: str):
    """Silence a logger (the metric teacher warns about stand-in values of the fake run)."""
    log = logging.getLogger(name)
    level, log.level = log.level, logging.ERROR
    try:
        yield
    finally:
        log.setLevel(level)


def _steady_state(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    """Create AdamW's state as after a first step (a step's peak holds it), then clear the grads."""
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
