"""Camera and scale tokens: where they go in a tokenized sample and which M-RoPE positions they get.

Per video: a camera token right after each frame's merged visual tokens (kind CAMERA_FIRST after
frame 1, CAMERA_LATER after the others) and one scale token right after the last camera token.
Each inserted token copies the 3-D position of the frame's last visual token (the scale token:
the video's last visual token), so the positions of the original tokens do not move; labels are
IGNORE_INDEX. A frame is a run of consecutive video tokens (Qwen3-VL puts each temporal patch
between its own <|vision_start|> ... <|vision_end|>).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

TEXT, CAMERA_FIRST, CAMERA_LATER, SCALE = 0, 1, 2, 3
IGNORE_INDEX = -100


@dataclass
class Inserted:
    """One sample after insertion (length L' = L + frames + 1 per video).

    src: int64 [L'] the original position each token's M-RoPE position is copied from;
    kind: int64 [L'] TEXT for original tokens, else CAMERA_FIRST / CAMERA_LATER / SCALE;
    original: bool [L'] True where the token is an original one (its id, label and type kept)."""

    src: torch.Tensor
    kind: torch.Tensor
    original: torch.Tensor

    def camera_positions(self) -> torch.Tensor:
        return torch.nonzero((self.kind == CAMERA_FIRST) | (self.kind == CAMERA_LATER)).flatten()

    def scale_positions(self) -> torch.Tensor:
        return torch.nonzero(self.kind == SCALE).flatten()


def frame_runs(mm_token_type_ids: torch.Tensor, frames_per_video: list[int]) -> list[list[tuple[int, int]]]:
    """[(start, end)] of each frame's video-token run, grouped per video. mm_token_type_ids [L]
    (2 = video). Raises ValueError if the runs do not match `frames_per_video`."""
    is_video = (mm_token_type_ids == 2).tolist()
    runs, start = [], None
    for i, v in enumerate(is_video + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i))
            start = None
    if len(runs) != sum(frames_per_video):
        raise ValueError(f"found {len(runs)} runs of video tokens but the video grids hold "
                         f"{sum(frames_per_video)} frames: the prompt must put each frame between "
                         "its own vision tokens (Qwen3-VL's timestamps do)")
    out, k = [], 0
    for n in frames_per_video:
        out.append(runs[k:k + n])
        k += n
    return out


def insert_geometry_tokens(length: int, runs: list[list[tuple[int, int]]], camera: bool = True,
                           scale: bool = True) -> Inserted:
    """Plan the insertion for one sample of `length` original tokens with per-video frame `runs`."""
    after: dict[int, list[tuple[int, int]]] = {}  # original index -> [(kind, src)] to insert after it
    for video in runs:
        for f, (_, end) in enumerate(video):
            last = end - 1
            if camera:
                after.setdefault(last, []).append((CAMERA_FIRST if f == 0 else CAMERA_LATER, last))
        if scale and video:
            last = video[-1][1] - 1
            after.setdefault(last, []).append((SCALE, last))
    src, kind, original = [], [], []
    for i in range(length):
        src.append(i)
        kind.append(TEXT)
        original.append(True)
        for k, s in after.get(i, ()):
            src.append(s)
            kind.append(k)
            original.append(False)
    return Inserted(torch.tensor(src, dtype=torch.long), torch.tensor(kind, dtype=torch.long),
                    torch.tensor(original, dtype=torch.bool))
