"""VSI-Bench-style questions with exact answers, computed from the scene and the rendered views.

Question types (VSI-Bench names): object_counting, object_abs_distance (between object centres,
metres), object_size_estimation (longest edge, cm), room_size_estimation (floor area, m^2),
object_rel_distance (which of four objects is closest), object_rel_direction (left/right/back),
obj_appearance_order (first appearance in the video). Multiple-choice answers are option letters.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .scene import Scene

LETTERS = "ABCD"
MIN_VISIBLE = 0.005  # fraction of the frame an object must cover to count as seen


@dataclass(frozen=True)
class QA:
    question_type: str
    question: str
    answer: str


def _name(scene: Scene, i: int) -> str:
    return scene.objects[i].category


def _unique(scene: Scene) -> list[int]:
    """Objects whose category occurs once: those a question can name without ambiguity."""
    counts: dict[str, int] = {}
    for o in scene.objects:
        counts[o.category] = counts.get(o.category, 0) + 1
    return [i for i, o in enumerate(scene.objects) if counts[o.category] == 1]


def first_appearance(instances: np.ndarray, n_objects: int) -> list[int | None]:
    """Per object, the first frame index where it covers >= MIN_VISIBLE of the frame."""
    frac = np.stack([(instances == i).mean(axis=(1, 2)) for i in range(n_objects)], 1)  # [T, n]
    seen = frac >= MIN_VISIBLE
    return [int(np.argmax(seen[:, i])) if seen[:, i].any() else None for i in range(n_objects)]


def _choice(options: list[str], correct: str, rng: np.random.Generator) -> tuple[str, str]:
    order = rng.permutation(len(options))
    shown = [options[i] for i in order]
    text = "\n".join(f"{LETTERS[j]}. {o}" for j, o in enumerate(shown))
    return text, LETTERS[shown.index(correct)]


def generate_qa(scene: Scene, instances: np.ndarray, rng: np.random.Generator) -> list[QA]:
    """All question types the scene supports (each at most once). instances: int [T, H, W]."""
    out: list[QA] = []
    objs = scene.objects
    uniq = _unique(scene)
    centres = np.array([o.centre for o in objs]) if objs else np.zeros((0, 3))
    seen = first_appearance(instances, len(objs)) if objs else []
    cats = sorted({o.category for o in objs})
    if cats:
        cat = cats[int(rng.integers(len(cats)))]
        n = sum(o.category == cat for o in objs)
        out.append(QA("object_counting", f"How many {cat}(s) are in this room?", str(n)))
    if len(uniq) >= 2:
        a, b = rng.choice(uniq, 2, replace=False)
        dist = float(np.linalg.norm(centres[a] - centres[b]))
        out.append(QA("object_abs_distance",
                      f"What is the distance between the centres of the {_name(scene, a)} and the "
                      f"{_name(scene, b)} (in meters)?", f"{dist:.2f}"))
    if uniq:
        a = int(rng.choice(uniq))
        out.append(QA("object_size_estimation",
                      f"What is the length of the longest dimension (length, width, or height) of the "
                      f"{_name(scene, a)}, measured in centimeters?", f"{100 * max(objs[a].size):.0f}"))
    w, d, _ = scene.room
    out.append(QA("room_size_estimation", "What is the size of this room (in square meters)?",
                  f"{w * d:.2f}"))
    if len(uniq) >= 5:
        a, *cands = [int(i) for i in rng.choice(uniq, 5, replace=False)]
        dists = [float(np.linalg.norm(centres[c] - centres[a])) for c in cands]
        if sorted(dists)[1] - sorted(dists)[0] > 0.15:  # unambiguous
            best = _name(scene, cands[int(np.argmin(dists))])
            text, letter = _choice([_name(scene, c) for c in cands], best, rng)
            out.append(QA("object_rel_distance",
                          f"Measuring from the centres, which of these objects is the closest to the "
                          f"{_name(scene, a)}?\n{text}", letter))
    if len(uniq) >= 3:
        for a, b, c in itertools.permutations([int(i) for i in rng.permutation(uniq)][:4], 3):
            fwd = centres[b, :2] - centres[a, :2]
            to_c = centres[c, :2] - centres[a, :2]
            if np.linalg.norm(fwd) < 0.5 or np.linalg.norm(to_c) < 0.5:
                continue
            cos = float(fwd @ to_c / (np.linalg.norm(fwd) * np.linalg.norm(to_c)))
            cross = float(fwd[0] * to_c[1] - fwd[1] * to_c[0])
            if cos < -0.2:
                answer = "back"
            elif abs(cross) / (np.linalg.norm(fwd) * np.linalg.norm(to_c)) > 0.3:
                answer = "left" if cross > 0 else "right"  # z up: positive cross = counter-clockwise
            else:
                continue
            text, letter = _choice(["left", "right", "back"], answer, rng)
            out.append(QA("object_rel_direction",
                          f"If I am standing by the {_name(scene, a)} and facing the {_name(scene, b)}, "
                          f"is the {_name(scene, c)} to my left, right, or back?\n{text}", letter))
            break
    frames_seen = [seen[i] for i in uniq if seen[i] is not None]
    firsts = sorted((seen[i], i) for i in uniq if seen[i] is not None and frames_seen.count(seen[i]) == 1)
    if len(firsts) >= 4:  # objects whose first frame is theirs alone: the order is unambiguous
        pick = sorted(rng.choice(len(firsts), 4, replace=False))
        order = [_name(scene, firsts[j][1]) for j in pick]
        options = [", ".join(order)]
        for perm in itertools.permutations(order):
            if len(options) == 4:
                break
            if ", ".join(perm) not in options:
                options.append(", ".join(perm))
        text, letter = _choice(options, options[0], rng)
        asked = ", ".join(sorted(order))
        out.append(QA("obj_appearance_order",
                      f"What will be the first-time appearance order of the following categories in "
                      f"the video: {asked}?\n{text}", letter))
    return out


