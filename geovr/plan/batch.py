"""A synthetic micro-batch at a chosen shape, made by the real data path (`QwenTransform`,
`collate`) from blank frames: the token sequence, pixel patches, grids and teacher frames of
`micro_batch` samples of `frames` frames each, as the trainer would see them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.dataset import GroupSample, Sample
from ..data.datasets.records import Turn, VideoQA
from ..data.decode.info import Frames, VideoInfo
from ..data.qwen_inputs import QwenTransform, collate
from ..data.sampling import QwenVision

# a VSI-Bench-style question and a short answer: the text is a few dozen tokens beside ~10k visual ones
QUESTION = ("<video>\nThese are frames of a video. Measuring from the closest point of each object, what is the "
            "distance between the sofa and the refrigerator (in meters)? Answer with a single number.")
ANSWER = "2.4"


@dataclass(frozen=True)
class BatchShape:
    """frames per sample, samples per micro-batch, merged tokens per frame (Qwen's cap), the source
    video's (height, width), the teacher frames' longest edge (px, a multiple of 28), questions
    per sample (> 1: each sample is one packed sequence of them on the video's prefix)."""

    frames: int = 32
    micro_batch: int = 1
    tokens_per_frame: int = 300
    source: tuple[int, int] = (480, 640)
    teacher_longest: int = 504
    qa_per_sequence: int = 1


def synthetic_batch(tokenizer, shape: BatchShape) -> dict:
    """A collated batch of `shape.micro_batch` video samples (blank frames, the QA above; with
    qa_per_sequence K > 1, each the video's prefix and K such questions)."""
    h, w = shape.source
    t = shape.frames
    times = tuple(i / 2.0 for i in range(t))  # 2 fps, the release's sampling
    info = VideoInfo("synthetic.mp4", t, 2.0, w, h, "none", times)
    frames = Frames(torch.zeros(t, 3, h, w, dtype=torch.uint8), list(range(t)), list(times), info, "none")
    transform = QwenTransform(tokenizer, vision=QwenVision(max_tokens_per_frame=shape.tokens_per_frame),
                              teacher_longest=shape.teacher_longest, max_length=None)
    samples = []
    for i in range(shape.micro_batch):
        recs = [VideoQA(f"plan-{i}-{k}", "synthetic.mp4", "video", (Turn("user", QUESTION), Turn("assistant", ANSWER)),
                        "vsi590k") for k in range(shape.qa_per_sequence)]
        if len(recs) == 1:
            samples.append(transform(Sample(recs[0], frames, position=(0, i))))
        else:
            samples += transform.pack(GroupSample(recs, frames, position=(0, i)))[0]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return collate(samples, pad)
