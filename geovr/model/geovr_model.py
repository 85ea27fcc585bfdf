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
import torch.nn.functional as F
from torch import nn

from .attention import packed_mask, set_attention
from .config import GeoVRConfig
from .heads import AlignProjector, CameraHead, DPTDepthHead, ScaleHead
from .heads.batching import concat_batched, dense_heads, slot_keys
from .layer_map import layer_map
from .taps import tap_layers
from .geo_inputs import GeoInputs, plan_geo_inputs, video_slots, write_geometry_embeds


@dataclass
class GeoOutputs:
    """loss_text: the cross-entropy on the labels (HF's); logits: [B, L', V], or with
    `text_logits="supervised"` and labels only the [N, V] rows of `GeoInputs.text_positions`. For the video samples (in
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
        self.attention = "sdpa"  # how a packed batch's mask reaches the LLM (`use_attention`)
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

    def use_attention(self, kind: str) -> None:
        """Run the LLM's attention with "sdpa" or "flex" (`geovr.model.attention`): the kernel,
        and the form of a packed batch's mask."""
        set_attention(self.base, kind)
        self.attention = kind

    # ------------------------------------------------------------------ inputs
    def plan(self, batch: dict) -> GeoInputs:
        """The GeoVR sequence of a collated batch (M-RoPE positions, inserted slots, labels, the
        supervised positions): integer work with Python loops, on the batch's device. The trainer
        runs it on the CPU batch before the copy to the GPU, so the step has no host syncs for it."""
        ids, mask, mm = batch["input_ids"], batch["attention_mask"], batch["mm_token_type_ids"]
        rope = self.base.model.get_rope_index(ids, mm, batch.get("image_grid_thw"), batch.get("video_grid_thw"), mask)[0]
        return plan_geo_inputs(batch, rope, self.cfg.camera, self.cfg.scale)

    def build_inputs(self, batch: dict, geo: GeoInputs | None = None) -> tuple[dict, GeoInputs]:
        """HF's inputs (inputs_embeds, attention_mask, position_ids [3, B, L'], labels) and the plan
        (`plan(batch)` unless given, on the device of the embeddings). The mask is the padding mask
        [B, L'], or for a packed batch the segment rule of `geovr.model.attention`."""
        device = self.base.get_input_embeddings().weight.device
        geo = (geo if geo is not None else self.plan(batch)).to(device)
        embeds = write_geometry_embeds(self.base.get_input_embeddings()(geo.input_ids), geo.plans,
                                       self.camera_embed, self.scale_embed)
        mask = geo.attention_mask if geo.segments is None else packed_mask(geo.segments, self.attention)
        inputs = {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": geo.position_ids,
                  "labels": geo.labels}
        return inputs, geo

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict, teacher_sizes: list[tuple[int, int]] | None = None,
                num_items_in_batch: torch.Tensor | int | None = None, geo: GeoInputs | None = None) -> GeoOutputs:
        """teacher_sizes: (H', W') per video sample (default: from batch["teacher_frames"]).
        num_items_in_batch: when given, loss_text = summed token cross-entropy / this count (HF's
        convention; the trainer passes the whole step's answer-token count) instead of the mean.
        geo: `plan(batch)`, when the caller made it already (on the CPU)."""
        inputs, geo = self.build_inputs(batch, geo)
        media = {k: batch[k] for k in ("pixel_values_videos", "video_grid_thw", "pixel_values", "image_grid_thw")
                 if batch.get(k) is not None}
        taps = sorted(set(self.layer_map.values()))
        lm = self.base.model.language_model
        with tap_layers(lm.layers, lm.norm, taps, final=self.cfg.camera or self.cfg.scale) as store:
            loss, logits = self._text(inputs, media, geo, num_items_in_batch)
        result = GeoOutputs(loss_text=loss, logits=logits, taps=sum(1 for k in store if k != "final"))
        if not self.cfg.any_on:
            return result
        merge = self.base.config.vision_config.spatial_merge_size
        slots = video_slots(batch, geo, merge, teacher_sizes)
        result.video_samples = [s.sample for s in slots]
        if not slots:
            result.features = {g: [] for g in self.cfg.teacher_layers} if self.cfg.align else {}
            return result
        grids = [{k: store[k][s.sample, s.video_pos].reshape(*s.grid, self.dim) for k in taps} for s in slots]
        keys = slot_keys(slots)  # one head call per group of equal keys
        if self.cfg.camera:
            result.pose = concat_batched(self.camera_head, [store["final"][s.sample, s.camera_pos] for s in slots])
        if self.cfg.scale:
            result.scale = self.scale_head(torch.stack([store["final"][s.sample, s.scale_pos[0]] for s in slots]))
        if not (self.cfg.depth or self.cfg.align):  # camera and/or scale only: no grid taps, no dense heads
            return result
        depth, features = dense_heads(grids, keys, self.depth_head if self.cfg.depth else None,
                                      [self.layer_map[g] for g in self.cfg.teacher_layers], self.projectors,
                                      list(self.cfg.teacher_layers) if self.cfg.align else [], self.layer_map,
                                      self.cfg.pooled_size)
        if self.cfg.depth:
            result.depth = depth
        if self.cfg.align:
            result.features = features
        return result

    def _text(self, inputs: dict, media: dict, geo: GeoInputs, num_items_in_batch) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(loss_text, logits). "all": HF's forward as is (logits at every position). "supervised"
        with labels: the LLM body, then the LM head and HF's cross-entropy (fp32 logits, sum /
        num_items_in_batch or the mean) on the supervised positions only."""
        inputs = {"use_cache": False, **inputs}  # one pass over whole sequences: no KV cache to fill
        if self.cfg.text_logits == "all" or geo.labels is None:
            extra = {"num_items_in_batch": num_items_in_batch} if num_items_in_batch is not None else {}
            out = self.base(**inputs, **media, **extra)
            return out.loss, out.logits
        body = {k: v for k, v in inputs.items() if k != "labels"}
        hidden = self.base.model(**body, **media).last_hidden_state
        where = geo.text_positions
        logits = self.base.lm_head(hidden[where[:, 0], where[:, 1]])
        if num_items_in_batch is None:
            return F.cross_entropy(logits.float(), geo.text_targets), logits
        loss = F.cross_entropy(logits.float(), geo.text_targets, reduction="sum")
        count = num_items_in_batch.to(loss.device) if torch.is_tensor(num_items_in_batch) else num_items_in_batch
        return loss / count, logits
