"""Answer generation with HF `generate` (greedy by default, batched), the per-question seeds of
sampling, and `Sampler`: HF's choice of the next token, for decoding loops of our own
(`geovr.eval.shared_prefix`)."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import torch


_OPTIONAL = ("top_k", "repetition_penalty")  # recorded only when set


@dataclass(frozen=True)
class GenerationSettings:
    """max_new_tokens: answer length cap (VSI-Bench answers are a word or a number); do_sample:
    sample instead of greedy decoding, with `temperature` / `top_p` / `top_k` / `seed` (top_k
    None: the model's generation config decides, HF's 50 where it says nothing; 0: off).
    repetition_penalty: None: the model's generation config decides; 1.0: none."""

    max_new_tokens: int = 16
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    top_k: int | None = None
    repetition_penalty: float | None = None

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or (self.top_k is not None and self.top_k < 0):
            raise ValueError(f"sampling needs temperature > 0, 0 < top_p <= 1, top_k >= 0; got {self.temperature}, "
                             f"{self.top_p}, {self.top_k}")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")

    def to_dict(self) -> dict:
        """The settings as the sample log and run_config.json record them (top_k and
        repetition_penalty only when set, so runs written before they existed resume)."""
        return {k: v for k, v in asdict(self).items() if v is not None or k not in _OPTIONAL}


def stop_token_ids(tokenizer) -> list[int]:
    """End-of-turn ids (`geovr.model.checkpoint.end_token_ids`)."""
    from ..model.checkpoint import end_token_ids

    return end_token_ids(tokenizer)


@torch.no_grad()
def generate_answers(model, tokenizer, batch: dict[str, torch.Tensor], settings: GenerationSettings,
                     seed: bool = True) -> list[str]:
    """Answers (decoded, special tokens dropped, stripped) for a left-padded batch. seed: with
    sampling, seed torch with settings.seed first (False: the caller seeded it)."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    inputs = {k: v.to(device) for k, v in batch.items()}
    inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(dtype)
    if settings.do_sample and seed:
        torch.manual_seed(settings.seed)
    out = model.generate(**inputs, **generate_kwargs(tokenizer, settings))
    new = out[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]


def question_seed(seed: int, question_id: str) -> int:
    """The seed of one question's sampling: from the run's seed and the question's id, so a reply
    does not depend on the order, the batch or the prefix mode."""
    digest = hashlib.sha256(f"{seed}|{question_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def pad_token_id(tokenizer) -> int:
    """What fills a finished or shorter row: the tokenizer's pad token, else its first end token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_token_ids(tokenizer)[0]


def generate_kwargs(tokenizer, settings: GenerationSettings) -> dict:
    """The generation arguments of HF's `generate` for `settings` (the model's own generation
    config fills the rest, as `generate` does)."""
    kw = {"max_new_tokens": settings.max_new_tokens, "do_sample": settings.do_sample,
          "pad_token_id": pad_token_id(tokenizer), "eos_token_id": stop_token_ids(tokenizer)}
    if settings.do_sample:
        kw.update(temperature=settings.temperature, top_p=settings.top_p)
        if settings.top_k is not None:
            kw["top_k"] = settings.top_k
    if settings.repetition_penalty is not None:
        kw["repetition_penalty"] = settings.repetition_penalty
    return kw


class Sampler:
    """The next token of each row as HF's `generate` would pick it for that row's prompt alone:
    the model's generation config updated with `settings`, HF's own logits processors (built per
    row: some read the prompt's length or tokens), then the argmax, or a draw from the row's own
    generator seeded with `seeds[i]` (as `torch.manual_seed(seeds[i])` before a lone `generate`).

    prompts: each row's prompt [L_i]; `__call__(logits [B, V] fp32)` -> tokens [B], and appends
    them to the rows' sequences (what the processors read next)."""

    def __init__(self, model, tokenizer, settings: GenerationSettings, prompts: list[torch.Tensor],
                 seeds: list[int], device: torch.device):
        config, _ = model._prepare_generation_config(None, **generate_kwargs(tokenizer, settings))
        model._prepare_special_tokens(config, True, device=device, batch_size=1)
        self.do_sample = bool(config.do_sample)
        self.sequences = [p.to(device)[None] for p in prompts]
        self.processors = [model._get_logits_processor(generation_config=config, input_ids_seq_length=p.shape[-1],
                                                       encoder_input_ids=p, device=device, model_kwargs={})
                           for p in self.sequences]
        self.generators = []
        if self.do_sample:
            for s in seeds:
                g = torch.Generator(device=device)
                g.manual_seed(s)
                self.generators.append(g)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        out = []
        for i, (seq, procs) in enumerate(zip(self.sequences, self.processors)):
            scores = procs(seq, logits[i:i + 1])
            if self.do_sample:
                probs = torch.softmax(scores, dim=-1)
                out.append(torch.multinomial(probs, 1, generator=self.generators[i]).view(1))
            else:
                out.append(torch.argmax(scores, dim=-1))
        tokens = torch.cat(out)
        self.sequences = [torch.cat([seq, tokens[i].view(1, 1)], 1) for i, seq in enumerate(self.sequences)]
        return tokens
