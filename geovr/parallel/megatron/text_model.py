"""`Qwen3VLTextModel`: one pipeline stage of Qwen3-VL's language model on megatron-core.

Built from megatron-core's own parts: the vocab-parallel embedding (first stage), a
`TransformerBlock` of GPT layers (GQA, q/k RMSNorm, SwiGLU, RMSNorm; the stage's share of the layers,
numbered globally), the final norm and the column-parallel output layer (last stage; tied to the
embedding when the config ties them, kept in sync across stages by megatron-core's embedding group).
The layers are run by this module's own loop so that DeepStack can add the vision tower's
multi-level features after the first layers, so that chosen hidden states can be tapped, and so
that each layer can be recomputed in backward (`recompute_granularity="full"`; "selective"
recomputes core attention inside megatron-core's attention module).

Activations are [S, B, H] (Megatron's layout). Attention is causal only: batches are right-padded
(`geovr.data.qwen_inputs.collate`), so padding never reaches a real token. Under sequence
parallelism the activations between layers (and between pipeline stages) are each TP rank's slice
[S/tp, B, H] (S a multiple of tp); the first stage builds the full embeddings and then splits them,
and taps are gathered back to the full sequence for the heads, which every TP rank runs alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from megatron.core.models.common.language_module.language_module import LanguageModule
from torch import Tensor

from .config import TextDims, padded_vocab
from .rope import mrope_angles
from .spec import block_spec


@dataclass
class Visual:
    """Where the vision tower's features go: index [N] into the flattened [S*B] token positions
    (s*B + b), and the DeepStack features of each level, [N, H] in the same order."""

    index: Tensor
    deepstack: list[Tensor] = field(default_factory=list)


def add_at(hidden: Tensor, index: Tensor, values: Tensor) -> Tensor:
    """hidden [S, B, H] with `values` [N, H] added at the flattened positions `index` (out of place)."""
    s, b, h = hidden.shape
    return hidden.reshape(s * b, h).index_add(0, index, values.to(hidden.dtype)).view(s, b, h)


class Qwen3VLTextModel(LanguageModule):
    """config: from `transformer_config(dims, tp, pp)`; pre_process / post_process: this stage holds
    the embedding / the final norm and output layer (megatron-core's names)."""

    def __init__(self, config, dims: TextDims, pre_process: bool = True, post_process: bool = True, spec=None):
        from megatron.core import tensor_parallel
        from megatron.core.models.common.embeddings.language_model_embedding import LanguageModelEmbedding
        from megatron.core.transformer.transformer_block import TransformerBlock

        super().__init__(config)
        self.dims = dims
        self.pre_process, self.post_process = pre_process, post_process
        self.share_embeddings_and_output_weights = dims.tied
        self.vocab_size = padded_vocab(dims.vocab, config.tensor_model_parallel_size)
        if pre_process:
            # scatter_to_sequence_parallel=False: the full embeddings are built first (visual and
            # GeoVR tokens are written at absolute positions), then split in `forward`
            self.embedding = LanguageModelEmbedding(config, self.vocab_size, max_sequence_length=0,
                                                    position_embedding_type="none",
                                                    scatter_to_sequence_parallel=False)
        self.decoder = TransformerBlock(config, block_spec(config, spec), pre_process=pre_process,
                                        post_process=post_process)
        if post_process:
            self.output_layer = tensor_parallel.ColumnParallelLinear(
                dims.hidden, self.vocab_size, config=config, init_method=config.init_method, bias=False,
                gather_output=False, skip_bias_add=False,
                skip_weight_param_allocation=pre_process and dims.tied)
        self.input_tensor: Tensor | None = None
        self.setup_embeddings_and_output_layer()

    # ------------------------------------------------------------------ pipeline plumbing
    def set_input_tensor(self, input_tensor) -> None:
        """The previous stage's output (megatron-core's schedules call this before `forward`)."""
        if isinstance(input_tensor, (list, tuple)):
            input_tensor = input_tensor[0]
        self.input_tensor = input_tensor

    @property
    def sequence_parallel(self) -> bool:
        return bool(self.config.sequence_parallel) and self.config.tensor_model_parallel_size > 1

    def _full(self, hidden: Tensor) -> Tensor:
        """The whole sequence [S, B, H] of a sequence-parallel slice (every TP rank then computes the
        same thing from it, so backward only splits the gradient); identity without SP."""
        if not self.sequence_parallel:
            return hidden
        from megatron.core.tensor_parallel import gather_from_sequence_parallel_region

        return gather_from_sequence_parallel_region(hidden, tensor_parallel_output_grad=False)

    def _add_deepstack(self, hidden: Tensor, index: Tensor, values: Tensor, seq: int) -> Tensor:
        """hidden plus the DeepStack features `values` [N, H] at the flattened full-sequence positions
        `index`. Under sequence parallelism they are placed in the full sequence and then split, so
        that backward gathers their gradient: every TP rank's (replicated) vision tower gets all of it."""
        if not self.sequence_parallel:
            return add_at(hidden, index, values)
        from megatron.core.tensor_parallel import scatter_to_sequence_parallel_region

        full = add_at(hidden.new_zeros(seq, *hidden.shape[1:]), index, values)
        return hidden + scatter_to_sequence_parallel_region(full)

    def _layer(self, layer, hidden: Tensor, rope: Tensor) -> Tensor:
        """One transformer layer; recomputed in backward under full activation recompute."""
        def run(h: Tensor, r: Tensor) -> Tensor:
            return layer(hidden_states=h, attention_mask=None, rotary_pos_emb=r)[0]

        if self.config.recompute_granularity == "full" and self.training and torch.is_grad_enabled():
            from megatron.core import tensor_parallel

            return tensor_parallel.checkpoint(run, False, hidden, rope)
        return run(hidden, rope)

    @property
    def layer_numbers(self) -> list[int]:
        """Global 0-based indices of this stage's layers."""
        return [layer.layer_number - 1 for layer in self.decoder.layers]

    # ------------------------------------------------------------------ forward
    def embed(self, input_ids: Tensor, visual: Visual | None = None, visual_embeds: Tensor | None = None) -> Tensor:
        """input_ids [B, S] -> [S, B, H]: token embeddings with the vision tower's merged features
        (visual_embeds [N, H]) written at `visual.index`."""
        hidden = self.embedding.word_embeddings(input_ids).transpose(0, 1).contiguous()
        if visual is not None and visual_embeds is not None:
            s, b, h = hidden.shape
            flat = hidden.reshape(s * b, h).clone()
            flat[visual.index] = visual_embeds.to(flat.dtype)
            hidden = flat.view(s, b, h)
        return hidden

    def forward(self, input_ids: Tensor | None, position_ids: Tensor, visual: Visual | None = None,
                visual_embeds: Tensor | None = None, labels: Tensor | None = None,
                taps: dict | None = None, decoder_input: Tensor | None = None,
                supervised: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """input_ids [B, S] (first stage); position_ids [3, B, S]; labels [B, S] (last stage: then the
        per-token loss [B, S] is returned instead of the vocab-parallel logits [S, B, V/tp]);
        supervised: (positions [N, 2] as (sample, position), next tokens [N]) (last stage: the output
        layer and the loss run on those N rows only, and their per-token loss [N] is returned).
        Non-last stages return the hidden states [S, B, H] for the next stage. taps: a dict whose
        keys are hidden-state indices k (the input of layer k; k = num_layers: the last layer's
        output, before the final norm; "final": after it) to fill with [S, B, H] when they live on
        this stage. decoder_input: the stage's input when the caller built it (a wrapper that adds
        tokens on the first stage, [S, B, H], or unpacks a richer pipeline tensor on the others, each
        TP rank's [S/tp, B, H] under sequence parallelism). Taps are always the full [S, B, H]."""
        if decoder_input is not None:
            hidden = decoder_input
        elif self.pre_process:
            hidden = self.embed(input_ids, visual, visual_embeds)
        else:
            if self.input_tensor is None:
                raise RuntimeError("a non-first pipeline stage needs set_input_tensor() before forward()")
            hidden = self.input_tensor
        seq = position_ids.shape[-1]
        if self.sequence_parallel:
            from megatron.core.tensor_parallel import scatter_to_sequence_parallel_region

            tp = self.config.tensor_model_parallel_size
            if seq % tp:
                raise ValueError(f"sequence parallelism needs a sequence length divisible by tp={tp}, got {seq}: "
                                 "pad the batch (geovr.train.megatron_step.prepare does)")
            if self.pre_process:
                hidden = scatter_to_sequence_parallel_region(hidden)
        rope = mrope_angles(position_ids, self.dims.head_dim, self.dims.rope_theta, self.dims.mrope_section)
        rope = rope.to(hidden.device)
        deepstack = visual.deepstack if visual is not None else []
        for layer in self.decoder.layers:
            k = layer.layer_number - 1
            if taps is not None and k in taps:
                taps[k] = self._full(hidden)
            hidden = self._layer(layer, hidden, rope)
            if k < len(deepstack):
                hidden = self._add_deepstack(hidden, visual.index, deepstack[k], seq)
        if not self.post_process:
            return hidden
        if taps is not None and self.dims.layers in taps:
            taps[self.dims.layers] = self._full(hidden)
        hidden = self.decoder.final_layernorm(hidden)
        if taps is not None and "final" in taps:
            taps["final"] = self._full(hidden)
        weight = self.shared_embedding_or_output_weight() if self.share_embeddings_and_output_weights else None
        if supervised is not None:
            return self._supervised_loss(hidden, weight, *supervised)
        logits, _ = self.output_layer(hidden, weight=weight)
        if labels is None:
            return logits
        return self.compute_language_model_loss(labels, logits)

    def _supervised_loss(self, hidden: Tensor, weight: Tensor | None, positions: Tensor, targets: Tensor) -> Tensor:
        """The per-token loss [N] of the supervised rows: the full sequence's final states at
        `positions` through this TP rank's vocabulary shard of the output layer, then the
        vocab-parallel cross-entropy. The rows' gradient is summed over the TP ranks (each holds a
        shard's part of it), as ColumnParallelLinear does for its input."""
        from megatron.core import tensor_parallel

        if positions.shape[0] == 0:  # nothing supervised: a zero still connected to the graph
            return hidden.sum()[None] * 0.0
        rows = self._full(hidden)[positions[:, 1], positions[:, 0]]  # [N, H]
        rows = tensor_parallel.copy_to_tensor_model_parallel_region(rows)
        w = weight if weight is not None else self.output_layer.weight
        logits = torch.nn.functional.linear(rows, w.to(rows.dtype))[:, None]  # [N, 1, V/tp]
        return tensor_parallel.vocab_parallel_cross_entropy(logits, targets[:, None])[:, 0]
