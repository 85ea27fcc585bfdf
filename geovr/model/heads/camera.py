"""Camera head: one camera token's last-layer state -> the 9-D pose encoding [t | q xyzw | fov]."""
from __future__ import annotations

import torch
from torch import nn


class CameraHead(nn.Module):
    """LN(d) -> Linear(d, hidden) -> GELU -> Linear(hidden, hidden) -> GELU, then three linear
    outputs: translation (3), unnormalised quaternion (4, xyzw), FoV (2, radians, ReLU).
    hidden = 1536 in the release. Input [..., d] -> output [..., 9]."""

    def __init__(self, dim: int, hidden: int = 1536):
        super().__init__()
        self.trunk = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                   nn.Linear(hidden, hidden), nn.GELU())
        self.translation = nn.Linear(hidden, 3)
        self.rotation = nn.Linear(hidden, 4)
        self.fov = nn.Linear(hidden, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.trunk(tokens)
        return torch.cat([self.translation(h), self.rotation(h), torch.relu(self.fov(h))], dim=-1)
