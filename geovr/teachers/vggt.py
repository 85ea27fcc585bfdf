"""`VGGTTeacher`: VGGT-1B (or any module shaped like it) as GeoVR's 3D teacher.

VGGT is not a pip dependency: install it from its public repository and point `weights` at a local
copy of its checkpoint (no hub access at run time). The teacher runs frozen, under no_grad, the
aggregator in bf16 autocast on a GPU and the heads in fp32, as VGGT's own forward does.

Per sample (frames float [T, 3, H, W] in [0, 1], H and W multiples of the patch, e.g. 392x504):
- pose_enc [T, 9]: the camera head's last iteration (frame 1 is VGGT's world).
- depth, depth_conf [T, H, W]: the DPT depth head.
- features {layer: [T, H/p, W/p, 1024]}: the frame-attention half (channels [:C]) of the patch
  tokens of the tapped aggregator layers (the special tokens, camera + registers, are dropped).

VGGT's aggregator keeps only the layers in `aggregator.cached_layer_indices` ({4, 11, 17, 23} by
default; None for every other layer). A teacher asked for other layers adds them to that set before
any work, and a layer that still comes back None is an error naming it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..model.layer_map import VGGT_DEPTH, VGGT_LAYERS
from .base import Teacher, TeacherRequest, TeacherTargets
from .loading import from_pretrained_strict
from ..model.precision import lower_matmul_weights
from .runtime import autocast_dtype, gpu_autocast, resolve_device

logger = logging.getLogger(__name__)

INSTALL_HINT = ("VGGT is not installed. Install it from its public repository, e.g.\n"
                "    pip install git+https://github.com/facebookresearch/vggt\n"
                "and pass the local path of its weights (a model.safetensors / model.pt file, or a folder "
                "holding config.json + model.safetensors).")


def _vggt_class():
    try:
        from vggt.models.vggt import VGGT
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return VGGT


def load_vggt(weights: str | os.PathLike) -> nn.Module:
    """VGGT-1B from a local checkpoint: a folder (`from_pretrained` layout) or a .safetensors/.pt
    state dict. Raises FileNotFoundError naming the path, ImportError with the install line."""
    path = Path(weights)
    if not path.exists():
        raise FileNotFoundError(f"VGGT weights: {path} does not exist (download the checkpoint once and pass its "
                                "local path; there is no hub access at run time)")
    cls = _vggt_class()
    if path.is_dir():
        return from_pretrained_strict(cls, path, "VGGT")
    model = cls()
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


class _Float32Layers(Sequence):
    """The aggregator's layer list, each layer cast to fp32 only when a head reads it (casting all 24
    layers up front would double the teacher's largest activation); uncached layers stay None."""

    def __init__(self, layers: list[torch.Tensor]):
        self._layers = layers

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [None if x is None else x.float() for x in self._layers[i]]
        x = self._layers[i]
        return None if x is None else x.float()


def vggt_cache_id(weights_id: str, layers: tuple[int, ...] = VGGT_LAYERS, feature_dim: int = 1024,
                  patch_size: int = 14) -> str:
    """VGGT's id in cache keys, from its settings (no weights loaded); weights_id: the checkpoint's
    file or folder name."""
    return f"vggt-{weights_id}-l{'-'.join(map(str, layers))}-c{feature_dim}-p{patch_size}"


