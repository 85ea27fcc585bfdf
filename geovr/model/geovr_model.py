"""`GeoVRModel`: HF `Qwen3VLForConditionalGeneration` + camera/scale tokens, layer taps and heads.

forward(batch) takes the collated batch of `geovr.data.qwen_inputs.collate` and returns
`GeoOutputs`: the text loss and logits plus, per video sample, the predicted pose encodings,
depth maps, metric scale and projected features, ready for `geovr.losses`. The HF model is used
as is: the wrapper builds `inputs_embeds` (with the learned camera/scale embeddings in the inserted
slots) and M-RoPE `position_ids` (HF's own `get_rope_index` on the original tokens, copied to the
inserted ones) and hands them to HF's forward, which encodes the pixels and applies DeepStack
(inserted tokens are not visual: residual 0). With every part off it is plain Qwen3-VL.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .config import GeoVRConfig
from .heads import AlignProjector, CameraHead, DPTDepthHead, ScaleHead
from .layer_map import layer_map
from .taps import tap_layers
from .tokens import CAMERA_FIRST, CAMERA_LATER, IGNORE_INDEX, SCALE, frame_runs, insert_geometry_tokens


@dataclass
class GeoOutputs:
    """loss_text: HF's cross-entropy on the labels; logits [B, L', V]. For the video samples (in
    batch order, `video_samples` their batch indices): pose [T, 9], depth [T, H', W'], scale [Bv],
    features {teacher layer: [T, H'/28, W'/28, C]}. taps: how many hidden states were kept."""

    loss_text: torch.Tensor | None
    logits: torch.Tensor
    video_samples: list[int] = field(default_factory=list)
    pose: list[torch.Tensor] = field(default_factory=list)
    depth: list[torch.Tensor] = field(default_factory=list)
    scale: torch.Tensor | None = None
    features: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    taps: int = 0


class GeoVRModel(nn.Module):
    """base: a `Qwen3VLForConditionalGeneration` (tiny random or loaded from a local path)."""

    def __init__(self, base: nn.Module, cfg: GeoVRConfig = GeoVRConfig.paper()):
        super().__init__()
        self.base, self.cfg = base, cfg
        text = base.config.text_config
        self.dim, self.n_layers = text.hidden_size, text.num_hidden_layers
        self.layer_map = layer_map(cfg.teacher_layers, cfg.teacher_depth, self.n_layers) if (cfg.depth or cfg.align) else {}
        d = self.dim
        self.camera_embed = nn.Embedding(2, d) if cfg.camera else None
        self.scale_embed = nn.Embedding(1, d) if cfg.scale else None
        self.camera_head = CameraHead(d, cfg.camera_hidden) if cfg.camera else None
        self.scale_head = ScaleHead(d, cfg.scale_hidden) if cfg.scale else None
        self.depth_head = DPTDepthHead(d, cfg.dpt_channels, cfg.dpt_features, 2 * cfg.teacher_patch) if cfg.depth else None
        self.projectors = nn.ModuleDict({str(g): AlignProjector(d, cfg.teacher_dim, cfg.projector_hidden)
                                         for g in cfg.teacher_layers}) if cfg.align else None
        for module in (self.camera_embed, self.scale_embed):
            if module is not None:
                nn.init.normal_(module.weight, std=0.02)

    # ------------------------------------------------------------------ inputs
    def _videos_per_sample(self, batch: dict) -> list[list[int]]:
        """Frames of each video of each sample (a sample holds at most one video here)."""
        b = batch["input_ids"].shape[0]
        grids = batch.get("video_grid_thw")
        out, k = [], 0
        for i in range(b):
            n_video = int((batch["mm_token_type_ids"][i] == 2).any())
            out.append([int(grids[k + j][0]) for j in range(n_video)] if grids is not None else [])
            k += n_video
        return out

    def build_inputs(self, batch: dict) -> tuple[dict, list, list[list[int]]]:
        """inputs_embeds, attention_mask, position_ids [3, B, L'], labels for HF; the per-sample
        insertion plans; the frames of each sample's videos."""
        ids, mask, mm = batch["input_ids"], batch["attention_mask"], batch["mm_token_type_ids"]
        labels = batch.get("labels")
        rope = self.base.model.get_rope_index(ids, mm, batch.get("image_grid_thw"), batch.get("video_grid_thw"), mask)[0]
        embed = self.base.get_input_embeddings()
        frames = self._videos_per_sample(batch)
        plans = []
        for i in range(ids.shape[0]):
            n = int(mask[i].sum())
            runs = frame_runs(mm[i, :n], frames[i]) if frames[i] else []
            plans.append(insert_geometry_tokens(n, runs, self.cfg.camera, self.cfg.scale))
        length = max(len(p.src) for p in plans)
        b = ids.shape[0]
        new_ids = torch.zeros(b, length, dtype=ids.dtype, device=ids.device)
        new_mask = torch.zeros(b, length, dtype=mask.dtype, device=ids.device)
        new_labels = torch.full((b, length), IGNORE_INDEX, dtype=torch.long, device=ids.device)
        pos = torch.zeros(3, b, length, dtype=rope.dtype, device=ids.device)
        for i, p in enumerate(plans):
            m, src = len(p.src), p.src.to(ids.device)
            orig = p.original.to(ids.device)
            new_ids[i, :m] = torch.where(orig, ids[i, src], torch.zeros_like(src))
            new_mask[i, :m] = 1
            if labels is not None:
                new_labels[i, :m] = torch.where(orig, labels[i, src], torch.full_like(src, IGNORE_INDEX))
            pos[:, i, :m] = rope[:, i, src]
        embeds = embed(new_ids)
        if self.cfg.camera or self.cfg.scale:
            embeds = embeds.clone()
            for i, p in enumerate(plans):
                kind = p.kind.to(ids.device)
                for k, table, row in ((CAMERA_FIRST, self.camera_embed, 0), (CAMERA_LATER, self.camera_embed, 1),
                                      (SCALE, self.scale_embed, 0)):
                    where = torch.nonzero(kind == k).flatten()
                    if len(where) and table is not None:
                        embeds[i, where] = table.weight[row].to(embeds.dtype)
        inputs = {"inputs_embeds": embeds, "attention_mask": new_mask, "position_ids": pos,
                  "labels": new_labels if labels is not None else None}
        return inputs, plans, frames

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict, teacher_sizes: list[tuple[int, int]] | None = None,
                num_items_in_batch: torch.Tensor | int | None = None) -> GeoOutputs:
        """teacher_sizes: (H', W') per video sample (default: from batch["teacher_frames"]).
        num_items_in_batch: when given, loss_text = summed token cross-entropy / this count (HF's
        convention; the trainer passes the whole step's answer-token count) instead of the mean."""
        inputs, plans, frames = self.build_inputs(batch)
        media = {k: batch[k] for k in ("pixel_values_videos", "video_grid_thw", "pixel_values", "image_grid_thw")
                 if batch.get(k) is not None}
        taps = sorted(set(self.layer_map.values()))
        lm = self.base.model.language_model
        with tap_layers(lm.layers, lm.norm, taps, final=self.cfg.camera or self.cfg.scale) as store:
            extra = {"num_items_in_batch": num_items_in_batch} if num_items_in_batch is not None else {}
            out = self.base(**inputs, **media, **extra)
        result = GeoOutputs(loss_text=out.loss, logits=out.logits,
                            taps=sum(1 for k in store if k != "final"))
        if not self.cfg.any_on:
            return result
        grids = batch.get("video_grid_thw")
        merge = self.base.config.vision_config.spatial_merge_size
        k_video = 0
        scales, feats = [], {g: [] for g in self.cfg.teacher_layers} if self.cfg.align else {}
        for i, p in enumerate(plans):
            if not frames[i]:
                continue
            t, gh, gw = (int(v) for v in grids[k_video])
            k_video += 1
            result.video_samples.append(i)
            size = teacher_sizes[len(result.video_samples) - 1] if teacher_sizes else tuple(batch["teacher_frames"][i].shape[-2:])
            video_pos = torch.nonzero(p.original & (batch["mm_token_type_ids"][i, p.src] == 2)).flatten()
            h, w = gh // merge, gw // merge
            layer_grid = {k: store[k][i, video_pos].reshape(t, h, w, self.dim) for k in taps}
            if self.cfg.camera:
                result.pose.append(self.camera_head(store["final"][i, p.camera_positions()]))
            if self.cfg.scale:
                scales.append(self.scale_head(store["final"][i, p.scale_positions()[0]]))
            if self.cfg.depth:
                result.depth.append(self.depth_head([layer_grid[self.layer_map[g]] for g in self.cfg.teacher_layers], size))
            if self.cfg.align:
                pooled = (size[0] // (2 * self.cfg.teacher_patch), size[1] // (2 * self.cfg.teacher_patch))
                for g in self.cfg.teacher_layers:
                    feats[g].append(self.projectors[str(g)](layer_grid[self.layer_map[g]], pooled))
        result.scale = torch.stack(scales) if scales else None
        result.features = feats
        return result
