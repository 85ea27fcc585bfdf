"""Conversation -> `input_ids`, `labels` (assistant tokens only) and `mm_token_type_ids`.

The tokenizer's own chat template renders the turns (a video content item becomes
`<|vision_start|><|video_pad|><|vision_end|>` in Qwen3-VL's template); the single `<|video_pad|>`
is then expanded as the HF Qwen3-VL processor does: per temporal patch,
`<{t:.1f} seconds><|vision_start|>` + `<|video_pad|>` x (gh*gw/4) + `<|vision_end|>`, with t the
frame index / the video's average fps. An image's `<|image_pad|>` becomes gh*gw/4 pads. Labels
cover each assistant reply through its end token.
"""
from __future__ import annotations

import torch

from .datasets.records import IMAGE_TAG, VIDEO_PLACEHOLDER, Turn

IGNORE_INDEX = -100
VIDEO_PAD, IMAGE_PAD = "<|video_pad|>", "<|image_pad|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"


class SampleRejected(ValueError):
    """A decoded sample that cannot become model inputs (too long, unsupported media).
    kind: the SkipLog key ("too_long", "unsupported")."""

    def __init__(self, item: str, reason: str, kind: str):
        super().__init__(f"{item}: {reason}")
        self.item, self.reason, self.kind = item, reason, kind


def to_messages(turns: tuple[Turn, ...]) -> list[dict]:
    """LLaVA turns -> chat-template messages; the placeholder becomes a {"type": "video"} item
    (a newline next to it is dropped)."""
    out = []
    for t in turns:
        for tag, kind in ((VIDEO_PLACEHOLDER, "video"), (IMAGE_TAG, "image")):
            if tag in t.text:
                before, after = t.text.split(tag, 1)
                content = []
                if before.rstrip("\n"):
                    content.append({"type": "text", "text": before.rstrip("\n")})
                content.append({"type": kind})
                if after.lstrip("\n"):
                    content.append({"type": "text", "text": after.lstrip("\n")})
                out.append({"role": t.role, "content": content})
                break
        else:
            out.append({"role": t.role, "content": t.text})
    return out


def video_placeholder(grid_thw: torch.Tensor | list[int], timestamps_s: list[float], merge_size: int = 2) -> str:
    """The expansion of one `<|video_pad|>`: one group per temporal patch (= per real frame)."""
    t, h, w = (int(v) for v in grid_thw)
    if len(timestamps_s) != t:
        raise ValueError(f"need one timestamp per temporal patch: {len(timestamps_s)} for t={t}")
    per_frame = h * w // (merge_size * merge_size)
    return "".join(f"<{ts:.1f} seconds>{VISION_START}{VIDEO_PAD * per_frame}{VISION_END}" for ts in timestamps_s)


