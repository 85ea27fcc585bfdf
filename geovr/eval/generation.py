"""Batched answer generation with HF `generate` (greedy by default)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class GenerationSettings:
    """max_new_tokens: answer length cap (VSI-Bench answers are a word or a number); do_sample:
    sample instead of greedy decoding, with `temperature` / `top_p` / `seed`."""

    max_new_tokens: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def stop_token_ids(tokenizer) -> list[int]:
    """End-of-turn ids (`geovr.model.checkpoint.end_token_ids`)."""
    from ..model.checkpoint import end_token_ids

    return end_token_ids(tokenizer)


@torch.no_grad()
def generate_answers(model, tokenizer, batch: dict[str, torch.Tensor], settings: GenerationSettings) -> list[str]:
    """Answers (decoded, special tokens dropped, stripped) for a left-padded batch."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    inputs = {k: v.to(device) for k, v in batch.items()}
    inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(dtype)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_token_ids(tokenizer)[0]
    extra = {}
    if settings.do_sample:
        torch.manual_seed(settings.seed)
        extra = {"temperature": settings.temperature, "top_p": settings.top_p}
    out = model.generate(**inputs, max_new_tokens=settings.max_new_tokens, do_sample=settings.do_sample,
                         pad_token_id=pad, eos_token_id=stop_token_ids(tokenizer), **extra)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
