"""Evaluation protocols: the prompts, frames, pixel budget, decoding and scoring of one published
way to measure VSI-Bench, chosen together (`python -m geovr.eval.vsibench --protocol`).

- lmms-eval (default): VSI-Bench's lmms-eval task (its prompts and scorer), greedy decoding of up
  to 16 tokens, and the frames geovr trains with (2 fps, 4..32 frames, each duplicated into its own
  temporal patch, at most 300 merged tokens a frame).
- release: the GeoVR release's eval_vsi.py, which measured its published 69.1 (2B) and 69.6 (4B):
  no pre-prompt and its own answer requests, exactly 128 frames (HF's processor given
  `num_frames=128`: consecutive frames share a temporal patch, 4..384 merged tokens a frame),
  sampling (temperature 0.7, top_p 0.8, top_k 20, no repetition penalty, up to 32768 new tokens,
  seed 42; each question seeded from its id, see `generation.question_seed`), and its
  metric_result.py's scoring.

`Protocol.override` applies the command line's explicit settings on top.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..data.sampling import FrameSampling, QwenVision
from .generation import GenerationSettings
from .questions import PROMPTS
from .scoring import SCORINGS


@dataclass(frozen=True)
class Protocol:
    """name: a key of `PROTOCOLS`; prompts: a key of `questions.PROMPTS`; scoring: of
    `scoring.SCORINGS`."""

    name: str
    prompts: str
    sampling: FrameSampling
    vision: QwenVision
    generation: GenerationSettings
    scoring: str

    def __post_init__(self):
        if self.prompts not in PROMPTS:
            raise ValueError(f"prompts {self.prompts!r}: choose one of {list(PROMPTS)}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring {self.scoring!r}: choose one of {list(SCORINGS)}")

    def override(self, *, fps: float | None = None, min_frames: int | None = None, max_frames: int | None = None,
                 tokens_per_frame: int | None = None, scoring: str | None = None, **generation) -> Protocol:
        """This protocol with the given settings replaced (None: keep). max_frames: the exact count
        where the protocol takes a fixed number of frames (fps and min_frames then do not apply:
        ValueError). generation: fields of `GenerationSettings`."""
        s = self.sampling
        if s.count is not None:
            if fps is not None or min_frames is not None:
                raise ValueError(f"--fps and --min-frames do not apply to --protocol {self.name}: it takes exactly "
                                 f"--max-frames frames ({s.count} by default)")
            if max_frames is not None:
                s = FrameSampling(s.fps, min(s.min_frames, max_frames), max_frames, count=max_frames)
        else:
            s = FrameSampling(s.fps if fps is None else fps, s.min_frames if min_frames is None else min_frames,
                              s.max_frames if max_frames is None else max_frames)
        vision = self.vision
        if tokens_per_frame is not None:
            vision = dataclasses.replace(vision, max_tokens_per_frame=tokens_per_frame)
        gen = dataclasses.replace(self.generation, **{k: v for k, v in generation.items() if v is not None})
        return dataclasses.replace(self, sampling=s, vision=vision, generation=gen,
                                   scoring=self.scoring if scoring is None else scoring)

    def frames_record(self) -> dict:
        """The frame settings as run_config.json records them (the keys runs recorded before
        protocols existed, and the others only where they apply, so those runs resume)."""
        s, v = self.sampling, self.vision
        out: dict = {"fps": s.fps, "min": s.min_frames, "max": s.max_frames, "tokens_per_frame": v.max_tokens_per_frame}
        if s.count is not None:
            out["count"] = s.count
        if v.pair_frames:
            out.update(pair_frames=True, min_tokens_per_frame=v.min_tokens_per_frame)
        return out

    def describe(self) -> str:
        """One line: what this protocol sets."""
        s, v, g = self.sampling, self.vision, self.generation
        frames = (f"exactly {s.count} frames" if s.count is not None
                  else f"{s.fps:g} fps, {s.min_frames}..{s.max_frames} frames")
        tokens = (f"{v.min_tokens_per_frame}..{v.max_tokens_per_frame} tokens a frame, frames paired" if v.pair_frames
                  else f"<= {v.max_tokens_per_frame} tokens a frame")
        decode = "greedy" if not g.do_sample else (
            f"sampled (temperature {g.temperature:g}, top_p {g.top_p:g}, top_k {g.top_k}, seed {g.seed})")
        return (f"{self.name}: {self.prompts} prompts, {frames}, {tokens}, {decode}, <= {g.max_new_tokens} new tokens, "
                f"{self.scoring} scoring")


PROTOCOLS: dict[str, Protocol] = {
    # the harness's own defaults: the training frame rule, greedy decoding
    "lmms-eval": Protocol("lmms-eval", "lmms-eval", FrameSampling(), QwenVision(), GenerationSettings(), "lmms-eval"),
    "release": Protocol("release", "release", FrameSampling(2.0, 4, 128, count=128),
                        QwenVision(max_tokens_per_frame=384, pair_frames=True, min_tokens_per_frame=4),
                        GenerationSettings(max_new_tokens=32 * 1024, do_sample=True, temperature=0.7, top_p=0.8,
                                           seed=42, top_k=20, repetition_penalty=1.0), "release"),
}
DEFAULT_PROTOCOL = "lmms-eval"


def protocol(name: str) -> Protocol:
    """The protocol called `name` (ValueError naming the choices)."""
    if name not in PROTOCOLS:
        raise ValueError(f"protocol {name!r}: choose one of {list(PROTOCOLS)}")
    return PROTOCOLS[name]
