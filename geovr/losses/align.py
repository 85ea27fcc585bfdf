"""Feature-alignment loss: 1 - cos between projected LLM states and the teacher's features.

  L_align = 1/(K B) sum_k sum_b mean_tokens (1 - cos(P_k(h), F))

`student`, `teacher`: lists over the K tapped layers of lists over the B samples of Tensor[N_b, D]
(N_b tokens of sample b, the same in every layer; D channels). The teacher is a constant (no
gradient). cos(s, t) = <s, t> / (max(|s|, eps) max(|t|, eps)), eps = 1e-12: the dot product of
F.normalize(s) and F.normalize(t), as the release computes it; a zero vector gives cos = 0 and a
finite gradient.
A sample with N_b = 0 contributes 0.
"""
from __future__ import annotations

import torch
from torch import Tensor

from geovr.losses._backend import use_kernel
from geovr.losses._checks import check_batch, check_finite, check_same_shapes

EPS = 1e-12  # F.normalize's default, as the release normalises


def _check(student: object, teacher: object) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    for name, x in (("student", student), ("teacher", teacher)):
        if isinstance(x, Tensor) or not isinstance(x, (list, tuple)) or len(x) == 0:
            raise ValueError(
                f"{name}: expected a non-empty list over layers of lists over samples of "
                f"Tensor[N, D], got {type(x).__name__}"
            )
    if len(student) != len(teacher):
        raise ValueError(f"teacher: {len(teacher)} layers, but student has {len(student)}")
    s_layers, t_layers = [], []
    for k, (s, t) in enumerate(zip(student, teacher)):
        s = check_batch(f"student[{k}]", s, 2, "[N, D]")
        t = check_batch(f"teacher[{k}]", t, 2, "[N, D]")
        check_same_shapes(f"student[{k}]", s, f"teacher[{k}]", t)
        s_layers.append(s)
        t_layers.append(t)
    ref = s_layers[0]
    for k, s in enumerate(s_layers[1:], start=1):
        if [x.shape for x in s] != [x.shape for x in ref] or s[0].device != ref[0].device:
            raise ValueError(
                f"student[{k}]: per-sample shapes {[tuple(x.shape) for x in s]} differ from "
                f"student[0] {[tuple(x.shape) for x in ref]}; every layer aligns the same tokens"
            )
    return s_layers, t_layers


def align_loss(
    student: list[list[Tensor]], teacher: list[list[Tensor]], *, backend: str | None = None, checked: bool = True
) -> Tensor:
    """Scalar alignment loss (see module docstring); `backend` as in geovr.losses._backend;
    checked=False skips the NaN/inf check (its host sync): the caller checks (`all_finite`)."""
    s_layers, t_layers = _check(student, teacher)
    if checked:
        check_finite(
            {f"student[{k}]": s for k, s in enumerate(s_layers)}
            | {f"teacher[{k}]": t for k, t in enumerate(t_layers)}
        )
    if use_kernel(backend, s_layers[0][0].device, s_layers[0][0].dtype, loss="align"):
        from geovr.kernels.align_loss import fused_align_loss

        return fused_align_loss(s_layers, t_layers, eps=EPS)
    return align_loss_reference(s_layers, t_layers)


def align_loss_reference(student: list[list[Tensor]], teacher: list[list[Tensor]]) -> Tensor:
    """Eager, batched reference: packs every (layer, sample) segment and reduces with index_add."""
    k_layers, b = len(student), len(student[0])
    dtype = torch.promote_types(student[0][0].dtype, torch.float32)
    s = torch.cat([x.to(dtype) for layer in student for x in layer])  # [K * M, D]
    t = torch.cat([x.detach().to(dtype) for layer in teacher for x in layer])
    counts = torch.tensor([x.shape[0] for layer in student for x in layer], device=s.device)
    seg = torch.repeat_interleave(torch.arange(k_layers * b, device=s.device), counts)
    norms = torch.linalg.vector_norm(s, dim=-1).clamp(min=EPS) * torch.linalg.vector_norm(t, dim=-1).clamp(min=EPS)
    cos = torch.linalg.vecdot(s, t) / norms
    per_seg = torch.zeros(k_layers * b, dtype=dtype, device=s.device).index_add(0, seg, 1 - cos)
    return (per_seg / counts.clamp(min=1)).sum() / (k_layers * b)
