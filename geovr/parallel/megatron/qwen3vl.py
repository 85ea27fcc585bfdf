"""`MegatronQwen3VL`: one pipeline stage of the whole Qwen3-VL (HF vision tower + Megatron text model).

The first stage holds HF's own `Qwen3VLVisionModel` (replicated over the tensor-parallel ranks) and
writes its merged features into the token embeddings; its DeepStack features are added after the
first text layers, which must therefore live on the first stage. M-RoPE positions come from HF's
own `get_rope_index` and are passed to every stage. `build_stage` reads the TP/PP ranks from
megatron-core's `parallel_state`; `load_hf` / `gather_hf` move HF weights in and out of a live model.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.enums import ModelType
from megatron.core.transformer.module import MegatronModule
from torch import Tensor

from ...model.geo_inputs import next_tokens
from .config import TextDims, transformer_config
from .convert import HF_VISUAL, hf_to_mcore, mcore_to_hf, visual_state
from .text_model import Qwen3VLTextModel, Visual


class _RopeIndex:
    """Holds the config HF's `Qwen3VLModel.get_rope_index` reads, so it runs without a model."""

    def __init__(self, config):
        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLModel

        self.config = config
        self._fn = Qwen3VLModel.get_rope_index
        self.get_vision_position_ids = Qwen3VLModel.get_vision_position_ids.__get__(self)

    def __call__(self, *args, **kwargs):
        return self._fn(self, *args, **kwargs)


def rope_index(config, batch: Mapping) -> Tensor:
    """M-RoPE position ids [3, B, S] of a collated batch (HF's computation)."""
    return _RopeIndex(config)(batch["input_ids"], batch["mm_token_type_ids"], batch.get("image_grid_thw"),
                              batch.get("video_grid_thw"), batch.get("attention_mask"))[0]


def next_token_targets(labels: Tensor, ignore_index: int = -100) -> tuple[Tensor, Tensor]:
    """HF labels [B, S] (the token at each position, ignore_index where no loss) -> the target of
    each position (the next token; 0 where ignored, so it stays inside the vocabulary) and the
    loss mask [B, S] bool, as megatron-core's vocab-parallel cross-entropy wants them."""
    nxt = next_tokens(labels, ignore_index)
    mask = nxt != ignore_index
    return torch.where(mask, nxt, torch.zeros_like(nxt)), mask


class MegatronQwen3VL(MegatronModule):
    """hf_config: the `Qwen3VLConfig`; text: this stage's `Qwen3VLTextModel`; visual: the HF vision
    tower (first stage only)."""

    def __init__(self, hf_config, text: Qwen3VLTextModel, visual: torch.nn.Module | None = None):
        super().__init__(config=text.config)
        self.hf_config, self.text, self.visual = hf_config, text, visual
        self.model_type = ModelType.encoder_or_decoder  # what megatron-core's schedules look for
        levels = len(hf_config.vision_config.deepstack_visual_indexes)
        if text.pre_process and max(text.layer_numbers) + 1 < levels:
            raise ValueError(f"DeepStack adds vision features after the first {levels} text layers, but the first "
                             f"pipeline stage holds only {len(text.layer_numbers)}: use a smaller --pp")

    @property
    def pre_process(self) -> bool:
        return self.text.pre_process

    @property
    def post_process(self) -> bool:
        return self.text.post_process

    def set_input_tensor(self, input_tensor) -> None:
        self.text.set_input_tensor(input_tensor)

    def vision(self, input_ids: Tensor, batch: Mapping) -> tuple[Visual | None, Tensor | None]:
        """The vision tower's merged features [N, H] and DeepStack levels at the image/video tokens
        of input_ids [B, S] (images first, then videos; each in token order)."""
        b = input_ids.shape[0]
        index, embeds, deepstack = [], [], []
        for pixels, grid, token in (("pixel_values", "image_grid_thw", self.hf_config.image_token_id),
                                    ("pixel_values_videos", "video_grid_thw", self.hf_config.video_token_id)):
            if batch.get(pixels) is None:
                continue
            out = self.visual(batch[pixels].to(self.visual.dtype), grid_thw=batch[grid])
            where = torch.nonzero(input_ids == token)  # (b, s) in row-major order, as HF scatters
            if len(where) != out.pooler_output.shape[0]:
                raise ValueError(f"{pixels}: the vision tower gave {out.pooler_output.shape[0]} features for "
                                 f"{len(where)} placeholder tokens; the prompt and the grids disagree")
            index.append(where[:, 1] * b + where[:, 0])
            embeds.append(out.pooler_output)
            deepstack.append(out.deepstack_features)
        if not index:
            return None, None
        levels = [torch.cat(level) for level in zip(*deepstack)]
        return Visual(torch.cat(index), levels), torch.cat(embeds)

    def forward(self, batch: Mapping, position_ids: Tensor | None = None, labels: Tensor | None = None,
                taps: dict | None = None) -> Tensor:
        """batch: a collated batch (input_ids [B, S], mm_token_type_ids, pixels and grids). Returns
        what `Qwen3VLTextModel.forward` returns on this stage."""
        if position_ids is None:
            position_ids = rope_index(self.hf_config, batch)
        input_ids = batch["input_ids"]
        visual = embeds = None
        if self.pre_process and self.visual is not None:
            visual, embeds = self.vision(input_ids, batch)
        return self.text(input_ids if self.pre_process else None, position_ids, visual, embeds, labels=labels,
                         taps=taps)


