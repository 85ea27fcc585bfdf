"""The GeoVR sequence of a collated batch, shared by the HF wrapper and the Megatron backend.

`plan_geo_inputs` inserts the camera/scale slots (`tokens.py`) into every sample: new token ids
(0 in the slots), attention mask, labels (ignored in the slots) and M-RoPE positions (copied from
the original tokens). `write_geometry_embeds` puts the learned camera/scale embeddings into the
slots of an embedded sequence. `video_slots` says, per video sample, where its visual tokens,
camera tokens and scale token are and the merged grid its visual tokens form.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..data.packing import PADDING, restart_positions
from .tokens import CAMERA_FIRST, CAMERA_LATER, IGNORE_INDEX, SCALE, Inserted, frame_runs, insert_geometry_tokens


@dataclass
class GeoInputs:
    """input_ids, attention_mask, labels [B, L']; position_ids [3, B, L']; plans: one `Inserted`
    per sample; frames: the frame count of each video of each sample. text_positions [N, 2]
    (sample, position) of the N positions whose next token is supervised, text_targets [N] those
    tokens (None without labels): where the LM head has to run in training. videos: per video
    sample (batch index, its (t, gh, gw) patch grid as ints, the positions in L' of its visual
    tokens), so that `video_slots` needs nothing from the device. segments [B, L'] (packed
    batches only, `geovr.data.packing`): 0 on the shared prefix and its camera/scale slots, k on
    suffix k, -1 on padding; None for a batch of plain samples."""

    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor | None
    position_ids: Tensor
    plans: list[Inserted]
    frames: list[list[int]]
    text_positions: Tensor | None = None
    text_targets: Tensor | None = None
    videos: list[tuple[int, tuple[int, int, int], Tensor]] = field(default_factory=list)
    segments: Tensor | None = None

    def to(self, device: torch.device | str) -> "GeoInputs":
        """The tensors on `device` (non-blocking; the plans and grids stay on the host)."""
        move = lambda x: x.to(device, non_blocking=True) if x is not None else None  # noqa: E731
        return GeoInputs(move(self.input_ids), move(self.attention_mask), move(self.labels), move(self.position_ids),
                         self.plans, self.frames, move(self.text_positions), move(self.text_targets),
                         [(i, grid, move(pos)) for i, grid, pos in self.videos], move(self.segments))


def next_tokens(labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """labels [B, L] (HF's: the token at each position, ignore_index where no loss) -> what each
    position predicts [B, L]: the next position's label (ignore_index at the end)."""
    nxt = torch.full_like(labels, ignore_index)
    nxt[:, :-1] = labels[:, 1:]
    return nxt


def supervised_positions(labels: Tensor) -> tuple[Tensor, Tensor]:
    """labels [B, L] (HF's: the token at each position, IGNORE_INDEX where no loss) -> (positions
    [N, 2] (sample, position) whose next token is supervised, row-major; those next tokens [N])."""
    nxt = next_tokens(labels)
    positions = torch.nonzero(nxt != IGNORE_INDEX)
    return positions, nxt[positions[:, 0], positions[:, 1]]


@dataclass
class VideoSlot:
    """One video sample: its batch index; merged grid (t, h, w); positions in L' of its visual
    tokens [t*h*w] (row-major), camera tokens [t] and scale token [1]; the teacher's (H', W')."""

    sample: int
    grid: tuple[int, int, int]
    video_pos: Tensor
    camera_pos: Tensor
    scale_pos: Tensor
    size: tuple[int, int]


def videos_per_sample(batch: dict) -> list[list[int]]:
    """Frames of each video of each sample (a sample holds at most one video here)."""
    b = batch["input_ids"].shape[0]
    grids = batch.get("video_grid_thw")
    out, k = [], 0
    for i in range(b):
        n_video = int((batch["mm_token_type_ids"][i] == 2).any())
        out.append([int(grids[k + j][0]) for j in range(n_video)] if grids is not None else [])
        k += n_video
    return out


def plan_geo_inputs(batch: dict, rope: Tensor, camera: bool, scale: bool) -> GeoInputs:
    """batch: collated; rope: the original tokens' M-RoPE positions [3, B, L] (HF's get_rope_index;
    a packed batch's suffixes are renumbered here as in their own samples)."""
    ids, mask, mm = batch["input_ids"], batch["attention_mask"], batch["mm_token_type_ids"]
    labels, segments = batch.get("labels"), batch.get("segments")
    frames = videos_per_sample(batch)
    plans = []
    for i in range(ids.shape[0]):
        n = int(mask[i].sum())
        runs = frame_runs(mm[i, :n], frames[i]) if frames[i] else []
        plans.append(insert_geometry_tokens(n, runs, camera, scale))
    length = max(len(p.src) for p in plans)
    b = ids.shape[0]
    new_ids = torch.zeros(b, length, dtype=ids.dtype, device=ids.device)
    new_mask = torch.zeros(b, length, dtype=mask.dtype, device=ids.device)
    new_labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long, device=ids.device)
    pos = torch.zeros(3, b, length, dtype=rope.dtype, device=ids.device)
    new_segments = torch.full((b, length), PADDING, dtype=torch.long, device=ids.device) if segments is not None else None
    for i, p in enumerate(plans):
        m, src = len(p.src), p.src.to(ids.device)
        orig = p.original.to(ids.device)
        new_ids[i, :m] = torch.where(orig, ids[i, src], torch.zeros_like(src))
        new_mask[i, :m] = 1
        if labels is not None:
            new_labels[i, :m] = torch.where(orig, labels[i, src], torch.full_like(src, IGNORE_INDEX))
        rope_i = rope[:, i]
        if segments is not None:  # inserted slots sit in the prefix: they take its segment, 0
            rope_i = restart_positions(rope_i, segments[i])
            new_segments[i, :m] = segments[i, src]
        pos[:, i, :m] = rope_i[:, src]
    grids = batch.get("video_grid_thw")
    videos = []
    for i, p in enumerate(plans):
        if frames[i]:
            grid = tuple(int(v) for v in grids[len(videos)])
            video_pos = torch.nonzero(p.original & (mm[i, p.src.to(mm.device)].cpu() == 2)).flatten()
            videos.append((i, grid, video_pos))
    if labels is None:
        return GeoInputs(new_ids, new_mask, None, pos, plans, frames, videos=videos, segments=new_segments)
    return GeoInputs(new_ids, new_mask, new_labels, pos, plans, frames, *supervised_positions(new_labels), videos,
                     new_segments)


