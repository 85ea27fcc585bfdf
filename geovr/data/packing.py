"""Shared-prefix packing: several QA records about one video in one sequence, exactly.

A tokenized record is a *prefix* (every token up to and including the `<|vision_end|>` after its
last media token: the system turn, the user turn's start, the video's timestamps and visual
tokens, where the GeoVR camera and scale slots go) followed by a *suffix* (the question, the
answer and any later turns). Nothing in the prefix depends on the suffix (attention is causal),
so K records whose prefixes are the same tokens can share one:

    packed = prefix + suffix_1 + ... + suffix_K,   segments = 0 on the prefix, k on suffix_k

and with each suffix attending to the prefix and to itself only (`geovr.model.attention`) and
its positions those it has in its own sample (`restart_positions`), every suffix's logits equal
its separate sample's. The split is verified token by token: a record whose tokens do not start
with the first record's prefix goes as its own sequence (counted as "unshared").

`prefix_length` is the one definition of the split, shared by training and evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .chat import IGNORE_INDEX

PREFIX, PADDING = 0, -1  # segment ids: the shared prefix, and the padding of a collated batch


def prefix_length(input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor, vision_end_id: int) -> int:
    """Tokens in the shared prefix of one tokenized record (1-D tensors): through its last media
    token and the `<|vision_end|>` right after it. Raises ValueError for a record without media."""
    media = torch.nonzero(mm_token_type_ids != 0).flatten()
    if not len(media):
        raise ValueError("a record without media tokens has no video prefix to share")
    end = int(media[-1]) + 1
    if end < len(input_ids) and int(input_ids[end]) == vision_end_id:
        end += 1
    return end


def restart_positions(position_ids: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """position_ids [..., L] of a packed sequence as a plain sequence would number them (HF's
    `get_rope_index`: text positions +1 per token), segments [L] (each segment contiguous) -> each
    suffix's positions as in its own sample: suffix k (text only) starts where suffix 1 starts.
    A new tensor."""
    suffix = segments > PREFIX
    if not bool(suffix.any()):
        return position_ids.clone()
    idx = torch.arange(len(segments), device=segments.device)
    change = torch.ones_like(suffix)
    change[1:] = segments[1:] != segments[:-1]
    start = torch.cummax(torch.where(change, idx, torch.zeros_like(idx)), 0).values  # each token's segment start
    first = idx[suffix][0]
    shift = torch.where(suffix, start - first, torch.zeros_like(idx))
    return position_ids - shift.to(position_ids.dtype)


@dataclass
class PackStats:
    """What one packing did: QAs packed, sequences made, records that did not share the prefix
    (each went as its own sequence), and records rejected alone [(record, SampleRejected)]."""

    qas: int = 0
    sequences: int = 0
    unshared: int = 0
    rejected: list = field(default_factory=list)


def _shares_prefix(sample: dict, first: dict, n: int) -> bool:
    ids, mm, labels = sample["input_ids"], sample["mm_token_type_ids"], sample["labels"]
    return (len(ids) > n and torch.equal(ids[:n], first["input_ids"][:n])
            and torch.equal(mm[:n], first["mm_token_type_ids"][:n])
            and bool((labels[:n] == IGNORE_INDEX).all()) and not bool((mm[n:] != 0).any()))


def pack_samples(samples: list[dict], vision_end_id: int, max_length: int | None = None) -> tuple[list[dict], PackStats]:
    """K sample dicts (`QwenTransform` outputs about the same video and frames, sharing their
    media tensors) -> packed sample dicts: the first sample's prefix once, then every sample's
    suffix that shares it, within `max_length` tokens (a sequence that would be longer starts a
    new one). A sample that does not share the prefix is its own sequence (K = 1). Each packed
    dict holds the first sample's media and metadata plus `segments` int64 [L] and `qa_ids`
    (the packed records' ids); a lone sample gets segments 0 (plain causal attention)."""
    if not samples:
        raise ValueError("pack_samples got no samples")
    first = samples[0]
    n = prefix_length(first["input_ids"], first["mm_token_type_ids"], vision_end_id)
    stats = PackStats(qas=len(samples))
    shared, alone = [], []
    for s in samples:
        (shared if _shares_prefix(s, first, n) else alone).append(s)
    stats.unshared = len(alone)
    groups: list[list[dict]] = []
    length = max_length if max_length is not None else float("inf")
    size = n
    for s in shared:
        extra = len(s["input_ids"]) - n
        if not groups or size + extra > length:
            groups.append([])
            size = n
        groups[-1].append(s)
        size += extra
    out = [_packed(g, n) for g in groups] + [_single(s) for s in alone]
    stats.sequences = len(out)
    return out, stats


def _single(sample: dict) -> dict:
    return {**sample, "segments": torch.zeros_like(sample["input_ids"]), "qa_ids": [sample["id"]]}


def _packed(group: list[dict], n: int) -> dict:
    if len(group) == 1:
        return _single(group[0])
    head = group[0]
    cat = {k: torch.cat([head[k][:n]] + [s[k][n:] for s in group]) for k in ("input_ids", "labels", "mm_token_type_ids")}
    segments = torch.cat([torch.full((n,), PREFIX, dtype=torch.long)]
                         + [torch.full((len(s["input_ids"]) - n,), k, dtype=torch.long) for k, s in enumerate(group, 1)])
    return {**head, **cat, "segments": segments, "qa_ids": [s["id"] for s in group]}
