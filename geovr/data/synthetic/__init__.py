"""The synthetic 3D world: procedural rooms rendered on the CPU with exact depth, poses and QA.

`make_scene(seed)` renders one scene in memory; `generate(out, scenes)` (or
`python -m geovr.data.synthetic --out DIR --scenes N`) writes a dataset the real pipeline reads:
`train.jsonl` (one question per record) and `scenes.jsonl` (one conversation per scene).
"""
from .camera import intrinsics, look_at, walkthrough
from .qa import QA, generate_qa
from .render import render
from .scene import CATEGORIES, COLOURS, Scene, SceneObject, random_scene
from .world import RenderedScene, WorldConfig, make_scene, metric_scale
from .writer import SCENES_JSONL, generate

__all__ = ["CATEGORIES", "COLOURS", "QA", "SCENES_JSONL", "RenderedScene", "Scene", "SceneObject", "WorldConfig",
           "generate", "generate_qa", "intrinsics", "look_at", "make_scene", "metric_scale", "random_scene",
           "render", "walkthrough"]
