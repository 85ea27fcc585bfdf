"""Every question about one video answered from one prefill of the video (`--share-prefix`).

A question's prompt is a *prefix* (the system turn, the user turn's start, the video's timestamps
and visual tokens: `geovr.data.packing.prefix_length`, the split training shares) and a *suffix*
(the question, the assistant turn's start). The prefix is the same for every question about a
video, and nothing in it sees the suffix, so it runs once (`prefill`) and each batch of questions
continues from its key/value cache (`continue_batch`):

1. suffix prefill: the suffixes left-padded *after* the prefix to one length, the pads masked,
   each suffix token at the position a lone prompt gives it (text after the video continues at
   position j + rope_delta, rope_delta the prefix's: the same for every suffix);
2. decoding: a token per step per question, greedy or sampled (`geovr.eval.generation`'s rule,
   each question with its own generator), until each has ended or `max_new_tokens`.

The prefix cache is expanded over the batch (a view, no copy); the suffix step's concatenation
gives every row its own keys and values, so no question writes into what another reads, and the
prefix serves the next batch unchanged. Exact up to float summation order: the tests compare the
tokens and every step's logits with HF's `generate` on each whole prompt.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.packing import prefix_length
from .generation import GenerationSettings, Sampler, pad_token_id, stop_token_ids
from .inputs import EncodedQuestion


@dataclass
class Prefix:
    """A video's prefill: its length P (tokens), its tokens [P], the key/value cache of batch 1,
    rope_delta (a text token at index j >= P sits at position j + rope_delta)."""

    length: int
    input_ids: Tensor
    cache: object
    rope_delta: int


def vision_end_id(tokenizer) -> int:
    """The id of `<|vision_end|>`, which closes the prefix."""
    token = tokenizer.convert_tokens_to_ids("<|vision_end|>")
    if token is None or token == getattr(tokenizer, "unk_token_id", None):
        raise ValueError("the tokenizer has no <|vision_end|> token: not a Qwen3-VL tokenizer")
    return int(token)


def shared_split(encoded: list[EncodedQuestion], end_id: int) -> tuple[int, list[int]]:
    """(P, the indices of `encoded` that share one prefix of P tokens: the same tokens, media
    tokens and video). When the questions' prefixes differ, the largest group shares (the first
    such in order on a tie); the others go alone."""
    groups: dict[tuple, list[int]] = {}
    for i, e in enumerate(encoded):
        p = prefix_length(e.input_ids, e.mm_token_type_ids, end_id)
        if len(e.input_ids) <= p:
            continue  # nothing after the prefix: not a question to continue
        key = (p, e.input_ids[:p].numpy().tobytes(), e.mm_token_type_ids[:p].numpy().tobytes(),
               tuple(e.video_grid_thw.flatten().tolist()), id(e.pixel_values_videos))
        groups.setdefault(key, []).append(i)
    if not groups:
        return 0, []
    key, same = max(groups.items(), key=lambda kv: len(kv[1]))
    return key[0], same


def _device_dtype(model) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


def rope_index(model, question: EncodedQuestion, length: int) -> tuple[Tensor, int]:
    """M-RoPE positions [3, 1, length] of the first `length` tokens of `question` and their
    rope_delta, as HF's Qwen3-VL computes them (integer work on the host's tensors)."""
    ids = question.input_ids[:length][None]
    pos, delta = model.model.get_rope_index(ids, video_grid_thw=question.video_grid_thw,
                                            attention_mask=torch.ones_like(ids),
                                            mm_token_type_ids=question.mm_token_type_ids[:length][None])
    return pos, int(delta.flatten()[0])


@torch.no_grad()
def prefill(model, question: EncodedQuestion, length: int, rope: tuple[Tensor, int] | None = None) -> Prefix:
    """Run the first `length` tokens of `question` (its video included) once; keep the cache.
    rope: `rope_index`'s result when already computed."""
    device, dtype = _device_dtype(model)
    pos, delta = rope if rope is not None else rope_index(model, question, length)
    ids = question.input_ids[:length][None].to(device)
    out = model(input_ids=ids, attention_mask=None, position_ids=pos.to(device),  # one row, no padding: causal
                mm_token_type_ids=question.mm_token_type_ids[:length][None].to(device),
                pixel_values_videos=question.pixel_values_videos.to(device, dtype),
                video_grid_thw=question.video_grid_thw.to(device), use_cache=True, logits_to_keep=1)
    return Prefix(length, question.input_ids[:length], out.past_key_values, delta)


