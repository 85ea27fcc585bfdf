"""The LLM's attention for packed sequences: each suffix sees the shared prefix and itself only.

A packed batch carries `segments` [B, L] (`geovr.data.packing`: 0 on the shared prefix, k on
suffix k, -1 on padding). Query q may attend to key k when

    k <= q  and  k is not padding  and  (segment[k] == 0 or segment[k] == segment[q])

(a padding query sees the prefix: its row is never empty, and its output is never used).
Two ways to hand that to HF's Qwen3-VL, chosen by `model.attention`:
- "sdpa": a boolean [B, 1, L, L] mask through SDPA (CPU and GPU; HF takes a 4-D mask as it is);
- "flex": a `BlockMask` from the same rule through `torch.nn.attention.flex_attention` (GPU:
  blocks no segment reaches are skipped, the [L, L] mask never exists);
- "auto": for a run that packs, flex on CUDA when it imports, else sdpa; for one that does not,
  the model's own setting.
Unpacked batches keep HF's own 2-D padding mask (under either kernel).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.packing import PADDING, PREFIX

ATTENTION = ("auto", "sdpa", "flex")
HF_NAMES = {"sdpa": "sdpa", "flex": "flex_attention"}


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import create_block_mask  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_attention(choice: str, device: torch.device | str, packed: bool = True) -> str | None:
    """"sdpa" or "flex" for `choice` on `device`; auto: flex for packed batches on CUDA when
    available, sdpa for packed batches elsewhere, and None (the model's own setting, untouched)
    for a run without packing."""
    if choice not in ATTENTION:
        raise ValueError(f"attention {choice!r}: choose from {list(ATTENTION)}")
    if choice == "auto":
        if not packed:
            return None
        return "flex" if torch.device(device).type == "cuda" and flex_available() else "sdpa"
    if choice == "flex" and not flex_available():
        raise ValueError("attention flex: torch.nn.attention.flex_attention is not available in this torch")
    return choice


def set_attention(base: nn.Module, kind: str) -> None:
    """Run the LLM's decoder layers of a Qwen3-VL `base` with `kind` ("sdpa" | "flex"); the vision
    tower keeps its own."""
    text = base.config.text_config
    text._attn_implementation = HF_NAMES[kind]
    lm = getattr(getattr(base, "model", None), "language_model", None)
    if lm is not None and lm.config is not text:
        lm.config._attn_implementation = HF_NAMES[kind]


def allowed(q_seg: Tensor, k_seg: Tensor, q_idx: Tensor, k_idx: Tensor) -> Tensor:
    """The packing rule (module docstring) on broadcastable segment ids and positions."""
    return (k_idx <= q_idx) & (k_seg != PADDING) & ((k_seg == PREFIX) | (k_seg == q_seg))


def segment_mask(segments: Tensor) -> Tensor:
    """segments [B, L] -> bool [B, 1, L, L], True where a query (row) may attend to a key."""
    idx = torch.arange(segments.shape[1], device=segments.device)
    return allowed(segments[:, :, None], segments[:, None, :], idx[:, None], idx[None, :])[:, None]


def allowed_pairs(segments: Tensor) -> int:
    """The (query, key) pairs the rule allows in segments [B, L], from the segments' lengths (no
    [L, L] mask): a prefix of P tokens P (P + 1) / 2, a suffix of s tokens s P + s (s + 1) / 2, a
    padding token P. The share of the score matrix a block-sparse kernel has to compute, at best."""
    total = 0
    for row in segments.tolist():
        prefix = sum(1 for x in row if x == PREFIX)
        total += prefix * (prefix + 1) // 2
        counts: dict[int, int] = {}
        for x in row:
            if x != PREFIX:
                counts[x] = counts.get(x, 0) + 1
        for seg, n in counts.items():
            total += n * prefix if seg == PADDING else n * prefix + n * (n + 1) // 2
    return total


def segment_block_mask(segments: Tensor):
    """segments [B, L] -> a flex_attention `BlockMask` of the same rule (built on the segments' device)."""
    from torch.nn.attention.flex_attention import create_block_mask

    seg = segments

    def mask_mod(b, h, q_idx, kv_idx):
        return allowed(seg[b, q_idx], seg[b, kv_idx], q_idx, kv_idx)

    b, length = seg.shape
    return create_block_mask(mask_mod, b, None, length, length, device=seg.device)


def packed_mask(segments: Tensor, kind: str):
    """The attention mask HF gets for a packed batch under `kind` ("sdpa" | "flex")."""
    return segment_block_mask(segments) if kind == "flex" else segment_mask(segments)
