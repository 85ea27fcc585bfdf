"""The teachers at their real sizes, for the cost model (`geovr.plan`): random-weight modules whose
layers, widths and calls follow VGGT-1B and Depth-Anything-3's DA3METRIC-LARGE, so their FLOPs and
weight bytes count right on fake tensors. Not models: nothing here is trained or loaded.

- `vggt_1b_shape()`: TinyVGGT's aggregator at VGGT-1B's size (a ViT-L/14 per frame, then 24 frame
  + 24 global blocks at width 1024), VGGT's camera head (a 4-block trunk at 2048 run for 4
  refinement iterations on the camera tokens) and its DPT depth head (4 taps, 256 features, out
  channels 256/512/1024/1024, fusion at 1/14 .. 8/14 of the frame, output convolutions at full size).
- `da3_metric_shape()`: DA3METRIC-LARGE as `MetricDepthTeacher` calls it: a DINOv2 ViT-L/14 (a
  class token per frame) and a DPT head on its layers {4, 11, 17, 23} with a depth and a sky output.

The DPT double is checked against DA3's own DPT (same structure as VGGT's) in the second
environment (`tests/teachers/test_teacher_shapes_real.py`): FLOPs and parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.heads.dpt import ResidualUnit
from .tiny_vggt import CACHED_LAYERS, TinyVGGT, _Block

DPT_OUT_CHANNELS = (256, 512, 1024, 1024)


class _Fusion(nn.Module):
    """Adds the refined skip (when there is one), refines, upsamples (x2 or to `size`), 1x1 conv."""

    def __init__(self, c: int, skip: bool):
        super().__init__()
        self.skip = ResidualUnit(c) if skip else None
        self.refine = ResidualUnit(c)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.skip(skip)
        x = self.refine(x)
        x = F.interpolate(x, size=size, scale_factor=None if size else 2, mode="bilinear", align_corners=True)
        return self.out(x)


class DPTShape(nn.Module):
    """A DPT head: tokens of 4 layers [N, P, dim_in] on a ph x pw grid -> maps [N, outputs, H, W]
    (and a 1-channel sky map when `sky`). Per tap: LayerNorm, 1x1 projection to out_channels[i],
    resize to 4x / 2x / 1x / 0.5x the grid, 3x3 to `features`; a top-down fusion to 8x the grid;
    a 3x3 to features/2; bilinear to H x W; per output: 3x3 to 32, ReLU, 1x1. Frames go through
    `chunk` at a time, as VGGT's and DA3's heads do (the same FLOPs, a smaller transient peak)."""

    def __init__(self, dim_in: int, outputs: int, sky: bool = False, features: int = 256,
                 out_channels: tuple[int, ...] = DPT_OUT_CHANNELS, norm: bool = True, chunk: int = 8):
        super().__init__()
        self.chunk = chunk
        self.norm = nn.LayerNorm(dim_in) if norm else nn.Identity()  # VGGT's has one; DA3's taps come normed
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, c, 1) for c in out_channels)
        c0, c1, _, c3 = out_channels
        self.resize = nn.ModuleList([nn.ConvTranspose2d(c0, c0, 4, stride=4), nn.ConvTranspose2d(c1, c1, 2, stride=2),
                                     nn.Identity(), nn.Conv2d(c3, c3, 3, stride=2, padding=1)])
        self.to_features = nn.ModuleList(nn.Conv2d(c, features, 3, padding=1, bias=False) for c in out_channels)
        self.fusions = nn.ModuleList([_Fusion(features, skip=False)] + [_Fusion(features, skip=True) for _ in range(3)])
        self.neck = nn.Conv2d(features, features // 2, 3, padding=1)
        self.heads = nn.ModuleList(nn.Sequential(nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(),
                                                 nn.Conv2d(32, n, 1)) for n in ([outputs] + ([1] if sky else [])))

    def forward(self, taps: list[torch.Tensor], ph: int, pw: int, size: tuple[int, int]) -> list[torch.Tensor]:
        n = taps[0].shape[0]
        parts = [self._maps([t[i:i + self.chunk] for t in taps], ph, pw, size) for i in range(0, n, self.chunk)]
        return [torch.cat(outs) for outs in zip(*parts)]

    def _maps(self, taps: list[torch.Tensor], ph: int, pw: int, size: tuple[int, int]) -> list[torch.Tensor]:
        maps = []
        for x, project, resize, to_features in zip(taps, self.projects, self.resize, self.to_features):
            x = self.norm(x).transpose(1, 2).reshape(x.shape[0], -1, ph, pw)
            maps.append(to_features(resize(project(x))))
        l1, l2, l3, l4 = maps
        x = self.fusions[0](l4, size=l3.shape[-2:])
        x = self.fusions[1](x, l3, size=l2.shape[-2:])
        x = self.fusions[2](x, l2, size=l1.shape[-2:])
        x = self.fusions[3](x, l1)
        x = F.interpolate(self.neck(x), size=size, mode="bilinear", align_corners=True)
        return [head(x) for head in self.heads]


class _VGGTDepthHead(nn.Module):
    """VGGT's depth head call: (layers, images, patch_start_idx) -> depth [B, S, H, W, 1] > 0 and
    confidence [B, S, H, W] > 1, from a DPT on the patch tokens of layers `taps`."""

    def __init__(self, dim_in: int, taps: tuple[int, ...], patch: int):
        super().__init__()
        self.taps, self.patch = taps, patch
        self.dpt = DPTShape(dim_in, outputs=2)

    def forward(self, layers, images: torch.Tensor, patch_start_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        b, s, _, h, w = images.shape
        taps = [layers[i][:, :, patch_start_idx:].reshape(b * s, -1, layers[i].shape[-1]) for i in self.taps]
        (out,) = self.dpt(taps, h // self.patch, w // self.patch, (h, w))
        out = out.reshape(b, s, 2, h, w)
        return torch.exp(out[:, :, 0]).unsqueeze(-1), 1 + torch.exp(out[:, :, 1])


class _VGGTCameraHead(nn.Module):
    """VGGT's camera head call: layers -> [pose_enc [B, S, 9] per iteration], from the last layer's
    camera tokens: `iterations` passes of a pose embedding, an adaptive-norm modulation and a
    `depth`-block trunk at width `dim` (the FoV through a ReLU, as VGGT's)."""

    def __init__(self, dim: int, depth: int = 4, heads: int = 16, iterations: int = 4):
        super().__init__()
        self.iterations = iterations
        self.token_norm, self.trunk_norm, self.adaln_norm = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.embed_pose = nn.Linear(9, dim)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.trunk = nn.ModuleList(_Block(dim, heads, 4 * dim) for _ in range(depth))
        self.pose_branch = nn.Sequential(nn.Linear(dim, dim // 2), nn.GELU(), nn.Linear(dim // 2, 9))

    def forward(self, layers) -> list[torch.Tensor]:
        tokens = self.token_norm(layers[-1][:, :, 0])  # [B, S, dim]
        pose = torch.zeros(*tokens.shape[:2], 9, dtype=tokens.dtype, device=tokens.device)
        out = []
        for _ in range(self.iterations):
            shift, scale, gate = self.modulation(self.embed_pose(pose)).chunk(3, dim=-1)
            x = tokens + gate * (self.adaln_norm(tokens) * (1 + scale) + shift)
            for block in self.trunk:
                x = block(x)
            pose = pose + self.pose_branch(self.trunk_norm(x))
            out.append(torch.cat([pose[..., :7], F.relu(pose[..., 7:])], -1))
        return out


def vggt_1b_shape() -> TinyVGGT:
    """VGGT-1B's aggregator, camera head and depth head at their sizes (see the module)."""
    model = TinyVGGT(dim=1024, depth=24, patch=14, heads=16, mlp_ratio=4.0, embed_depth=24)
    model.camera_head = _VGGTCameraHead(2048)
    model.depth_head = _VGGTDepthHead(2048, CACHED_LAYERS, 14)
    return model


class _ViT(nn.Module):
    """DINOv2's ViT per frame: [N, 3, H, W] -> the normed tokens (class token dropped) of `taps`."""

    def __init__(self, dim: int, depth: int, heads: int, patch: int, taps: tuple[int, ...]):
        super().__init__()
        self.taps = taps
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + 37 * 37, dim))  # DINOv2's, at 518 px (its bytes only)
        self.blocks = nn.ModuleList(_Block(dim, heads, 4 * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], 1)
        taps = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in self.taps:
                taps.append(self.norm(tokens)[:, 1:])
        return taps


class DA3MetricShape(nn.Module):
    """DA3METRIC-LARGE's network as `MetricDepthTeacher` calls it: net(x [B, S, 3, H, W] ImageNet-
    normalised, export_feat_layers=[]) -> {"depth": [B, S, H, W], "sky": [B, S, H, W]}: `backbone`,
    a DINOv2 ViT-L/14 per frame (class token + patches), and `head`, a DPT on its layers `taps`,
    run in fp32 (as DA3's)."""

    def __init__(self, dim: int = 1024, depth: int = 24, heads: int = 16, patch: int = 14,
                 taps: tuple[int, ...] = CACHED_LAYERS, features: int = 256,
                 out_channels: tuple[int, ...] = DPT_OUT_CHANNELS):
        super().__init__()
        self.patch = patch
        self.backbone = _ViT(dim, depth, heads, patch, taps)
        self.head = DPTShape(dim, outputs=1, sky=True, features=features, out_channels=out_channels, norm=False)

    def forward(self, x: torch.Tensor, export_feat_layers=None) -> dict[str, torch.Tensor]:
        b, s, _, h, w = x.shape
        taps = self.backbone(x.reshape(b * s, 3, h, w))
        with torch.autocast(x.device.type, enabled=False):
            depth, sky = self.head([t.float() for t in taps], h // self.patch, w // self.patch, (h, w))
        return {"depth": torch.exp(depth).reshape(b, s, h, w), "sky": F.relu(sky).reshape(b, s, h, w)}


def da3_metric_shape() -> DA3MetricShape:
    """DA3METRIC-LARGE at its size (see the module)."""
    return DA3MetricShape()
