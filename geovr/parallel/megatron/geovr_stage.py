"""`MegatronGeoVR`: the GeoVR parts around one pipeline stage of the Megatron Qwen3-VL.

Placement (a stage "owns" hidden-state index k when it runs layer k; the last stage also owns
k = L, the last layer's output; "final" is the post-norm state):
  camera / scale embeddings  first stage (written into the inserted slots of the embeddings)
  camera / scale heads       last stage (they read "final")
  alignment projector g      the stage owning its LLM layer layer_map[g]
  DPT depth head             the stage owning the deepest of its four layers; the shallower
                             layers' visual-token rows ride along in the pipeline tensor
                             ([S, B, H] + per carried layer ceil(N/B) rows of B, N = visual tokens)
Every head is replicated over the tensor-parallel ranks and reads full hidden states (under
sequence parallelism the text model gathers its taps), so their gradients agree across TP ranks;
the pipeline tensor's hidden part is then each TP rank's [S/tp, B, H] slice, the carried rows
whole. A loss computed on a non-last stage is attached to the stage's output with `AttachLoss` (megatron-core's MoE aux-loss pattern), so the
pipeline's backward reaches it; the last stage's losses go through the schedule's loss function.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from megatron.core.enums import ModelType
from megatron.core.transformer.module import MegatronModule
from torch import Tensor, nn

from ...model.config import GeoVRConfig
from ...model.geo_inputs import GeoInputs, VideoSlot, write_geometry_embeds
from ...model.heads import AlignProjector, CameraHead, DPTDepthHead, ScaleHead
from ...model.heads.batching import concat_batched, dense_heads, slot_keys
from ...model.layer_map import layer_map
from .qwen3vl import MegatronQwen3VL


class AttachLoss(torch.autograd.Function):
    """Identity on `hidden`; its backward also starts the backward of `loss` (with gradient 1)."""

    @staticmethod
    def forward(ctx, hidden: Tensor, loss: Tensor) -> Tensor:
        ctx.loss_shape, ctx.loss_dtype = loss.shape, loss.dtype
        return hidden.view_as(hidden)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, torch.ones(ctx.loss_shape, dtype=ctx.loss_dtype, device=grad.device)


@dataclass
class StagePredictions:
    """The predictions of the heads on this stage, per video sample (slot order); `features` holds
    only the teacher layers aligned here."""

    pose: list[Tensor] = field(default_factory=list)
    depth: list[Tensor] = field(default_factory=list)
    scale: Tensor | None = None
    features: dict[int, list[Tensor]] = field(default_factory=dict)


def _rows(n: int, b: int) -> int:
    return -(-n // b)


class MegatronGeoVR(MegatronModule):
    """stage: this rank's `MegatronQwen3VL`; cfg: which GeoVR parts are on and their sizes."""

    def __init__(self, stage: MegatronQwen3VL, cfg: GeoVRConfig = GeoVRConfig.paper()):
        super().__init__(config=stage.config)
        self.stage, self.cfg = stage, cfg
        self.model_type = ModelType.encoder_or_decoder
        text = stage.text
        self.dim, n_layers = text.dims.hidden, text.dims.layers
        self.first, self.last = text.pre_process, text.post_process
        self.start, self.end = min(text.layer_numbers), max(text.layer_numbers) + 1
        self.layer_map = layer_map(cfg.teacher_layers, cfg.teacher_depth, n_layers) if (cfg.depth or cfg.align) else {}
        d = self.dim
        self.camera_embed = nn.Embedding(2, d) if cfg.camera and self.first else None
        self.scale_embed = nn.Embedding(1, d) if cfg.scale and self.first else None
        for module in (self.camera_embed, self.scale_embed):
            if module is not None:
                nn.init.normal_(module.weight, std=0.02)
        self.camera_head = CameraHead(d, cfg.camera_hidden) if cfg.camera and self.last else None
        self.scale_head = ScaleHead(d, cfg.scale_hidden) if cfg.scale and self.last else None
        self.depth_taps = [self.layer_map[g] for g in cfg.teacher_layers] if cfg.depth else []
        deepest = max(self.depth_taps) if self.depth_taps else -1
        self.depth_head = (DPTDepthHead(d, cfg.dpt_channels, cfg.dpt_features, 2 * cfg.teacher_patch)
                           if cfg.depth and self.owns(deepest) else None)
        self.aligned = [g for g in cfg.teacher_layers if cfg.align and self.owns(self.layer_map[g])]
        self.projectors = nn.ModuleDict({str(g): AlignProjector(d, cfg.teacher_dim, cfg.projector_hidden)
                                         for g in self.aligned})
        later = self.depth_taps and deepest >= self.end and not self.last  # the depth stage is downstream
        self.carry_in = [k for k in self.depth_taps if k < self.start] if self.depth_taps and deepest >= self.start else []
        self.carry_out = [k for k in self.depth_taps if k < self.end] if later else []

    # megatron-core's finalize_model_grads looks these up to sum the tied embedding's two copies
    @property
    def pre_process(self) -> bool:
        return self.first

    @property
    def post_process(self) -> bool:
        return self.last

    @property
    def share_embeddings_and_output_weights(self) -> bool:
        return self.stage.text.share_embeddings_and_output_weights

    def shared_embedding_or_output_weight(self) -> Tensor | None:
        return self.stage.text.shared_embedding_or_output_weight()

    def owns(self, k: int) -> bool:
        """This stage computes hidden-state index k (the input of layer k; L on the last stage)."""
        return self.start <= k < self.end or (self.last and k == self.end)

    @property
    def parts_here(self) -> dict[str, bool]:
        """The geometric losses computed on this stage."""
        return {"pose": self.camera_head is not None, "depth": self.depth_head is not None,
                "align": bool(self.aligned), "scale": self.scale_head is not None}

    def set_input_tensor(self, input_tensor) -> None:
        """The previous stage's (packed) output; kept by the text model, unpacked in `forward`."""
        self.stage.set_input_tensor(input_tensor)

    # ------------------------------------------------------------------ pipeline tensor
    @staticmethod
    def visual_rows(slots: list[VideoSlot], batch_size: int) -> Tensor:
        """Flat [S*B] positions (s*B + b) of every video slot's visual tokens, slot after slot."""
        if not slots:
            return torch.zeros(0, dtype=torch.long)
        return torch.cat([s.video_pos * batch_size + s.sample for s in slots])

    def _unpack(self, x: Tensor, seq: int, n_visual: int) -> tuple[Tensor, dict[int, Tensor]]:
        hidden, carried, b = x[:seq], {}, x.shape[1]
        r = _rows(n_visual, b)
        for j, k in enumerate(self.carry_in):
            chunk = x[seq + j * r: seq + (j + 1) * r]
            carried[k] = chunk.reshape(r * b, -1)[:n_visual]
        return hidden, carried

    def _pack(self, hidden: Tensor, layers: dict, rows: Tensor) -> Tensor:
        if not self.carry_out:
            return hidden
        s, b, h = hidden.shape
        r = _rows(len(rows), b)
        extra = []
        for k in self.carry_out:
            v = layers[k]
            pad = v.new_zeros(r * b - v.shape[0], h)
            extra.append(torch.cat([v, pad]).view(r, b, h))
        return torch.cat([hidden, *extra])

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict, geo: GeoInputs, slots: list[VideoSlot],
                text_targets: Tensor | None = None) -> tuple[Tensor, StagePredictions]:
        """batch: the collated batch (pixels on the first stage); geo: its GeoVR sequence
        (`plan_geo_inputs`); slots: its video samples (`video_slots`); text_targets: the next-token
        targets [B, L'] (last stage, `text_logits="all"`). Returns the pipeline tensor (last stage: the
        per-token text loss, [B, L'] or with `text_logits="supervised"` [N] at
        `geo.text_positions`) and this stage's predictions."""
        ids = geo.input_ids
        seq, b = ids.shape[1], ids.shape[0]
        rows = self.visual_rows(slots, b).to(ids.device)
        if self.first:
            visual, embeds = (self.stage.vision(ids, batch) if self.stage.visual is not None else (None, None))
            hidden = self.stage.text.embed(ids, visual, embeds)
            hidden = write_geometry_embeds(hidden, geo.plans, self.camera_embed, self.scale_embed, seq_first=True)
            carried: dict[int, Tensor] = {}
        else:
            received = self.stage.text.input_tensor
            if received is None:
                raise RuntimeError("a non-first pipeline stage needs set_input_tensor() before forward()")
            here = seq // self.config.tensor_model_parallel_size if self.stage.text.sequence_parallel else seq
            hidden, carried = self._unpack(received, here, len(rows))
            visual = None
        wanted = {self.layer_map[g] for g in self.aligned} | set(self.carry_out)
        if self.depth_head is not None:
            wanted |= {k for k in self.depth_taps if self.owns(k)}
        taps: dict = {k: None for k in wanted}
        if self.camera_head is not None or self.scale_head is not None:
            taps["final"] = None
        supervised = None
        if self.last and self.cfg.text_logits == "supervised" and geo.text_positions is not None:
            supervised = (geo.text_positions.to(hidden.device), geo.text_targets.to(hidden.device))
        out = self.stage.text(None, geo.position_ids, visual,
                              labels=text_targets if self.last and supervised is None else None,
                              taps=taps, decoder_input=hidden, supervised=supervised)
        layers = {k: v.reshape(-1, self.dim)[rows] for k, v in taps.items() if k != "final" and v is not None}
        layers.update(carried)
        preds = self._heads(slots, layers, taps.get("final"), b)
        return (out if self.last else self._pack(out, layers, rows)), preds

    def _heads(self, slots: list[VideoSlot], layers: dict[int, Tensor], final: Tensor | None, b: int) -> StagePredictions:
        """This stage's heads, each run once per group of video samples with equal grids
        (`per_frame_batched`); layers: {k: the visual rows of all slots, in slot order}."""
        preds = StagePredictions(features={g: [] for g in self.aligned})
        if not slots:
            return preds
        sizes = [s.grid[0] * s.grid[1] * s.grid[2] for s in slots]
        grids = [{k: v.reshape(*s.grid, self.dim) for k, v in zip(layers, parts)}
                 for s, parts in zip(slots, zip(*(v.split(sizes) for v in layers.values())))] if layers else []
        if self.camera_head is not None:
            preds.pose = concat_batched(self.camera_head, [final[s.camera_pos.to(final.device), s.sample] for s in slots])
        if self.scale_head is not None:
            preds.scale = self.scale_head(torch.stack([final[int(s.scale_pos[0]), s.sample] for s in slots]))
        depth, features = dense_heads(grids, slot_keys(slots), self.depth_head, self.depth_taps, self.projectors,
                                      list(self.aligned), self.layer_map, self.cfg.pooled_size)
        if depth is not None:
            preds.depth = depth
        preds.features.update(features)
        return preds


