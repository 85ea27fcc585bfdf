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


def concat_batched(head: Callable[[Tensor], Tensor], inputs: list[Tensor]) -> list[Tensor]:
    """A row-wise head (e.g. the camera head) once over every sample's rows [n_i, ...]: the
    samples' outputs [n_i, ...]."""
    return list(head(torch.cat(inputs)).split([len(x) for x in inputs]))


def slot_keys(slots) -> list[tuple[int, int, tuple[int, int]]]:
    """The grouping key of each video slot for the dense heads: its merged grid (h, w) and the
    teacher's output size."""
    return [(s.grid[1], s.grid[2], s.size) for s in slots]


def dense_heads(grids: list[dict[int, Tensor]], keys: list[Hashable], depth_head, depth_layers: list[int],
                projectors, aligned: list[int], layer_map: dict[int, int], pooled_size
                ) -> tuple[list[Tensor] | None, dict[int, list[Tensor]]]:
    """The depth head and the alignment projectors of GeoVR, each once per group of equal `keys`.
    grids: per video slot, {hidden-state index: [T, h, w, d]}; depth_layers: the indices the
    depth head reads (None head: no depth); aligned: the teacher layers aligned here, each through
    projectors[str(g)] on the hidden state layer_map[g], pooled to pooled_size(output size).
    Returns (per slot depth or None, {g: per slot features})."""
    depth = None
    if depth_head is not None:
        depth = per_frame_batched(lambda x, key: depth_head(x, key[2]),
                                  [[grid[k] for k in depth_layers] for grid in grids], keys)
    features = {g: per_frame_batched(lambda x, key, g=g: projectors[str(g)](x[0], pooled_size(key[2])),
                                     [[grid[layer_map[g]]] for grid in grids], keys) for g in aligned}
    return depth, features