def pad_geo_inputs(geo: GeoInputs, multiple: int) -> GeoInputs:
    """`geo` right-padded so that L' is a multiple of `multiple` (sequence parallelism splits the
    sequence over the TP ranks): pad tokens are id 0, masked out, ignored by the loss."""
    b, length = geo.input_ids.shape
    extra = -length % multiple
    if not extra:
        return geo

    def pad(x: Tensor, value) -> Tensor:
        return torch.cat([x, x.new_full((*x.shape[:-1], extra), value)], dim=-1)

    return GeoInputs(pad(geo.input_ids, 0), pad(geo.attention_mask, 0),
                     pad(geo.labels, IGNORE_INDEX) if geo.labels is not None else None, pad(geo.position_ids, 0),
                     geo.plans, geo.frames, geo.text_positions, geo.text_targets, geo.videos,
                     pad(geo.segments, PADDING) if geo.segments is not None else None)


def write_geometry_embeds(embeds: Tensor, plans: list[Inserted], camera_embed: nn.Embedding | None,
                          scale_embed: nn.Embedding | None, seq_first: bool = False) -> Tensor:
    """embeds [B, L', H] (or [L', B, H] with seq_first) with the camera/scale rows written into the
    slots (a new tensor; `embeds` itself when there is no table)."""
    if camera_embed is None and scale_embed is None:
        return embeds
    embeds = embeds.clone()
    view = embeds.transpose(0, 1) if seq_first else embeds
    for i, p in enumerate(plans):
        kind = p.kind.to(embeds.device)
        for k, table, row in ((CAMERA_FIRST, camera_embed, 0), (CAMERA_LATER, camera_embed, 1), (SCALE, scale_embed, 0)):
            where = torch.nonzero(kind == k).flatten()
            if len(where) and table is not None:
                view[i, where] = table.weight[row].to(embeds.dtype)
    return embeds


def video_slots(batch: dict, geo: GeoInputs, merge: int, teacher_sizes: list[tuple[int, int]] | None = None) -> list[VideoSlot]:
    """The video samples in batch order, from the plan (no device reads). teacher_sizes: (H', W')
    per video sample (default: the shape of batch["teacher_frames"][i])."""
    out = []
    for n, (i, (t, gh, gw), video_pos) in enumerate(geo.videos):
        size = teacher_sizes[n] if teacher_sizes else tuple(batch["teacher_frames"][i].shape[-2:])
        p = geo.plans[i]
        out.append(VideoSlot(i, (t, gh // merge, gw // merge), video_pos, p.camera_positions(), p.scale_positions(),
                             size))
    return out
