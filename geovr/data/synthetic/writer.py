"""Write synthetic scenes as a dataset the real pipeline reads (VSI-590K-style jsonl + mp4).

Layout of `out`:
  videos/scene_00000.mp4      the RGB walk-through
  geometry/scene_00000.npz    depth [T,H,W] float32 (m), instances [T,H,W] int16, extrinsics
                              [T,3,4] (world-to-camera, OpenCV), intrinsics [3,3], frame_times [T],
                              metric_scale []
  scenes/scene_00000.json     the scene (room, objects) and the render config
  train.jsonl                 one question per line: id, video, conversations, question_type,
                              scene, geometry, answer
  scenes.jsonl                one conversation per scene: every question of the scene as a
                              turn, in a seeded random order (id, video, conversations, scene,
                              geometry, question_types): one video pass teaches all its answers
Every file is written to a temporary name and renamed, so an interrupted run leaves no half file.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..video_writer import write_video
from .world import RenderedScene, WorldConfig, make_scene

SCENES_JSONL = "scenes.jsonl"  # beside train.jsonl: the same questions, one conversation per scene
NUMERIC_POST = "Please answer the question using a single word or phrase."
CHOICE_POST = "Answer with the option's letter from the given choices directly."
NUMERIC_TYPES = {"object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation"}


def _atomic_bytes(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def records_for(name: str, rendered: RenderedScene) -> list[dict]:
    out = []
    for j, qa in enumerate(rendered.qa):
        post = NUMERIC_POST if qa.question_type in NUMERIC_TYPES else CHOICE_POST
        out.append({
            "id": f"{name}_{j}",
            "video": f"videos/{name}.mp4",
            "conversations": [
                {"from": "human", "value": f"<video>\nThese are frames of a video.\n{qa.question}\n{post}"},
                {"from": "gpt", "value": qa.answer},
            ],
            "question_type": qa.question_type,
            "scene": name,
            "geometry": f"geometry/{name}.npz",
            "answer": qa.answer,
        })
    return out


def conversation_for(name: str, singles: list[dict], seed: int) -> dict:
    """The scene's question records (`records_for`) as one multi-turn record, the video in the
    first turn, the questions shuffled by `seed`."""
    order = np.random.default_rng(seed).permutation(len(singles))
    turns: list[dict] = []
    for k, j in enumerate(order):
        human, gpt = singles[j]["conversations"]
        text = human["value"] if k == 0 else human["value"].replace("<video>\n", "", 1)
        turns += [{"from": "human", "value": text}, gpt]
    return {"id": name, "video": f"videos/{name}.mp4", "conversations": turns, "scene": name,
            "geometry": f"geometry/{name}.npz", "question_types": [singles[j]["question_type"] for j in order]}


def write_scene(out: Path, index: int, seed: int, cfg: WorldConfig, codec: str = "h264",
                save_geometry: bool = True) -> tuple[list[dict], dict | None]:
    """Render scene `index` (seeded by seed + index), write its files; return its question records
    and its conversation record (None for a scene without questions)."""
    name = f"scene_{index:05d}"
    rendered = make_scene(seed * 1_000_003 + index, cfg)
    write_video(out / "videos" / f"{name}.mp4", rendered.rgb, fps=cfg.fps, codec=codec)
    times = np.arange(cfg.n_frames) / cfg.fps
    if save_geometry:
        _atomic_bytes(out / "geometry" / f"{name}.npz", lambda f: np.savez_compressed(
            f, depth=rendered.depth, instances=rendered.instances, extrinsics=rendered.extrinsics,
            intrinsics=rendered.intrinsics, frame_times=times, metric_scale=np.float64(rendered.metric_scale)))
    meta = {"scene": rendered.scene.to_json(), "config": asdict(cfg), "metric_scale": rendered.metric_scale,
            "seed": seed, "index": index}
    _atomic_bytes(out / "scenes" / f"{name}.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
    singles = records_for(name, rendered)
    return singles, (conversation_for(name, singles, seed * 1_000_003 + index) if singles else None)


def generate(out: str | os.PathLike, scenes: int, seed: int = 0, cfg: WorldConfig = WorldConfig(),
             codec: str = "h264", save_geometry: bool = True, progress: bool = True) -> Path:
    """Write `scenes` scenes and their questions under `out`; returns the path of train.jsonl
    (`SCENES_JSONL` beside it holds the same questions, one conversation per scene)."""
    if scenes < 1:
        raise ValueError(f"scenes must be >= 1, got {scenes}")
    out = Path(out)
    for sub in ("videos", "geometry", "scenes"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    from ...progress import progress as progress_display

    bar = progress_display(range(scenes), enabled=progress, desc="synthetic scenes", unit="scenes")
    lines, conversations = [], []
    for i in bar:
        singles, conversation = write_scene(out, i, seed, cfg, codec, save_geometry)
        lines.extend(json.dumps(r) for r in singles)
        conversations.extend([json.dumps(conversation)] if conversation else [])
    _atomic_bytes(out / SCENES_JSONL, lambda f: f.write(("\n".join(conversations) + "\n").encode()))
    jsonl = out / "train.jsonl"
    _atomic_bytes(jsonl, lambda f: f.write(("\n".join(lines) + "\n").encode()))
    return jsonl
