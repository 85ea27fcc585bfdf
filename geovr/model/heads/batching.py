"""Running a per-frame head once for many video samples: the samples whose inputs share a key
(merged grid and output size) are concatenated along the frame axis, the head runs once per group,
and each sample gets its own frames back. Equal to one call per sample for heads that treat frames
independently (every GeoVR head does: convolutions, interpolation and MLPs over [T, ...])."""
from __future__ import annotations

from collections.abc import Callable, Hashable

import torch
from torch import Tensor


def groups(keys: list[Hashable]) -> list[list[int]]:
    """Indices of equal keys, in first-seen order: [[0, 2], [1]] for keys [a, b, a]."""
    out: dict[Hashable, list[int]] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return list(out.values())


def per_frame_batched(head: Callable[[list[Tensor], Hashable], Tensor], inputs: list[list[Tensor]],
                      keys: list[Hashable]) -> list[Tensor]:
    """inputs: per sample, the head's tensors, each [T_i, ...]; keys: per sample (equal keys may be
    concatenated). head(tensors, key) -> [sum T, ...]. Returns each sample's [T_i, ...] output."""
    out: list[Tensor | None] = [None] * len(inputs)
    for idx in groups(keys):
        if len(idx) == 1:
            out[idx[0]] = head(inputs[idx[0]], keys[idx[0]])
            continue
        lengths = [inputs[i][0].shape[0] for i in idx]
        joined = [torch.cat([inputs[i][j] for i in idx]) for j in range(len(inputs[idx[0]]))]
        for i, part in zip(idx, head(joined, keys[idx[0]]).split(lengths)):
            out[i] = part
    return out
