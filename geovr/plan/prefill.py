"""What evaluation costs before the first answer token: the prefill FLOPs of a VSI-Bench prompt, whole
(a prefill per question) and split as `python -m geovr.eval.vsibench --share-prefix` runs it (the
video's prefix once, then each question's suffix over its cache), counted on fake tensors at a
published size (`ShapeMode`), no weights and no GPU.

    python benchmarks/eval_prefix.py --count --model 2b --frames 32 128

A prompt is built as the harness builds it (`tokenize_prompt` over the video's Qwen3-VL patches,
here of blank 480x640 frames at 2 fps, at most `tokens_per_frame` merged tokens per frame, each
frame in its own temporal patch, or two a patch with `pair_frames` as `--protocol release`); the
counts are the model's forward (vision tower, LLM, the LM head on the last position), attention at
the share of its score matrix a causal kernel computes. Decoding is not counted (the same in
both modes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .batch import QUESTION
from .build import base_model, plan_tokenizer
from .parts import AttentionFormulas
from .shape_mode import ShapeMode
from .spec import StepSpec

VSIBENCH_VIDEOS = 288  # VSI-Bench's videos; "over 5,000" questions, about 18 a video
VSIBENCH_QA_PER_VIDEO = 18


@dataclass(frozen=True)
class PrefillCount:
    """FLOPs of one prompt's prefill: whole; prefix (the video's, once per video); suffix (one
    question's, over the prefix's cache); and the token counts."""

    whole: float
    prefix: float
    suffix: float
    prefix_tokens: int
    suffix_tokens: int

    def per_video(self, questions: int, shared: bool) -> float:
        """FLOPs of `questions` questions about one video."""
        return self.prefix + questions * self.suffix if shared else questions * self.whole


def prompt(tokenizer, frames: int, tokens_per_frame: int, source: tuple[int, int] = (480, 640),
           pair_frames: bool = False):
    """A VSI-Bench question about a blank video, encoded as the harness encodes it."""
    from ..data.chat import tokenize_prompt
    from ..data.datasets.records import Turn
    from ..data.qwen_pixels import to_qwen_pixels
    from ..data.sampling import QwenVision, patch_timestamps
    from ..eval.inputs import EncodedQuestion

    vision = QwenVision(max_tokens_per_frame=tokens_per_frame, pair_frames=pair_frames)
    pixels, grid = to_qwen_pixels(torch.zeros(frames, 3, *source, dtype=torch.uint8), vision)
    times = patch_timestamps(list(range(frames)), 2.0, vision)
    text = tokenize_prompt(tokenizer, (Turn("user", QUESTION),), grid, times, item="plan", merge_size=vision.merge_size)
    return EncodedQuestion(None, text["input_ids"], text["mm_token_type_ids"], pixels, grid.view(1, 3),
                           list(range(frames)))


def _counted(fn) -> float:
    counter = FlopCounterMode(display=False, custom_mapping=AttentionFormulas().mapping())
    with counter:
        fn()
    return float(counter.get_total_flops())


def count_prefill(model: str = "2b", frames: int = 32, tokens_per_frame: int = 300,
                  pair_frames: bool = False) -> PrefillCount:
    """Count one prompt's prefill both ways at `model`'s published size (FLOPs do not depend on the dtype)."""
    from ..eval.shared_prefix import prefill, prefill_suffixes, rope_index, shared_split, vision_end_id

    tok = plan_tokenizer()
    question = prompt(tok, frames, tokens_per_frame, pair_frames=pair_frames)
    length, _ = shared_split([question], vision_end_id(tok))
    mode = ShapeMode()
    with mode:
        net = base_model(StepSpec(model=model, frames=frames, tokens_per_frame=tokens_per_frame), tok).eval()
    # positions are integer work on real tensors (HF's get_rope_index cannot run on fake ones)
    whole_pos, _ = rope_index(net, question, len(question.input_ids))
    rope = rope_index(net, question, length)
    with mode:
        ids = question.input_ids[None]
        whole = _counted(lambda: net(input_ids=ids, attention_mask=None, position_ids=whole_pos,  # causal, as served
                                     mm_token_type_ids=question.mm_token_type_ids[None],
                                     pixel_values_videos=question.pixel_values_videos,
                                     video_grid_thw=question.video_grid_thw, use_cache=True, logits_to_keep=1))
        held = {}
        prefix_flops = _counted(lambda: held.setdefault("prefix", prefill(net, question, length, rope)))
        suffix_flops = _counted(lambda: prefill_suffixes(net, tok, held["prefix"], [question.input_ids[length:]]))
    return PrefillCount(whole, prefix_flops, suffix_flops, length, len(question.input_ids) - length)


def prefill_table(counts: dict[int, PrefillCount], model: str, videos: int = VSIBENCH_VIDEOS,
                  per_video: int = VSIBENCH_QA_PER_VIDEO, note: str = "") -> str:
    """Markdown: per frame count, the tokens, the prefill PFLOPs of the benchmark both ways, the ratio.
    note: said after each frame count (how the frames were fed)."""
    rows = [f"| {model}, {videos} videos x {per_video} questions | prompt tokens (prefix + question) | prefill per "
            "question (PFLOP) | one prefill per video (PFLOP) | ratio |", "|---|---:|---:|---:|---:|"]
    for frames, c in counts.items():
        whole = videos * c.per_video(per_video, shared=False) / 1e15
        shared = videos * c.per_video(per_video, shared=True) / 1e15
        rows.append(f"| {frames} frames{note} | {c.prefix_tokens} + {c.suffix_tokens} | {whole:,.1f} | {shared:,.1f} | "
                    f"{shared / whole:.3f}x |")
    return "\n".join(rows)
