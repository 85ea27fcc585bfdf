"""Decoded frames -> Qwen3-VL `pixel_values_videos` / `video_grid_thw` (and an image's
`pixel_values` / `image_grid_thw`), and the teacher's frames.

Tensor ops only, on the frames' own device (the GPU after DALI), equal to the HF Qwen3-VL video
processor given the same frames duplicated (one real frame per temporal patch):
bicubic antialiased resize of uint8 frames (to uint8 values, by torchvision's per-device rule), then
(x / 255 - mean) / std, then the processor's patch order
(t, h/merge, w/merge, merge_h, merge_w | channel, temporal, patch_h, patch_w).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .sampling import QwenImageVision, QwenVision, qwen_frame_size, qwen_image_size, teacher_frame_size

MEAN = (0.5, 0.5, 0.5)  # Qwen3-VL's image_mean / image_std (IMAGENET_STANDARD)
STD = (0.5, 0.5, 0.5)


def _check_frames(frames: torch.Tensor) -> None:
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [T, 3, H, W], got {frames.dtype} {tuple(frames.shape)}")
    if frames.shape[0] < 1:
        raise ValueError("frames is empty: need at least one frame")


def resize_uint8(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic antialiased resize of uint8 [T, 3, H, W] to uint8 values (returned as float32),
    by torchvision's per-device rule, so the pixels equal HF's processors on either device:
    on CPU torch's native uint8 kernel (fixed point, rounded and clamped between its two
    separable passes); elsewhere a float resize, then clamped and rounded."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames.float()
    if frames.device.type == "cpu":
        return F.interpolate(frames, size=size, mode="bicubic", align_corners=False, antialias=True).float()
    x = F.interpolate(frames.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
    return x.clamp_(0, 255).round_()


def patchify(videos: torch.Tensor, vision: QwenVision | QwenImageVision) -> torch.Tensor:
    """[T2, C, H, W] (T2 a multiple of the temporal patch) -> [T2/tp * H/p * W/p, C*tp*p*p]."""
    t2, c, h, w = videos.shape
    tp, p, m = vision.temporal_patch_size, vision.patch_size, vision.merge_size
    gt, gh, gw = t2 // tp, h // p, w // p
    x = videos.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * tp * p * p)


def to_qwen_pixels(frames: torch.Tensor, vision: QwenVision = QwenVision()
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """frames uint8 [T, 3, H, W] -> (pixel_values_videos float32 [t*gh*gw, 3*2*16*16],
    video_grid_thw int64 [3] = (t, gh, gw)). Each frame is duplicated into its own temporal
    patch, so t = T; with vision.pair_frames consecutive frames share one (the last repeated when
    T is odd, as HF's processor), t = ceil(T / 2). Size from `qwen_frame_size`."""
    _check_frames(frames)
    t = frames.shape[0]
    size = qwen_frame_size(t, frames.shape[2], frames.shape[3], vision)
    x = _normalise(resize_uint8(frames, size))
    if vision.pair_frames:
        x = torch.cat([x, x[-1:].expand(-t % vision.temporal_patch_size, -1, -1, -1)])
        t = x.shape[0] // vision.temporal_patch_size
    else:
        x = x.repeat_interleave(vision.temporal_patch_size, dim=0)
    grid = torch.tensor([t, size[0] // vision.patch_size, size[1] // vision.patch_size], dtype=torch.long)
    return patchify(x, vision), grid


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1) * 255.0
    return (x - mean) / std


def to_qwen_image_pixels(image: torch.Tensor, vision: QwenImageVision = QwenImageVision()
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """image uint8 [1, 3, H, W] -> (pixel_values float32 [gh*gw, 3*2*16*16], image_grid_thw
    int64 [3] = (1, gh, gw)), as Qwen's image processor: resized by `qwen_image_size`, the
    image repeated over the temporal patch."""
    _check_frames(image)
    if image.shape[0] != 1:
        raise ValueError(f"an image is one frame, got {image.shape[0]}")
    size = qwen_image_size(image.shape[2], image.shape[3], vision)
    x = _normalise(resize_uint8(image, size)).repeat_interleave(vision.temporal_patch_size, dim=0)
    grid = torch.tensor([1, size[0] // vision.patch_size, size[1] // vision.patch_size], dtype=torch.long)
    return patchify(x, vision), grid


def to_teacher_frames(frames: torch.Tensor, longest: int = 504, multiple: int = 28) -> torch.Tensor:
    """frames uint8 [T, 3, H, W] -> float32 [T, 3, H', W'] in [0, 1] at `teacher_frame_size`
    (VGGT: longest edge 504, other edge a multiple of 28): resized to uint8 values by
    `resize_uint8`, then / 255, as VGGT's own loader does with PIL's bicubic (within 2 levels on
    CPU)."""
    _check_frames(frames)
    size = teacher_frame_size(frames.shape[2], frames.shape[3], longest, multiple)
    return resize_uint8(frames, size) / 255.0
