"""Real training steps of a `StepSpec` on a device, timed: the samples/s the cost model cannot give.

`time_step(spec, device="cuda", steps=5)` builds the step for real (`geovr.plan.step`: random
weights at the spec's size, `spec.layers` LLM layers when the whole model does not fit one GPU),
runs `warmup` steps, then `steps` timed ones (teacher -> forward -> loss -> backward -> AdamW step,
the GPU synchronised around the timed ones), with geovr's loss kernels (not the eager reference the
fake count uses). On a CPU it runs too (the tests use it so); its figures mean nothing there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .spec import StepSpec
from .step import build_step


@dataclass(frozen=True)
class StepTime:
    """spec; seconds: each timed step's wall time; peak_bytes: the device's peak allocation
    (0 on a CPU)."""

    spec: StepSpec
    seconds: tuple[float, ...]
    peak_bytes: int

    @property
    def median_s(self) -> float:
        s = sorted(self.seconds)
        return s[len(s) // 2]

    @property
    def samples_per_s(self) -> float:
        return self.spec.micro_batch / self.median_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(spec: StepSpec, device: str | torch.device = "cuda", steps: int = 5, warmup: int = 2) -> StepTime:
    """Time `steps` real training steps of `spec` on `device` after `warmup` (see the module)."""
    if steps < 1 or warmup < 0:
        raise ValueError(f"time_step: steps must be >= 1 and warmup >= 0, got {steps}, {warmup}")
    device = torch.device(device)
    built = build_step(spec, fake=False, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        built.run()
        built.optimizer.zero_grad(set_to_none=True)
        _sync(device)
        if i >= warmup:
            seconds.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return StepTime(spec=spec, seconds=tuple(seconds), peak_bytes=int(peak))
