"""HF Qwen3-VL text weights <-> megatron-core shards, for any tensor (TP) x pipeline (PP) split.

Pure functions on state dicts (no process group): `hf_to_mcore` cuts the shard of one (pp, tp) rank
and `mcore_to_hf` joins all shards back, exactly. The Megatron names are those of
`Qwen3VLTextModel` with megatron-core's local layer spec; layer indices are local to the stage.

Layouts (per layer; d = head_dim, g = key/value groups, r = heads per group, t = TP size):
  linear_qkv  [g/t * (r+2) * d, H]: per group its r query heads, then its key, then its value
  linear_proj [H, heads*d/t]      : o_proj split along its input
  linear_fc1  [2*F/t, H]          : [gate_shard; up_shard] (SwiGLU; not a slice of [gate; up])
  linear_fc2  [H, F/t]            : down_proj split along its input
  embedding / output_layer [V'/t, H]: rows padded with zeros to V' (`padded_vocab`), split by rows
Norms (input, pre-MLP, q/k, final) are replicated. With tied embeddings the output layer is the
embedding (first stage) or a copy of it (last stage, when PP > 1).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .config import TextDims, check_parallel, padded_vocab

HF_TEXT = "model.language_model."
HF_HEAD = "lm_head.weight"
HF_VISUAL = "model.visual."


def stage_layers(dims: TextDims, pp: int, pp_rank: int) -> range:
    """Global indices of the layers on pipeline stage `pp_rank` (an even split, megatron-core's default)."""
    per = dims.layers // pp
    return range(pp_rank * per, (pp_rank + 1) * per)


def _pad_rows(w: Tensor, rows: int) -> Tensor:
    if w.shape[0] == rows:
        return w
    return torch.cat([w, w.new_zeros(rows - w.shape[0], *w.shape[1:])])


def _qkv(q: Tensor, k: Tensor, v: Tensor, dims: TextDims) -> Tensor:
    """[g * (r+2) * d, H] grouped layout of the three HF projections."""
    d, g, h = dims.head_dim, dims.groups, q.shape[1]
    q = q.view(g, dims.heads_per_group * d, h)
    return torch.cat([q, k.view(g, d, h), v.view(g, d, h)], dim=1).reshape(-1, h)


def _unqkv(qkv: Tensor, dims: TextDims) -> tuple[Tensor, Tensor, Tensor]:
    d, g, r = dims.head_dim, dims.groups, dims.heads_per_group
    x = qkv.view(g, (r + 2) * d, -1)
    q, k, v = x.split([r * d, d, d], dim=1)
    return q.reshape(-1, x.shape[-1]), k.reshape(-1, x.shape[-1]), v.reshape(-1, x.shape[-1])


def hf_to_mcore(hf: Mapping[str, Tensor], dims: TextDims, tp: int = 1, tp_rank: int = 0, pp: int = 1,
                pp_rank: int = 0) -> dict[str, Tensor]:
    """The Megatron state dict of rank (pp_rank, tp_rank) from an HF Qwen3-VL state dict (text part)."""
    check_parallel(dims, tp, pp)

    def get(name: str) -> Tensor:
        try:
            return hf[name]
        except KeyError:
            raise KeyError(f"HF checkpoint has no {name!r}: is it a Qwen3-VL checkpoint?") from None

    def part(w: Tensor, dim: int) -> Tensor:
        return w.chunk(tp, dim=dim)[tp_rank].clone()

    out: dict[str, Tensor] = {}
    vocab = padded_vocab(dims.vocab, tp)
    first, last = pp_rank == 0, pp_rank == pp - 1
    # read only what this stage holds (`hf` may be a lazy checkpoint, `lazy_state.SafetensorsState`)
    if first:
        out["embedding.word_embeddings.weight"] = part(_pad_rows(get(HF_TEXT + "embed_tokens.weight"), vocab), 0)
    if last:
        out["decoder.final_layernorm.weight"] = get(HF_TEXT + "norm.weight").clone()
        if not dims.tied:
            out["output_layer.weight"] = part(_pad_rows(get(HF_HEAD), vocab), 0)
        elif not first:
            out["output_layer.weight"] = part(_pad_rows(get(HF_TEXT + "embed_tokens.weight"), vocab), 0)
    for local, i in enumerate(stage_layers(dims, pp, pp_rank)):
        src, dst = f"{HF_TEXT}layers.{i}.", f"decoder.layers.{local}."
        attn = src + "self_attn."
        qkv = _qkv(get(attn + "q_proj.weight"), get(attn + "k_proj.weight"), get(attn + "v_proj.weight"), dims)
        out[dst + "self_attention.linear_qkv.weight"] = part(qkv, 0)
        out[dst + "self_attention.linear_proj.weight"] = part(get(attn + "o_proj.weight"), 1)
        out[dst + "self_attention.q_layernorm.weight"] = get(attn + "q_norm.weight").clone()
        out[dst + "self_attention.k_layernorm.weight"] = get(attn + "k_norm.weight").clone()
        out[dst + "input_layernorm.weight"] = get(src + "input_layernorm.weight").clone()
        out[dst + "pre_mlp_layernorm.weight"] = get(src + "post_attention_layernorm.weight").clone()
        gate, up = get(src + "mlp.gate_proj.weight"), get(src + "mlp.up_proj.weight")
        out[dst + "mlp.linear_fc1.weight"] = torch.cat([part(gate, 0), part(up, 0)])
        out[dst + "mlp.linear_fc2.weight"] = part(get(src + "mlp.down_proj.weight"), 1)
    return out


def mcore_to_hf(shards: Mapping[tuple[int, int], Mapping[str, Tensor]], dims: TextDims, tp: int,
                pp: int) -> dict[str, Tensor]:
    """Join the Megatron shards {(pp_rank, tp_rank): state dict} into the HF text state dict
    (with `lm_head.weight`, equal to the embedding when tied)."""
    missing = [(p, t) for p in range(pp) for t in range(tp) if (p, t) not in shards]
    if missing:
        raise ValueError(f"shards of ranks (pp, tp) {missing} are missing")

    def cat(pp_rank: int, name: str, dim: int) -> Tensor:
        return torch.cat([shards[(pp_rank, t)][name] for t in range(tp)], dim=dim)

    out: dict[str, Tensor] = {}
    embed = cat(0, "embedding.word_embeddings.weight", 0)[:dims.vocab]
    out[HF_TEXT + "embed_tokens.weight"] = embed
    last = pp - 1
    out[HF_TEXT + "norm.weight"] = shards[(last, 0)]["decoder.final_layernorm.weight"]
    out[HF_HEAD] = embed if dims.tied else cat(last, "output_layer.weight", 0)[:dims.vocab]
    f = dims.ffn // tp
    for p in range(pp):
        for local, i in enumerate(stage_layers(dims, pp, p)):
            src, dst = f"decoder.layers.{local}.", f"{HF_TEXT}layers.{i}."
            attn = dst + "self_attn."
            q, k, v = _unqkv(cat(p, src + "self_attention.linear_qkv.weight", 0), dims)
            out[attn + "q_proj.weight"], out[attn + "k_proj.weight"], out[attn + "v_proj.weight"] = q, k, v
            out[attn + "o_proj.weight"] = cat(p, src + "self_attention.linear_proj.weight", 1)
            out[attn + "q_norm.weight"] = shards[(p, 0)][src + "self_attention.q_layernorm.weight"]
            out[attn + "k_norm.weight"] = shards[(p, 0)][src + "self_attention.k_layernorm.weight"]
            out[dst + "input_layernorm.weight"] = shards[(p, 0)][src + "input_layernorm.weight"]
            out[dst + "post_attention_layernorm.weight"] = shards[(p, 0)][src + "pre_mlp_layernorm.weight"]
            fc1 = [shards[(p, t)][src + "mlp.linear_fc1.weight"] for t in range(tp)]
            out[dst + "mlp.gate_proj.weight"] = torch.cat([w[:f] for w in fc1])
            out[dst + "mlp.up_proj.weight"] = torch.cat([w[f:] for w in fc1])
            out[dst + "mlp.down_proj.weight"] = cat(p, src + "mlp.linear_fc2.weight", 1)
    return out


def visual_state(hf: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The vision tower's weights of an HF Qwen3-VL state dict, with the `model.visual.` prefix removed."""
    return {k[len(HF_VISUAL):]: hf[k] for k in hf if k.startswith(HF_VISUAL)}  # reads only those (lazy maps)
