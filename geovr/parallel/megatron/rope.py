"""Qwen3-VL's interleaved M-RoPE as the rotation angles megatron-core's attention applies.

Position ids are [3, B, S] (temporal, height, width; HF's `get_rope_index`). Frequency j of the
head_dim/2 frequencies rotates by the temporal position, except j = 1, 4, 7, ... (< 3*sections[1])
by the height and j = 2, 5, 8, ... (< 3*sections[2]) by the width: the three axes interleave
instead of taking contiguous blocks (Qwen2-VL's M-RoPE). The angles are duplicated over both halves
of the head (rotate-half convention), the layout Megatron's `apply_rotary_pos_emb` expects.
"""
from __future__ import annotations

import torch


def inverse_frequencies(head_dim: int, theta: float) -> torch.Tensor:
    """[head_dim/2] fp32."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


def mrope_angles(position_ids: torch.Tensor, head_dim: int, theta: float,
                 sections: tuple[int, int, int]) -> torch.Tensor:
    """position_ids [3, B, S] (or [B, S]: text only) -> angles [S, B, 1, head_dim] fp32."""
    if position_ids.dim() == 2:
        position_ids = position_ids.unsqueeze(0).expand(3, -1, -1)
    if sum(sections) != head_dim // 2:
        raise ValueError(f"mrope_section {list(sections)} must sum to head_dim/2 = {head_dim // 2}")
    inv = inverse_frequencies(head_dim, theta).to(position_ids.device)
    per_axis = position_ids.float()[..., None] * inv  # [3, B, S, D/2]
    angles = per_axis[0].clone()
    for axis in (1, 2):
        idx = slice(axis, 3 * sections[axis], 3)
        angles[..., idx] = per_axis[axis, ..., idx]
    angles = torch.cat((angles, angles), dim=-1)  # [B, S, D]
    return angles.transpose(0, 1).unsqueeze(2).contiguous()
