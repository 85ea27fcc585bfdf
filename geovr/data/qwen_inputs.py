"""`QwenTransform`: a decoded `Sample` -> one model-ready sample dict; `collate` pads a batch.

One sample dict holds (shapes per sample; L tokens, T frames, gh x gw patches per frame):
  input_ids, labels, mm_token_type_ids  int64 [L]
  pixel_values_videos                   float32 [T*gh*gw, 3*2*16*16]   (video records)
  video_grid_thw                        int64 [1, 3] = (T, gh, gw)
  pixel_values, image_grid_thw          the same for an image record (T = 1, no timestamps)
  teacher_frames                        float32 [T, 3, H', W'] in [0, 1]
  frame_indices, timestamps_s, id, kind, position (epoch, index)
Everything runs on the frames' device (the GPU after DALI's GPU decoder).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .chat import IGNORE_INDEX, SampleRejected, tokenize_conversation
from .dataset import Dropped, Sample
from .qwen_pixels import to_qwen_image_pixels, to_qwen_pixels, to_teacher_frames
from .sampling import QwenImageVision, QwenVision


@dataclass
class QwenTransform:
    """tokenizer: a HF fast tokenizer with a Qwen3-VL-style chat template. max_length: the
    release's 16k-token cap (longer samples are skipped as "too_long")."""

    tokenizer: object
    vision: QwenVision = QwenVision()
    image_vision: QwenImageVision = QwenImageVision()
    teacher_longest: int = 504
    teacher_multiple: int = 28
    max_length: int | None = 16384

    def __call__(self, sample: Sample) -> dict:
        rec, frames = sample.record, sample.frames
        if rec.kind == "video":
            pixels, grid = to_qwen_pixels(frames.data, self.vision)
            timestamps = [i / frames.info.fps for i in frames.indices]  # as HF: index / average fps
            media = {"pixel_values_videos": pixels, "video_grid_thw": grid.view(1, 3)}
        elif rec.kind == "image":
            pixels, grid = to_qwen_image_pixels(frames.data[:1], self.image_vision)
            timestamps = None
            media = {"pixel_values": pixels, "image_grid_thw": grid.view(1, 3)}
        else:
            raise SampleRejected(rec.id, f"unknown media kind {rec.kind!r}", "unsupported")
        text = tokenize_conversation(self.tokenizer, rec.turns, grid, timestamps, item=rec.id,
                                     max_length=self.max_length, merge_size=self.vision.merge_size)
        return {
            **text,
            **media,
            "teacher_frames": to_teacher_frames(frames.data, self.teacher_longest, self.teacher_multiple),
            "frame_indices": list(frames.indices),
            "timestamps_s": list(frames.timestamps_s),
            "id": rec.id,
            "kind": rec.kind,
            "position": sample.position,
        }


def batch_to(batch: dict, device: torch.device) -> dict:
    """A collated batch with its tensors (and teacher frames) on `device` (non-blocking copies)."""
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device, non_blocking=True)
        elif k == "teacher_frames":
            out[k] = [x.to(device, non_blocking=True) for x in v]
        else:
            out[k] = v
    return out


def collate(items: list, pad_token_id: int = 0) -> dict:
    """Right-pad token tensors to the longest sample ([B, L]; labels padded with IGNORE_INDEX,
    attention_mask 0 on padding), concatenate vision patches and grids in sample order (as the HF
    processor does for a batch; video and image keys only when the batch has such samples), keep
    teacher frames as a list (sizes differ).

    items: QwenTransform outputs and `Dropped` (bad records), which are left out: "skipped" holds
    their skips, "kept" marks each item kept or not in order, "positions" covers every item (the
    resume point moves past the dropped ones too). Every item dropped: the batch has no sample
    keys, only "ids" (empty), "positions", "skipped" and "kept"."""
    if not items:
        raise ValueError("collate got an empty batch")
    samples = [s for s in items if not isinstance(s, Dropped)]
    meta = {"positions": [tuple(s.position) if isinstance(s, Dropped) else tuple(s["position"]) for s in items],
            "skipped": [s.skip for s in items if isinstance(s, Dropped)],
            "kept": [not isinstance(s, Dropped) for s in items]}
    if not samples:
        return {"ids": [], **meta}
    length = max(len(s["input_ids"]) for s in samples)
    b = len(samples)
    ids = torch.full((b, length), pad_token_id, dtype=torch.long)
    labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long)
    mm = torch.zeros((b, length), dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.long)
    for i, s in enumerate(samples):
        n = len(s["input_ids"])
        ids[i, :n], labels[i, :n], mm[i, :n], mask[i, :n] = s["input_ids"], s["labels"], s["mm_token_type_ids"], 1
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels, "mm_token_type_ids": mm}
    for pixels, grid in (("pixel_values_videos", "video_grid_thw"), ("pixel_values", "image_grid_thw")):
        having = [s for s in samples if pixels in s]
        if having:
            out[pixels] = torch.cat([s[pixels] for s in having])
            out[grid] = torch.cat([s[grid] for s in having])
    return {
        **out,
        "teacher_frames": [s["teacher_frames"] for s in samples],
        "frame_indices": [s["frame_indices"] for s in samples],
        "timestamps_s": [s["timestamps_s"] for s in samples],
        "ids": [s["id"] for s in samples],
        **meta,
    }
