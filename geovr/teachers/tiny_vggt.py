"""`TinyVGGT`: a small randomly initialised module with VGGT's interface and token layout, for
shape tests of `VGGTTeacher` without the 1B checkpoint.

- aggregator(images [B, S, 3, H, W] in [0, 1]) -> (list of `depth` entries, patch_start_idx = 5):
  entry l is [B, S, 5 + h*w, 2C] for l in `aggregator.cached_layer_indices` ({4, 11, 17, 23} by
  default, read at every call) and None for every other layer, as upstream VGGT's; per frame 1
  camera + 4 register tokens, then the patch tokens; each layer is a frame-attention block (within
  a frame) and a global-attention block (across the sample's frames), and its output is
  [frame | global] concatenated.
- camera_head(layers) -> list (one entry per refinement iteration) of pose_enc [B, S, 9] from the
  last layer's camera tokens; the FoV is a ReLU output, as VGGT's, so it can be exactly 0
  (`fov_offset`, added before the ReLU, sets how often: very negative gives 0 everywhere).
- depth_head(layers, images, patch_start_idx) -> (depth [B, S, H, W, 1] > 0, conf [B, S, H, W] > 1).
- `TinyVGGT.from_pretrained(folder)` / `save_pretrained(folder)`: config.json + model.safetensors,
  through huggingface_hub's `PyTorchModelHubMixin`, as VGGT.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from .runtime import IMAGENET_MEAN, IMAGENET_STD

SPECIAL_TOKENS = 5  # 1 camera + 4 registers
CACHED_LAYERS = (4, 11, 17, 23)  # VGGT's default cached_layer_indices


class _Block(nn.Module):
    """Pre-norm transformer block: x + attention(LN x), then x + MLP(LN x). [N, L, C] -> same."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, c))
        return x + self.mlp(self.norm2(x))


class _Aggregator(nn.Module):
    def __init__(self, dim: int, depth: int, patch: int, heads: int, cached: tuple[int, ...], mlp_ratio: float,
                 embed_depth: int):
        super().__init__()
        self.patch = patch
        self.cached_layer_indices = tuple(cached)
        self.embed = nn.Conv2d(3, dim, patch, patch)
        hidden = int(mlp_ratio * dim)
        self.embed_blocks = nn.ModuleList(_Block(dim, heads, hidden) for _ in range(embed_depth))  # DINOv2's ViT
        self.special = nn.Parameter(torch.randn(2, SPECIAL_TOKENS, dim) * 0.02)  # first frame / others
        self.frame_blocks = nn.ModuleList(_Block(dim, heads, hidden) for _ in range(depth))
        self.global_blocks = nn.ModuleList(_Block(dim, heads, hidden) for _ in range(depth))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor | None], int]:
        b, s, _, h, w = images.shape
        x = (images.reshape(b * s, 3, h, w) - self.mean) / self.std
        x = self.embed(x).flatten(2).transpose(1, 2)  # [B*S, P, C]
        for block in self.embed_blocks:
            x = block(x)
        special = torch.cat([self.special[:1], self.special[1:].expand(s - 1, -1, -1)]) if s > 1 else self.special[:1]
        x = torch.cat([special.repeat(b, 1, 1), x], 1)
        n, c = x.shape[1], x.shape[2]
        out = []
        for frame_block, global_block in zip(self.frame_blocks, self.global_blocks):
            x = frame_block(x)
            frame_out = x
            x = global_block(x.reshape(b, s * n, c)).reshape(b * s, n, c)
            keep = len(out) in self.cached_layer_indices
            out.append(torch.cat([frame_out, x], -1).reshape(b, s, n, 2 * c) if keep else None)
        return out, SPECIAL_TOKENS


class _CameraHead(nn.Module):
    def __init__(self, dim: int, iterations: int = 4, fov_offset: float = 1.0):
        super().__init__()
        self.iterations, self.fov_offset = iterations, fov_offset
        self.norm = nn.LayerNorm(2 * dim)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, 9))

    def forward(self, layers) -> list[torch.Tensor]:
        cam = self.norm(layers[-1][:, :, 0])  # [B, S, 2C]
        out, pose = [], None
        for _ in range(self.iterations):
            delta = self.mlp(cam)
            pose = delta if pose is None else pose + 0.5 * delta
            out.append(torch.cat([pose[..., :7], F.relu(pose[..., 7:] + self.fov_offset)], -1))
        return out


class _DepthHead(nn.Module):
    def __init__(self, dim: int, taps: tuple[int, ...], patch: int):
        super().__init__()
        self.taps, self.patch = taps, patch
        self.proj = nn.ModuleList(nn.Linear(2 * dim, dim) for _ in taps)
        self.out = nn.Conv2d(dim, 2, 3, padding=1)

    def forward(self, layers, images: torch.Tensor, patch_start_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        b, s, _, h, w = images.shape
        hp, wp = h // self.patch, w // self.patch
        x = sum(p(layers[i][:, :, patch_start_idx:]) for p, i in zip(self.proj, self.taps))  # [B, S, P, C]
        x = x.reshape(b * s, hp, wp, -1).permute(0, 3, 1, 2)
        x = F.interpolate(self.out(x), size=(h, w), mode="bilinear", align_corners=False).reshape(b, s, 2, h, w)
        return torch.exp(x[:, :, 0]).unsqueeze(-1), 1 + torch.exp(x[:, :, 1])


class TinyVGGT(nn.Module, PyTorchModelHubMixin):
    """dim: embedding width C (tokens are 2C); depth: aggregator layers (24 as VGGT-1B by default,
    so the teacher's layer indices are the real ones); patch: pixels per token (14); depth_taps:
    the depth head's layers; cached: the aggregator's cached layers; fov_offset: see the module;
    mlp_ratio: the blocks' MLP width over C; embed_depth: per-frame ViT blocks of the patch embedding."""

    def __init__(self, dim: int = 16, depth: int = 24, patch: int = 14, heads: int = 2,
                 depth_taps: tuple[int, ...] = CACHED_LAYERS, seed: int = 0,
                 cached: tuple[int, ...] = CACHED_LAYERS, fov_offset: float = 1.0, mlp_ratio: float = 2.0,
                 embed_depth: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.aggregator = _Aggregator(dim, depth, patch, heads, cached, mlp_ratio, embed_depth)
        self.camera_head = _CameraHead(dim, fov_offset=fov_offset)
        self.depth_head = _DepthHead(dim, depth_taps, patch)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        layers, start = self.aggregator(images)
        depth, conf = self.depth_head(layers, images=images, patch_start_idx=start)
        return {"pose_enc": self.camera_head(layers)[-1], "depth": depth, "depth_conf": conf}

