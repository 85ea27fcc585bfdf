"""One micro-batch's training step of a `StepSpec`, built and ready to run: on fake tensors (the
cost model, `measure_step`) or for real on a device (the CPU check of the cost model, and the
timing of real steps on a GPU, `time_step`).

`build_step(spec, fake, device)` makes a synthetic micro-batch through the real data path, builds
the student, the teachers when online (their doubles at real size, `geovr.teachers.shapes`) and
AdamW with its state present as after a first step; `BuiltStep.run()` does teacher -> forward ->
loss -> backward -> optimizer step, as the trainer's step does.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .batch import BatchShape, synthetic_batch
from .build import cached_targets, metric_network, plan_tokenizer, student_model, teacher_network
from .recipes import all_hidden_states, masks_as_in_a_real_run, placeholders_from_ids, release_loss
from .shape_mode import ShapeMode
from .spec import StepSpec


class Teachers(nn.Module):
    """The teacher part: VGGT (the 3D teacher) and DA3 metric (the scale target's depth)."""

    def __init__(self, vggt: nn.Module, metric: nn.Module):
        super().__init__()
        self.vggt, self.metric = vggt, metric


class Step(nn.Module):
    """Names the parts for the FLOP counter: student (GeoVRModel) and teacher (its networks).
    Calling it does nothing but make the counter's module tracker name every submodule from here."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None):
        super().__init__()
        self.student, self.teacher = student, teacher

    def forward(self) -> None:
        return None


class _Real(nullcontext):
    """Stands in for ShapeMode in a real run (re-enterable, no stand-ins taken)."""

    fallbacks: dict = {}


@dataclass
class BuiltStep:
    """A built step (see the module). mode: ShapeMode, or a no-op for a real run; step: the
    parts' container (`Step`); plan: the micro-batch's GeoInputs (planned on the CPU batch, as the
    trainer does); supervised: its LM-head rows."""

    spec: StepSpec
    mode: AbstractContextManager
    batch: dict
    step: Step
    teacher: object | None
    optimizer: torch.optim.Optimizer
    trainable: list[torch.Tensor]
    plan: object
    supervised: int
    amp: Callable[[], AbstractContextManager]
    device: torch.device

    @property
    def student(self) -> nn.Module:
        return self.step.student

    @property
    def network(self) -> Teachers | None:
        return self.step.teacher

    def run(self, live=None, forward_counter=None, labels=None) -> None:
        """One step: teacher -> forward -> loss (under forward_counter) -> backward -> optimizer.
        live: a `LiveBytes` (its "teacher" phase is the teachers' run); labels: a `PartStack`."""
        from ..teachers.base import TeacherRequest
        from ..train.config import LossConfig
        from ..train.objective import micro_loss

        spec, batch, student, cfg = self.spec, self.batch, self.student, self.student.cfg
        enabled = {"pose": cfg.camera, "depth": cfg.depth, "align": cfg.align, "scale": cfg.scale}
        if labels is not None:
            labels.outside = "heads_losses"
        phase = live.phase("teacher") if live is not None else nullcontext()
        with forward_counter if forward_counter is not None else nullcontext():
            if forward_counter is not None:
                self.step()  # names every module "Step.<path>" for the counters
            with phase:
                if self.teacher is not None:
                    with self.amp():
                        targets = [self.teacher(TeacherRequest(sid, frames, idx)) for sid, frames, idx in
                                   zip(batch["ids"], batch["teacher_frames"], batch["frame_indices"])]
                else:
                    targets = cached_targets(batch, cfg.teacher_dim, cfg.teacher_layers, device=self.device)
            keep = all_hidden_states(student) if spec.recipe == "release" else nullcontext()
            with keep, placeholders_from_ids(student, self.plan.input_ids), masks_as_in_a_real_run(), self.amp():
                out = student(batch, num_items_in_batch=max(self.supervised, 1), geo=self.plan)
                if spec.recipe == "release":
                    loss = release_loss(out, targets)
                else:
                    loss = micro_loss(out, targets, LossConfig(), 1.0, enabled,
                                      sample_weights=batch["qa_counts"]).total
        if labels is not None:
            labels.outside = "backward"
        loss.backward()
        del out, loss, targets
        self.optimizer.step()  # the gradients stay (the memory pass classifies them); callers clear them


def build_step(spec: StepSpec, fake: bool = True, device: str | torch.device = "cpu") -> BuiltStep:
    """Build `spec`'s step (see the module): on fake tensors, or for real on `device`."""
    from ..data.qwen_inputs import batch_to
    from ..model.precision import bf16_autocast
    from ..teachers.metric_depth import MetricDepthTeacher, MetricScaledTeacher
    from ..teachers.vggt import VGGTTeacher

    device = torch.device(device)
    if fake and device.type != "cpu":
        raise ValueError("build_step: a fake step is counted on the CPU (device='cpu')")
    tok = plan_tokenizer()
    batch = synthetic_batch(tok, BatchShape(frames=spec.frames, micro_batch=spec.micro_batch,
                                            tokens_per_frame=spec.tokens_per_frame,
                                            teacher_longest=spec.teacher_longest,
                                            qa_per_sequence=spec.qa_per_sequence))
    mode = ShapeMode() if fake else _Real()
    amp = (lambda: bf16_autocast(device.type)) if spec.autocast else nullcontext
    lower = spec.autocast and spec.recipe == "geovr"  # the frozen networks' matmul weights in bf16
    with mode:
        student = student_model(spec, tok)
        network = Teachers(teacher_network(spec), metric_network(spec)) if spec.teacher == "online" else None
        if not fake:
            student = student.to(device)
            network = network.to(device) if network is not None else None
        step = Step(student, network)
        teacher = None
        if network is not None:
            vggt = VGGTTeacher(model=network.vggt, feature_dim=student.cfg.teacher_dim, device=device,
                               lower_weights=lower)
            metric = MetricDepthTeacher(model=network.metric, device=device, lower_weights=lower)
            teacher = MetricScaledTeacher(vggt, metric)
        trainable = [p for p in student.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
        _steady_state(optimizer, trainable)
    plan = student.plan(batch)  # real integer work on the CPU batch, as the trainer does
    if not fake and device.type != "cpu":
        batch = batch_to(batch, device)
    return BuiltStep(spec=spec, mode=mode, batch=batch, step=step, teacher=teacher, optimizer=optimizer,
                     trainable=trainable, plan=plan, supervised=int(len(plan.text_targets)), amp=amp, device=device)


def _steady_state(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    """Create AdamW's state as after a first step (a step's peak holds it), then clear the grads."""
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