def expanded_cache(prefix: Prefix, batch: int, config) -> object:
    """A cache of `batch` rows whose keys and values are views of the prefix's (no copy)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config.get_text_config())
    if len(cache.layers) != len(prefix.cache.layers):
        raise ValueError(f"cache of {len(prefix.cache.layers)} layers for a model of {len(cache.layers)}")
    for layer, src in zip(cache.layers, prefix.cache.layers):
        layer.lazy_initialization(src.keys, src.values)
        layer.keys = src.keys.expand(batch, -1, -1, -1)
        layer.values = src.values.expand(batch, -1, -1, -1)
    return cache


@dataclass
class SuffixState:
    """After a batch's suffix prefill: the model's output (logits of the last position, the cache),
    the attention mask [B, P + S] and each row's last position [B]."""

    out: object
    mask: Tensor
    last: Tensor


@torch.no_grad()
def prefill_suffixes(model, tokenizer, prefix: Prefix, suffixes: list[Tensor]) -> SuffixState:
    """The suffixes [S_i] after `prefix`, left-padded after it to one length S (pads masked), each
    token at the position its lone prompt gives it, in one forward over the expanded prefix cache."""
    device, _ = _device_dtype(model)
    b, p = len(suffixes), prefix.length
    s = max(len(x) for x in suffixes)
    ids = torch.full((b, s), pad_token_id(tokenizer), dtype=torch.long)
    mask = torch.zeros((b, p + s), dtype=torch.long)
    mask[:, :p] = 1
    pos = torch.zeros((b, s), dtype=torch.long)
    for i, x in enumerate(suffixes):
        n = len(x)
        ids[i, s - n:] = x
        mask[i, p + s - n:] = 1
        pos[i, s - n:] = torch.arange(p, p + n) + prefix.rope_delta
    ids, mask, pos = ids.to(device), mask.to(device), pos.to(device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos[None].expand(3, -1, -1),
                past_key_values=expanded_cache(prefix, b, model.config), use_cache=True, logits_to_keep=1)
    return SuffixState(out, mask, pos[:, -1])


@torch.no_grad()
def continue_batch(model, tokenizer, prefix: Prefix, suffixes: list[Tensor], settings: GenerationSettings,
                   seeds: list[int] | None = None, keep_logits: bool = False) -> tuple[list[list[int]], list[Tensor]]:
    """Generate after `prefix` for each of `suffixes` (token ids [S_i] that follow it). Returns
    (the new token ids of each question, up to and including its end token; with keep_logits,
    each step's logits [B, V] in fp32 as HF's `generate(output_logits=True)` gives them)."""
    device, _ = _device_dtype(model)
    b = len(suffixes)
    state = prefill_suffixes(model, tokenizer, prefix, suffixes)
    out, mask, last = state.out, state.mask, state.last
    pad = pad_token_id(tokenizer)
    prompts = [torch.cat([prefix.input_ids, x]) for x in suffixes]
    sampler = Sampler(model, tokenizer, settings, prompts, seeds if seeds is not None else [settings.seed] * b, device)
    stops = torch.tensor(stop_token_ids(tokenizer), device=device)
    tokens: list[list[int]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool, device=device)
    steps: list[Tensor] = []
    for _ in range(settings.max_new_tokens):
        logits = out.logits[:, -1].float()
        if keep_logits:
            steps.append(logits.cpu())
        nxt = sampler(logits)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        for i, (t, ended) in enumerate(zip(nxt.tolist(), done.tolist())):  # one copy to the host a step
            if not ended:
                tokens[i].append(t)
        done |= torch.isin(nxt, stops)
        if bool(done.all()):
            break
        last = last + 1
        mask = torch.cat([mask, torch.ones((b, 1), dtype=mask.dtype, device=device)], 1)
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last[None, :, None].expand(3, -1, -1),
                    past_key_values=out.past_key_values, use_cache=True)
    return tokens, steps