# ---------------------------------------------------------------------- weights in and out
HEADS = ("camera_embed.", "scale_embed.", "camera_head.", "scale_head.", "depth_head.", "projectors.")


def _grad(p: Tensor) -> Tensor | None:
    """megatron-core's DDP accumulates into `main_grad`; without it `.grad`."""
    g = getattr(p, "main_grad", None)
    return p.grad if g is None else g


def _heads_state(module: MegatronGeoVR, grads: bool) -> dict[str, Tensor]:
    out = {}
    for name, p in module.named_parameters():
        if name.startswith(HEADS):
            t = _grad(p) if grads else p
            if t is not None:
                out[name] = t.detach().cpu().clone()
    return out


def load_geovr(module: MegatronGeoVR, state: Mapping[str, Tensor], base: Mapping[str, Tensor] | None = None) -> None:
    """Load a `GeoVRModel` state dict (HF base under "base.", GeoVR parts by name) into this
    rank's stage: its shard of the text model, the vision tower (first stage) and its heads.
    base: the HF base's weights as their own (possibly lazy, `lazy_state.SafetensorsState`) mapping,
    used instead of state's "base." entries; only this stage's tensors are read from it."""
    from .qwen3vl import load_hf

    if base is None:
        base = {k[len("base."):]: state[k] for k in state if k.startswith("base.")}
    load_hf(module.stage, base)
    mine = {k: v for k, v in module.state_dict().items() if k.startswith(HEADS)}
    missing = sorted(set(mine) - set(state))
    if missing:
        raise KeyError(f"the GeoVR state dict lacks {missing}: was it saved with the same GeoVR config?")
    module.load_state_dict({k: state[k] for k in mine}, strict=False)


def gather_geovr(module: MegatronGeoVR, grads: bool = False) -> dict[str, Tensor] | None:
    """The whole model as a `GeoVRModel` state dict (or, grads=True, the gradients of its trainable
    parameters under the same names, read from megatron-core's main_grad buffers), joined from
    every TP x PP rank; on the model-parallel group's first rank, None elsewhere (a collective)."""
    from .qwen3vl import gather_hf, ranks

    _, tp_rank, _, _ = ranks()
    heads = _heads_state(module, grads) if tp_rank == 0 else {}
    values = None
    if grads:
        values = {}
        for name, p in module.stage.named_parameters():
            if p.requires_grad:
                g = _grad(p)
                values[name] = g if g is not None else torch.zeros_like(p)
    hf = gather_hf(module.stage, values=values, extra=heads)
    return None if hf is None else {(k if k.startswith(HEADS) else "base." + k): v for k, v in hf.items()}
