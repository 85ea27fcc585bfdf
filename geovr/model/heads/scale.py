"""Scale head: the scale token's last-layer state -> one positive metric scale per video."""
from __future__ import annotations

import torch
from torch import nn


class ScaleHead(nn.Module):
    """LN -> Linear(d, hidden=512) -> GELU -> Linear(hidden, 1) -> exp. [..., d] -> [...]."""

    def __init__(self, dim: int, hidden: int = 512):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.net(token).squeeze(-1))