class VGGTTeacher(Teacher):
    """model: a VGGT-shaped module (`aggregator`, `camera_head`, `depth_head`), or None to load
    `weights`. layers: tapped aggregator layers (VGGT-1B: {4, 11, 17, 23} of 24). feature_dim: the
    frame-attention half's width (1024 for VGGT-1B). device/autocast: where and how it runs.
    lower_weights: store the aggregator's Linear/Conv2d weights in the autocast dtype (bit-identical
    targets, half its weight memory: 1.8 GB less for VGGT-1B); None: when it autocasts on a GPU.
    The heads keep fp32 weights (they run in fp32)."""

    name = "vggt"

    def __init__(self, weights: str | os.PathLike | None = None, model: nn.Module | None = None,
                 layers: tuple[int, ...] = VGGT_LAYERS, depth: int = VGGT_DEPTH, patch_size: int = 14,
                 feature_dim: int = 1024, device: str | torch.device | None = None, autocast: bool = True,
                 weights_id: str | None = None, lower_weights: bool | None = None):
        if model is None:
            if weights is None:
                raise ValueError("VGGTTeacher: pass weights=<local checkpoint path> (or model=<a VGGT module>)")
            model = load_vggt(weights)
        for part in ("aggregator", "camera_head", "depth_head"):
            if getattr(model, part, None) is None:
                raise TypeError(f"VGGTTeacher: model has no `{part}`; expected a vggt.models.vggt.VGGT "
                                "(or a module shaped like it)")
        bad = [l for l in layers if not 0 <= l < depth]
        if bad:
            raise ValueError(f"VGGTTeacher: layers {bad} are outside the aggregator's 0..{depth - 1}")
        _cache_layers(model.aggregator, layers)
        self.device = resolve_device(device)
        if any(p.device != self.device for p in model.parameters()):  # (a no-op .to() still swaps fake weights)
            model = model.to(self.device)
        self.model = model.eval().requires_grad_(False)
        if lower_weights if lower_weights is not None else (autocast and self.device.type == "cuda"):
            lower_matmul_weights(self.model.aggregator, autocast_dtype(self.device))
        self.layers, self.depth = tuple(layers), depth
        self.patch_size, self.feature_dim, self.autocast = patch_size, feature_dim, autocast
        self._weights_id = weights_id or (Path(weights).name if weights is not None else type(model).__name__)

    @property
    def cache_id(self) -> str:
        return vggt_cache_id(self._weights_id, self.layers, self.feature_dim, self.patch_size)

    @torch.no_grad()
    def __call__(self, request: TeacherRequest) -> TeacherTargets:
        frames = request.frames
        if frames.dim() != 4 or frames.shape[1] != 3 or not frames.is_floating_point():
            raise ValueError(f"{request.sample_id}: teacher frames must be float [T, 3, H, W] in [0, 1], "
                             f"got {tuple(frames.shape)} {frames.dtype}")
        t, _, h, w = frames.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"{request.sample_id}: teacher frames {h}x{w} must be multiples of the patch {p} "
                             "(use geovr.data.qwen_pixels.to_teacher_frames)")
        images = frames.to(self.device, torch.float32)[None]  # [1, T, 3, H, W]
        with gpu_autocast(self.device, self.autocast):
            tokens, start = self.model.aggregator(images)
        if len(tokens) != self.depth:
            raise ValueError(f"VGGTTeacher: the aggregator returned {len(tokens)} layers, expected depth={self.depth}")
        with torch.autocast(self.device.type, enabled=False):
            tokens32 = _Float32Layers(tokens)
            pose_enc = self.model.camera_head(tokens32)[-1]  # [1, T, 9]
            depth, conf = self.model.depth_head(tokens32, images=images, patch_start_idx=start)
        uncached = [l for l in self.layers if tokens[l] is None]
        if uncached:
            raise ValueError(f"VGGTTeacher: the aggregator returned no tokens for layers {uncached} (outside its "
                             "cached_layer_indices); add them to model.aggregator.cached_layer_indices, or tap "
                             f"cached layers ({_cached(self.model.aggregator)})")
        hp, wp = h // p, w // p
        features = {}
        for l in self.layers:
            patch = tokens[l][0, :, start:, :self.feature_dim]  # frame-attention half
            if patch.shape[1] != hp * wp:
                raise ValueError(f"VGGTTeacher: layer {l} has {patch.shape[1]} patch tokens, expected {hp}x{wp}")
            features[l] = patch.reshape(t, hp, wp, self.feature_dim).float()
        return TeacherTargets(pose_enc=pose_enc[0].float(), depth=depth[0].reshape(t, h, w).float(),
                              depth_conf=conf[0].reshape(t, h, w).float(), features=features)


def _cached(aggregator: nn.Module) -> tuple[int, ...] | None:
    c = getattr(aggregator, "cached_layer_indices", None)
    return None if c is None else tuple(sorted(c))


def _cache_layers(aggregator: nn.Module, layers: tuple[int, ...]) -> None:
    """Add `layers` to the aggregator's cached set (VGGT returns None for the layers outside it)."""
    cached = _cached(aggregator)
    if cached is None:
        return  # an aggregator that returns every layer (VGGT before the cached set, the release's copy)
    missing = sorted(set(layers) - set(cached))
    if missing:
        aggregator.cached_layer_indices = tuple(sorted(set(cached) | set(missing)))
        logger.info("VGGT: caching aggregator layers %s as well (cached were %s)", missing, list(cached))