def image_placeholder(grid_thw: torch.Tensor | list[int], merge_size: int = 2) -> str:
    """The expansion of one `<|image_pad|>`: gh*gw/merge^2 pads (no timestamp)."""
    t, h, w = (int(v) for v in grid_thw)
    return IMAGE_PAD * (t * h * w // (merge_size * merge_size))


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def tokenize_conversation(tokenizer, turns: tuple[Turn, ...], grid_thw, timestamps_s: list[float] | None,
                          item: str = "sample", max_length: int | None = None, merge_size: int = 2
                          ) -> dict[str, torch.Tensor]:
    """Tokenize a conversation about one video (timestamps_s: one per temporal patch) or one
    image (timestamps_s=None). Returns int64 1-D `input_ids`, `labels` (IGNORE_INDEX outside
    assistant replies) and `mm_token_type_ids` (2 on video tokens, 1 on image tokens).
    Raises SampleRejected when longer than max_length."""
    messages = to_messages(turns)
    full = render_chat(tokenizer, messages)
    pad, pad_at, expansion = _media_expansion(full, grid_thw, timestamps_s, item, merge_size)
    grow = len(expansion) - len(pad)

    def expanded_len(prefix: str) -> int:  # a character offset in `full` -> in the expanded text
        return len(prefix) + (grow if len(prefix) > pad_at else 0)

    spans = []  # character spans [start, end) of assistant replies in the expanded text
    for m, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        head = render_chat(tokenizer, messages[:m], add_generation_prompt=True)
        upto = render_chat(tokenizer, messages[: m + 1]).rstrip()
        if not full.startswith(head) or not full.startswith(upto):
            raise ValueError(f"{item}: the chat template does not render prefixes of the conversation "
                             "consistently; assistant labels cannot be located")
        spans.append((expanded_len(head), expanded_len(upto)))
    text = full[:pad_at] + expansion + full[pad_at + len(pad):]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor(enc["input_ids"], dtype=torch.long)
    if max_length is not None and len(ids) > max_length:
        raise SampleRejected(item, f"{len(ids)} tokens exceed max_length {max_length}", "too_long")
    offsets = torch.tensor(enc["offset_mapping"], dtype=torch.long).view(-1, 2)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for start, end in spans:
        inside = (offsets[:, 0] >= start) & (offsets[:, 1] <= end) & (offsets[:, 1] > offsets[:, 0])
        labels[inside] = ids[inside]
    mm = _media_types(tokenizer, ids, pad, grid_thw, item, merge_size)
    return {"input_ids": ids, "labels": labels, "mm_token_type_ids": mm}


def tokenize_prompt(tokenizer, turns: tuple[Turn, ...], grid_thw, timestamps_s: list[float] | None,
                    item: str = "sample", merge_size: int = 2) -> dict[str, torch.Tensor]:
    """Tokenize the turns of a question (ending with a user turn) followed by the assistant's
    generation prompt, for `generate`. Returns int64 1-D `input_ids` and `mm_token_type_ids`."""
    full = render_chat(tokenizer, to_messages(turns), add_generation_prompt=True)
    pad, pad_at, expansion = _media_expansion(full, grid_thw, timestamps_s, item, merge_size)
    text = full[:pad_at] + expansion + full[pad_at + len(pad):]
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)
    return {"input_ids": ids, "mm_token_type_ids": _media_types(tokenizer, ids, pad, grid_thw, item, merge_size)}


def _media_expansion(full: str, grid_thw, timestamps_s: list[float] | None, item: str,
                     merge_size: int) -> tuple[str, int, str]:
    """(the pad token, its character offset in `full`, its expansion)."""
    pad = VIDEO_PAD if timestamps_s is not None else IMAGE_PAD
    if full.count(pad) != 1:
        raise ValueError(f"{item}: the chat template rendered {full.count(pad)} {pad} tokens, expected 1 "
                         "(does the record hold one placeholder, and the template render media items?)")
    if timestamps_s is not None:
        expansion = video_placeholder(grid_thw, timestamps_s, merge_size)
    else:
        expansion = image_placeholder(grid_thw, merge_size)
    return pad, full.index(pad), expansion


def _media_types(tokenizer, ids: torch.Tensor, pad: str, grid_thw, item: str, merge_size: int) -> torch.Tensor:
    """mm_token_type_ids: 2 on video tokens, 1 on image tokens; checks the media token count."""
    mm = torch.zeros_like(ids)
    mm[ids == tokenizer.convert_tokens_to_ids(VIDEO_PAD)] = 2
    mm[ids == tokenizer.convert_tokens_to_ids(IMAGE_PAD)] = 1
    n_media = int((mm == (2 if pad == VIDEO_PAD else 1)).sum())
    t, h, w = (int(v) for v in grid_thw)
    if n_media != t * h * w // (merge_size * merge_size):
        raise ValueError(f"{item}: {n_media} media tokens after tokenization, expected "
                         f"{t * h * w // merge_size ** 2}: the tokenizer splits {pad}")
    return mm
