"""Alignment projector: one tapped layer's video-token grid -> the teacher's pooled feature grid."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AlignProjector(nn.Module):
    """Bilinear resize of the token grid [T, h, w, d] to the teacher grid (h', w') (the teacher's
    patch grid after 2x2 average pooling), then LN -> Linear(d, hidden) -> GELU ->
    Linear(hidden, out). Release: hidden = out = 1024. Returns [T, h', w', out]."""

    def __init__(self, dim: int, out_dim: int = 1024, hidden: int = 1024):
        super().__init__()
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if grid.ndim != 4:
            raise ValueError(f"grid must be [T, h, w, d], got {tuple(grid.shape)}")
        x = grid.permute(0, 3, 1, 2)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.mlp(x.permute(0, 2, 3, 1))
