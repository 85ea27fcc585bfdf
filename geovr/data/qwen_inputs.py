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

from .chat import IGNORE_INDEX, VISION_END, SampleRejected, tokenize_conversation
from .dataset import Dropped, GroupSample, Sample
from .packing import PADDING, PackStats, pack_samples
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
        media = self._media(sample)
        return self._sample(sample.record, media, sample)

    def pack(self, group: "GroupSample") -> tuple[list[dict], PackStats]:
        """K records about one video (`GroupSample`: their frames decoded once) -> packed sample
        dicts (`geovr.data.packing.pack_samples`): the pixels and teacher frames computed once and
        shared, each record tokenized alone, the shared prefix verified token by token. A record
        rejected alone (too long) raises SampleRejected only when it is the group's only one;
        otherwise it is left out and returned in the stats' `rejected`."""
        first = Sample(group.records[0], group.frames, group.position)
        media = self._media(first)
        samples, rejected = [], []
        for rec in group.records:
            try:
                samples.append(self._sample(rec, media, Sample(rec, group.frames, group.position)))
            except SampleRejected as err:
                rejected.append((rec, err))
        if not samples:
            raise rejected[0][1]
        end_id = self.tokenizer.convert_tokens_to_ids(VISION_END)
        packed, stats = pack_samples(samples, end_id, self.max_length)
        stats.rejected = rejected
        return packed, stats

    def _media(self, sample: Sample) -> dict:
        """The pixels, grid, timestamps and teacher frames of a sample's media (shared by every
        record about it)."""
        rec, frames = sample.record, sample.frames
        if rec.kind == "video":
            pixels, grid = to_qwen_pixels(frames.data, self.vision)
            timestamps = [i / frames.info.fps for i in frames.indices]  # as HF: index / average fps
            tensors = {"pixel_values_videos": pixels, "video_grid_thw": grid.view(1, 3)}
        elif rec.kind == "image":
            pixels, grid = to_qwen_image_pixels(frames.data[:1], self.image_vision)
            timestamps = None
            tensors = {"pixel_values": pixels, "image_grid_thw": grid.view(1, 3)}
        else:
            raise SampleRejected(rec.id, f"unknown media kind {rec.kind!r}", "unsupported")
        return {"tensors": tensors, "grid": grid, "timestamps": timestamps,
                "teacher_frames": to_teacher_frames(frames.data, self.teacher_longest, self.teacher_multiple)}

    def _sample(self, rec, media: dict, sample: Sample) -> dict:
        text = tokenize_conversation(self.tokenizer, rec.turns, media["grid"], media["timestamps"], item=rec.id,
                                     max_length=self.max_length, merge_size=self.vision.merge_size)
        frames = sample.frames
        return {
            **text,
            **media["tensors"],
            "teacher_frames": media["teacher_frames"],
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
    keys, only "ids" (empty), "positions", "skipped" and "kept". An item may be a list (what one
    key of a video group yields: packed sequences and dropped records), taken in order.

    Packed sequences (`geovr.data.packing`): "segments" [B, L] (0 for a plain sample, -1 on
    padding) when any sample is packed; "qa_ids" and "qa_counts" (the records each sequence
    carries; [id] and 1 for a plain sample) always; "unshared" the records that went alone."""
    if not items:
        raise ValueError("collate got an empty batch")
    items = [x for item in items for x in (item if isinstance(item, list) else [item])]
    samples = [s for s in items if not isinstance(s, Dropped)]
    meta = {"positions": [tuple(s.position) if isinstance(s, Dropped) else tuple(s["position"]) for s in items],
            "skipped": [s.skip for s in items if isinstance(s, Dropped)],
            "kept": [not isinstance(s, Dropped) for s in items]}
    if not samples:
        return {"ids": [], "qa_counts": [], **meta}
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
    if any("segments" in s for s in samples):
        segments = torch.full((b, length), PADDING, dtype=torch.long)
        for i, s in enumerate(samples):
            n = len(s["input_ids"])
            segments[i, :n] = s["segments"] if "segments" in s else 0
        out["segments"] = segments
    for pixels, grid in (("pixel_values_videos", "video_grid_thw"), ("pixel_values", "image_grid_thw")):
        having = [s for s in samples if pixels in s]
        if having:
            out[pixels] = torch.cat([s[pixels] for s in having])
            out[grid] = torch.cat([s[grid] for s in having])
    qa_ids = [list(s.get("qa_ids", [s["id"]])) for s in samples]
    return {
        **out,
        "teacher_frames": [s["teacher_frames"] for s in samples],
        "frame_indices": [s["frame_indices"] for s in samples],
        "timestamps_s": [s["timestamps_s"] for s in samples],
        "ids": [s["id"] for s in samples],
        "qa_ids": qa_ids,
        "qa_counts": [len(q) for q in qa_ids],
        "unshared": sum(int(s.get("unshared", 0)) for s in samples),
        **meta,
    }