def ranks() -> tuple[int, int, int, int]:
    """(tp, tp_rank, pp, pp_rank) from megatron-core's parallel state."""
    return (parallel_state.get_tensor_model_parallel_world_size(), parallel_state.get_tensor_model_parallel_rank(),
            parallel_state.get_pipeline_model_parallel_world_size(), parallel_state.get_pipeline_model_parallel_rank())


def build_stage(hf_config, dtype: torch.dtype = torch.float32, spec=None, **config_overrides) -> MegatronQwen3VL:
    """This rank's stage, randomly initialised (load weights with `load_hf`)."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel

    tp, _, pp, pp_rank = ranks()
    dims = TextDims.from_hf(hf_config)
    config = transformer_config(dims, tp, pp, dtype=dtype, **config_overrides)
    first, last = pp_rank == 0, pp_rank == pp - 1
    text = Qwen3VLTextModel(config, dims, pre_process=first, post_process=last, spec=spec)
    visual = Qwen3VLVisionModel._from_config(hf_config.vision_config).to(dtype) if first else None
    return MegatronQwen3VL(hf_config, text, visual)


def load_hf(stage: MegatronQwen3VL, hf: Mapping[str, Tensor]) -> None:
    """Load this rank's shard of an HF Qwen3-VL state dict into `stage` (strict: every key matches)."""
    tp, tp_rank, pp, pp_rank = ranks()
    text = hf_to_mcore(hf, stage.text.dims, tp, tp_rank, pp, pp_rank)
    params = {k: v for k, v in stage.text.state_dict().items() if not k.endswith("_extra_state")}
    if set(text) != set(params):
        raise KeyError(f"conversion and model disagree: only converted {sorted(set(text) - set(params))}, "
                       f"only in the model {sorted(set(params) - set(text))}")
    stage.text.load_state_dict(text, strict=False)
    if stage.visual is not None:
        stage.visual.load_state_dict(visual_state(hf), strict=True)


def gather_hf(stage: MegatronQwen3VL, values: Mapping[str, Tensor] | None = None,
              extra: Mapping[str, Tensor] | None = None) -> dict[str, Tensor] | None:
    """The whole model as an HF state dict, joined from every TP x PP rank of this model-parallel
    group (a collective: every rank calls it); returned on the group's first rank, None elsewhere.
    values: tensors to join instead of the weights, keyed by this stage's parameter names (e.g. the
    gradients; the text model's must all be there); extra: entries passed through unchanged.
    Tensors travel as objects: meant for export and tests; use dist_checkpointing for big models."""
    tp, tp_rank, pp, pp_rank = ranks()
    if values is None:
        values = {k: v for k, v in stage.state_dict().items() if not k.endswith("_extra_state")}
    text = {k[len("text."):]: v.detach().cpu() for k, v in values.items() if k.startswith("text.")}
    visual = ({HF_VISUAL + k[len("visual."):]: v.detach().cpu() for k, v in values.items() if k.startswith("visual.")}
              if tp_rank == 0 else {})
    visual.update(extra or {})
    group = parallel_state.get_model_parallel_group()
    mine = (pp_rank, tp_rank, text, visual)
    items = [None] * dist.get_world_size(group) if dist.is_initialized() else [mine]
    if dist.is_initialized():
        dist.all_gather_object(items, mine, group=group)
        if dist.get_rank(group) != 0:
            return None
    shards = {(p, t): sd for p, t, sd, _ in items}
    out = mcore_to_hf(shards, stage.text.dims, tp, pp)
    for _, _, _, other in items:
        out.update(other)
    return out
