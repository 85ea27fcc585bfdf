"""Question -> model inputs for generation, and a left-padded batch.

`QuestionEncoder` decodes a question's video with the training pipeline's rules (frame sampling,
Qwen3-VL patching) and tokenizes its prompt with the chat template's generation prompt. Questions
about the same video in a row reuse its decoded pixels (VSI-Bench asks ~17 questions per video;
the harness orders questions by video).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.chat import tokenize_prompt
from ..data.dataset import load_video
from ..data.datasets.records import VIDEO_PLACEHOLDER, Turn
from ..data.qwen_pixels import to_qwen_pixels
from ..data.sampling import FrameSampling, QwenVision, patch_timestamps
from .questions import Question


@dataclass
class EncodedQuestion:
    """input_ids, mm_token_type_ids int64 [L]; pixel_values_videos float32 [T*gh*gw, 1536];
    video_grid_thw int64 [1, 3]; frame_indices: the decoded frames."""

    question: Question | None
    input_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor
    frame_indices: list[int]


class QuestionEncoder:
    """tokenizer: the model's (with its chat template). backend: the decoder ("auto", "pyav", ...)."""

    def __init__(self, tokenizer, sampling: FrameSampling = FrameSampling(), vision: QwenVision = QwenVision(),
                 backend: str = "auto"):
        self.tokenizer, self.sampling, self.vision, self.backend = tokenizer, sampling, vision, backend
        self._cache: tuple[str, tuple] | None = None
        self.frames: torch.Tensor | None = None  # uint8 [T, 3, H, W]: the last decoded video's frames

    def video(self, path: str) -> tuple[torch.Tensor, torch.Tensor, list[float], list[int]]:
        """(pixels, grid [3], timestamps_s, indices) of a video; raises VideoDecodeError."""
        if self._cache is not None and self._cache[0] == path:
            return self._cache[1]
        frames = load_video(path, self.sampling, self.backend)
        pixels, grid = to_qwen_pixels(frames.data, self.vision)
        value = (pixels, grid, patch_timestamps(frames.indices, frames.info.fps, self.vision), list(frames.indices))
        self._cache, self.frames = (path, value), frames.data
        return value

    def encode(self, video: str, prompt: str, item: str) -> EncodedQuestion:
        """`<video>` + prompt as one user turn, then the generation prompt (question left None)."""
        pixels, grid, timestamps, indices = self.video(video)
        turns = (Turn("user", f"{VIDEO_PLACEHOLDER}\n{prompt}"),)
        text = tokenize_prompt(self.tokenizer, turns, grid, timestamps, item=item, merge_size=self.vision.merge_size)
        return EncodedQuestion(None, text["input_ids"], text["mm_token_type_ids"], pixels, grid.view(1, 3), indices)

    def __call__(self, q: Question) -> EncodedQuestion:
        encoded = self.encode(q.video, q.prompt, q.id)
        encoded.question = q
        return encoded


def collate_left(items: list[EncodedQuestion], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pad the prompts to one length (generation appends on the right): input_ids,
    attention_mask, mm_token_type_ids [B, L]; pixel_values_videos and video_grid_thw concatenated
    in batch order."""
    if not items:
        raise ValueError("collate_left got an empty batch")
    length = max(len(e.input_ids) for e in items)
    b = len(items)
    ids = torch.full((b, length), pad_token_id, dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.long)
    mm = torch.zeros((b, length), dtype=torch.long)
    for i, e in enumerate(items):
        n = len(e.input_ids)
        ids[i, length - n:], mm[i, length - n:], mask[i, length - n:] = e.input_ids, e.mm_token_type_ids, 1
    return {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": mm,
            "pixel_values_videos": torch.cat([e.pixel_values_videos for e in items]),
            "video_grid_thw": torch.cat([e.video_grid_thw for e in items])}
