"""DPT depth head: four tapped layers' video-token grids -> dense depth at the teacher's resolution.

Per layer (a shared LayerNorm first): 1x1 projection to `channels[i]`, resampling x4, x2, x1, x0.5
(transposed convs / identity / strided conv), a 3x3 conv to `features`; RefineNet fusion from the
coarsest level up to the x4 level (1/4 of a token's 32-px footprint); bilinear resize to 4x the
teacher's 2x2-pooled patch grid (patch p = 2 x 14 = 28); a 1x1 conv to (p/4)^2 channels and a
pixel shuffle by p/4, so the output lands exactly on the teacher's depth pixels; depth = exp(.).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualUnit(nn.Module):
    """x + conv3x3(relu(conv3x3(relu(x)))) at constant width (also the cost model's DPT doubles')."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class _Fusion(nn.Module):
    """RefineNet block: (coarser path upsampled, this level) -> fused features at this level."""

    def __init__(self, features: int):
        super().__init__()
        self.skip = ResidualUnit(features)
        self.out = ResidualUnit(features)
        self.proj = nn.Conv2d(features, features, 1)

    def forward(self, level: torch.Tensor, coarser: torch.Tensor | None) -> torch.Tensor:
        x = self.skip(level)
        if coarser is not None:
            x = x + F.interpolate(coarser, size=level.shape[-2:], mode="bilinear", align_corners=False)
        return self.proj(self.out(x))


class DPTDepthHead(nn.Module):
    """dim: LLM hidden size. channels: per-level projection widths (release [256, 512, 1024, 1024]).
    features: fusion width (256). patch: the teacher grid's patch in pixels (2 x 14 = 28)."""

    def __init__(self, dim: int, channels: tuple[int, int, int, int] = (256, 512, 1024, 1024),
                 features: int = 256, patch: int = 28):
        super().__init__()
        if patch % 4:
            raise ValueError(f"patch must be a multiple of 4, got {patch}")
        self.patch = patch
        self.norm = nn.LayerNorm(dim)
        self.project = nn.ModuleList(nn.Conv2d(dim, c, 1) for c in channels)
        self.resample = nn.ModuleList([
            nn.ConvTranspose2d(channels[0], channels[0], 4, stride=4),
            nn.ConvTranspose2d(channels[1], channels[1], 2, stride=2),
            nn.Identity(),
            nn.Conv2d(channels[3], channels[3], 3, stride=2, padding=1),
        ])
        self.to_features = nn.ModuleList(nn.Conv2d(c, features, 3, padding=1, bias=False) for c in channels)
        self.fuse = nn.ModuleList(_Fusion(features) for _ in channels)
        shuffle = patch // 4
        self.head = nn.Sequential(nn.Conv2d(features, features // 2, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(features // 2, shuffle * shuffle, 1))
        self.shuffle = nn.PixelShuffle(shuffle)

    def forward(self, grids: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        """grids: 4 x [T, h, w, dim] (shallow to deep); out_size: the teacher's (H', W'), multiples of
        `patch`. Returns depth [T, H', W'] > 0."""
        if len(grids) != len(self.project):
            raise ValueError(f"need {len(self.project)} layer grids, got {len(grids)}")
        h_out, w_out = out_size
        if h_out % self.patch or w_out % self.patch:
            raise ValueError(f"out_size {out_size} must be multiples of the patch {self.patch}")
        levels = []
        for grid, proj, res, feat in zip(grids, self.project, self.resample, self.to_features):
            x = self.norm(grid).permute(0, 3, 1, 2)
            levels.append(feat(res(proj(x))))
        path = None
        for level, fuse in zip(reversed(levels), reversed(self.fuse)):
            path = fuse(level, path)
        size = (4 * h_out // self.patch, 4 * w_out // self.patch)
        path = F.interpolate(path, size=size, mode="bilinear", align_corners=False)
        logits = self.shuffle(self.head(path))
        return torch.exp(logits.squeeze(1))
