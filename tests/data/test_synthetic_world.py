"""The synthetic world's geometry is exact: reprojection between frames, depth vs ray hits,
camera conventions, the metric scale, the QA answers, and the files written to disk."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from geovr.data.decode import decode_frames, probe_video
from geovr.data.synthetic import (Scene, SceneObject, WorldConfig, generate_qa, intrinsics, look_at,
                                  make_scene, render)
from geovr.data.synthetic.render import ROOM, pixel_rays, trace

CFG = WorldConfig(height=96, width=128, fps=4.0, seconds=4.0)


@pytest.fixture(scope="module")
def world():
    return make_scene(3, CFG)


def backproject(depth, k, w2c, v, u):
    """World points of pixel centres (v, u) with z-depth: an independent formula, not the renderer's."""
    z = depth[v, u]
    x_cam = np.stack([(u + 0.5 - k[0, 2]) / k[0, 0] * z, (v + 0.5 - k[1, 2]) / k[1, 1] * z, z], -1)
    r, t = w2c[:, :3], w2c[:, 3]
    return (x_cam - t) @ r


def test_camera_conventions():
    k = intrinsics(96, 128, 90.0)
    assert k[0, 0] == pytest.approx(64.0) and (k[0, 2], k[1, 2]) == (64.0, 48.0)
    eye, target = np.array([1.0, 2.0, 1.5]), np.array([3.0, 2.5, 1.0])
    w2c = look_at(eye, target)
    r = w2c[:, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    x = r @ target + w2c[:, 3]  # the target is straight ahead (+z), at its distance
    np.testing.assert_allclose(x[:2], 0.0, atol=1e-12)
    assert x[2] == pytest.approx(np.linalg.norm(target - eye))
    up = r @ (eye + np.array([0, 0, 1.0])) + w2c[:, 3]
    assert up[1] < 0  # world up is image up (-y in OpenCV)


def test_depth_is_the_ray_hit_distance(world):
    """Depth at pixel centres equals an independent re-trace along normalised rays (Euclidean
    distance / cos of the ray angle)."""
    k, w2c = world.intrinsics, world.extrinsics[5]
    rng = np.random.default_rng(0)
    v, u = rng.integers(0, CFG.height, 300), rng.integers(0, CFG.width, 300)
    o, d = pixel_rays(k, w2c, u + 0.5, v + 0.5)
    unit = d / np.linalg.norm(d, axis=1, keepdims=True)
    dist, _, _ = trace(world.scene, o, unit)
    cos = unit @ w2c[2, :3]  # camera z axis in world
    np.testing.assert_allclose(world.depth[5][v, u], dist * cos, rtol=2e-6)


@pytest.mark.parametrize("pair", [(0, 1), (2, 4), (7, 6), (0, 15)])
def test_reprojection_between_frames(world, pair):
    """A 3D point seen in frame i lands where the poses say in frame j: the ray through its
    projection hits a surface at exactly its depth (or an occluder in front, never behind)."""
    i, j = pair
    k = world.intrinsics
    rng = np.random.default_rng(i * 31 + j)
    v, u = rng.integers(0, CFG.height, 2000), rng.integers(0, CFG.width, 2000)
    x_world = backproject(world.depth[i], k, world.extrinsics[i], v, u)
    rj, tj = world.extrinsics[j][:, :3], world.extrinsics[j][:, 3]
    x_j = x_world @ rj.T + tj
    uj, vj = k[0, 0] * x_j[:, 0] / x_j[:, 2] + k[0, 2], k[1, 1] * x_j[:, 1] / x_j[:, 2] + k[1, 2]
    inside = (x_j[:, 2] > 0.05) & (uj >= 0) & (uj < CFG.width) & (vj >= 0) & (vj < CFG.height)
    assert inside.sum() > 100
    o, d = pixel_rays(k, world.extrinsics[j], uj[inside], vj[inside])
    hit, _, _ = trace(world.scene, o, d)
    z = x_j[inside, 2]
    assert np.all(hit <= z * (1 + 1e-6) + 1e-9)  # nothing is seen behind a visible surface
    same = np.abs(hit - z) <= 1e-6 * z
    assert same.mean() > 0.7  # the rest are occluded in frame j
    # and the rendered depth map agrees at the nearest pixel for points on flat, unoccluded areas
    pv, pu = np.floor(vj[inside]).astype(int), np.floor(uj[inside]).astype(int)
    near = np.abs(world.depth[j][pv, pu] - z) < 0.03 * z
    assert near[same].mean() > 0.9


def test_instances_and_projection_of_object_centres(world):
    """An object's centre, projected with the poses, falls on that object's pixels when it is in
    view and unoccluded (its centre is inside the object, so the object is what the ray hits)."""
    k, found, agree = world.intrinsics, 0, 0
    for t in range(0, len(world.extrinsics), 2):
        r, tr = world.extrinsics[t][:, :3], world.extrinsics[t][:, 3]
        for idx, obj in enumerate(world.scene.objects):
            x = r @ np.asarray(obj.centre) + tr
            if x[2] < 0.3:
                continue
            u, v = k[0, 0] * x[0] / x[2] + k[0, 2], k[1, 1] * x[1] / x[2] + k[1, 2]
            if not (0 <= u < CFG.width and 0 <= v < CFG.height):
                continue
            o, d = pixel_rays(k, world.extrinsics[t], np.array([u]), np.array([v]))
            _, _, inst = trace(world.scene, o, d)
            if inst[0] == idx:  # unoccluded: the rendered pixel there shows the object too
                found += 1
                agree += int(world.instances[t][int(v), int(u)] == idx)
    assert found > 3 and agree >= 0.8 * found


def test_metric_scale_matches_independent_formula(world):
    t, h, w = world.depth.shape
    c0 = -world.extrinsics[0][:, :3].T @ world.extrinsics[0][:, 3]
    v, u = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    dists = [np.linalg.norm(backproject(world.depth[i], world.intrinsics, world.extrinsics[i],
                                        v.ravel(), u.ravel()) - c0, axis=1).mean() for i in range(t)]
    assert world.metric_scale == pytest.approx(float(np.mean(dists)), rel=1e-5)


def test_cameras_stay_inside_the_room_and_off_objects(world):
    wdt, dep, hgt = world.scene.room
    for e in world.extrinsics:
        c = -e[:, :3].T @ e[:, 3]
        assert 0 < c[0] < wdt and 0 < c[1] < dep and 0 < c[2] < hgt
        for o in world.scene.objects:
            assert math.hypot(c[0] - o.centre[0], c[1] - o.centre[1]) > o.footprint_radius()
    assert world.depth.min() > 0.05 and np.isfinite(world.depth).all()


def hand_scene() -> Scene:
    """Four objects at known places in a 6 x 5 room."""
    def obj(cat, shape, x, y, size):
        return SceneObject(cat, shape, "red", (x, y, size[2] / 2), size)
    return Scene(room=(6.0, 5.0, 3.0), objects=(
        obj("table", "box", 1.0, 1.0, (1.2, 0.8, 0.75)),
        obj("sofa", "box", 5.0, 1.0, (2.0, 0.9, 0.8)),
        obj("lamp", "cylinder", 1.0, 4.0, (0.3, 0.3, 1.5)),
        obj("ball", "sphere", 5.0, 4.0, (0.4, 0.4, 0.4)),
        obj("ball", "sphere", 3.0, 4.5, (0.3, 0.3, 0.3)),
        obj("box", "box", 3.0, 0.5, (0.4, 0.4, 0.4)),
    ))


def test_qa_answers_are_exact():
    scene = hand_scene()
    inst = np.full((4, 8, 8), ROOM, np.int16)
    for t, idx in enumerate([1, 0, 5, 2]):  # appearance order: sofa, table, box, lamp
        inst[t:, t, :] = idx
    qa = {q.question_type: q for q in generate_qa(scene, inst, np.random.default_rng(0))}
    assert qa["room_size_estimation"].answer == "30.00"
    count = qa["object_counting"]
    cat = count.question.split("How many ")[1].split("(s)")[0]
    assert count.answer == str(sum(o.category == cat for o in scene.objects))
    dist = qa["object_abs_distance"]
    names = [o.category for o in scene.objects]
    a, b = [n for n in names if f"the {n} " in dist.question or f"the {n} (" in dist.question][:2]
    ca, cb = (np.array(scene.objects[names.index(n)].centre) for n in (a, b))
    assert float(dist.answer) == pytest.approx(np.linalg.norm(ca - cb), abs=0.005)
    size = qa["object_size_estimation"]
    n = [n for n in names if f"of the {n}," in size.question][0]
    assert size.answer == f"{100 * max(scene.objects[names.index(n)].size):.0f}"
    direction = qa["object_rel_direction"]
    q = direction.question
    a, b, c = q.split("by the ")[1].split(" and")[0], q.split("facing the ")[1].split(",")[0], q.split("is the ")[1].split(" to my")[0]
    pa, pb, pc = (np.array(scene.objects[names.index(x)].centre[:2]) for x in (a, b, c))
    f, g = pb - pa, pc - pa
    expect = "back" if f @ g < -0.2 * np.linalg.norm(f) * np.linalg.norm(g) else ("left" if f[0] * g[1] - f[1] * g[0] > 0 else "right")
    options = dict(line.split(". ", 1) for line in q.splitlines()[1:])
    assert options[direction.answer] == expect
    order = qa["obj_appearance_order"]
    options = dict(line.split(". ", 1) for line in order.question.splitlines()[1:])
    assert options[order.answer] == "sofa, table, box, lamp"
    assert len(set(options.values())) == 4


def test_rel_direction_known_case():
    """Standing at the table (1, 1) facing the sofa (5, 1) (+x): the lamp (1, 4) is on the left."""
    scene = Scene(room=(6.0, 5.0, 3.0), objects=hand_scene().objects[:3])  # table, sofa, lamp
    inst = np.full((1, 4, 4), ROOM, np.int16)
    for seed in range(20):
        for q in generate_qa(scene, inst, np.random.default_rng(seed)):
            if q.question_type == "object_rel_direction" and "by the table and facing the sofa" in q.question:
                options = dict(line.split(". ", 1) for line in q.question.splitlines()[1:])
                assert options[q.answer] == "left"
                return
    pytest.fail("no table->sofa direction question in 20 seeds")


def test_cli_writes_a_readable_dataset(tmp_path):
    out = tmp_path / "syn"
    proc = subprocess.run([sys.executable, "-m", "geovr.data.synthetic", "--out", str(out), "--scenes", "2",
                           "--size", "64x96", "--seconds", "3", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert {r["scene"] for r in lines} == {"scene_00000", "scene_00001"}
    rec = lines[0]
    assert rec["conversations"][0]["value"].startswith("<video>\n")
    assert rec["conversations"][1]["value"] == rec["answer"]
    info = probe_video(out / rec["video"])
    geo = np.load(out / rec["geometry"])
    assert info.num_frames == geo["depth"].shape[0] == 12 and (info.height, info.width) == (64, 96)
    meta = json.loads((out / "scenes" / f"{rec['scene']}.json").read_text())
    scene = Scene.from_json(meta["scene"])
    rgb, depth, inst = render(scene, geo["intrinsics"], geo["extrinsics"][4], 64, 96)
    np.testing.assert_array_equal(depth, geo["depth"][4])  # the files hold the exact geometry
    np.testing.assert_array_equal(inst, geo["instances"][4])
    frames = decode_frames(info, [4], backend="pyav").data[0].permute(1, 2, 0).numpy()
    assert np.abs(frames.astype(int) - rgb.astype(int)).mean() < 4.0
    assert not list(out.rglob("*.part"))
    _check_scene_conversations(out, lines)
    bad = subprocess.run([sys.executable, "-m", "geovr.data.synthetic", "--out", str(out), "--size", "7x9"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--size" in bad.stderr


def _check_scene_conversations(out, singles: list[dict]) -> None:
    """scenes.jsonl holds each scene's questions, and only those, as one conversation: the video
    once (first turn), every answer supervised, the order shuffled but recorded."""
    from geovr.data.chat import IGNORE_INDEX, tokenize_conversation
    from geovr.data.datasets import read_vsi590k
    from geovr.data.tiny_tokenizer import build_tiny_tokenizer

    scenes = [json.loads(x) for x in (out / "scenes.jsonl").read_text().splitlines()]
    assert [c["scene"] for c in scenes] == sorted({r["scene"] for r in singles})
    tok = build_tiny_tokenizer()
    records = {r.id: r for r in read_vsi590k(str(out / "scenes.jsonl"), strict=True).records}
    for conv in scenes:
        mine = [r for r in singles if r["scene"] == conv["scene"]]
        turns = conv["conversations"]
        asked = [(t["value"].replace("<video>\n", ""), a["value"]) for t, a in zip(turns[::2], turns[1::2])]
        assert sorted(asked) == sorted((r["conversations"][0]["value"].replace("<video>\n", ""), r["answer"])
                                       for r in mine)
        assert [sum("<video>" in t["value"] for t in turns[::2])] == [1] and turns[0]["value"].startswith("<video>")
        by_question = {r["conversations"][0]["value"].replace("<video>\n", ""): r["question_type"] for r in mine}
        assert conv["question_types"] == [by_question[q] for q, _ in asked]
        assert conv["video"] == mine[0]["video"] and conv["geometry"] == mine[0]["geometry"]
        # every answer (and its end token) is a label: one conversation teaches all of them
        text = tokenize_conversation(tok, records[conv["id"]].turns, [2, 4, 6], [0.0, 0.5])
        answers = sum(len(tok(a)["input_ids"]) + 1 for _, a in asked)
        assert int((text["labels"] != IGNORE_INDEX).sum()) == answers
    def strip(text: str) -> str:
        return text.replace("<video>\n", "")

    orders = [[strip(t["value"]) for t in c["conversations"][::2]] for c in scenes]
    generated = [[strip(r["conversations"][0]["value"]) for r in singles if r["scene"] == c["scene"]] for c in scenes]
    assert orders != generated  # shuffled (the single records keep the generator's order)


def test_colour_by_category_changes_only_the_colours():
    """The same scene seed with and without colour_by_category: the same layout and questions'
    types, every object of a category in that category's own colour (one colour per category)."""
    import dataclasses

    from geovr.data.synthetic.scene import CATEGORY_COLOURS

    assert len(set(CATEGORY_COLOURS.values())) == len(CATEGORY_COLOURS)
    plain = make_scene(5, dataclasses.replace(CFG, seconds=1.0))
    coloured = make_scene(5, dataclasses.replace(CFG, seconds=1.0, colour_by_category=True))
    assert [(o.category, o.centre, o.size) for o in plain.scene.objects] == \
        [(o.category, o.centre, o.size) for o in coloured.scene.objects]
    assert all(o.colour == CATEGORY_COLOURS[o.category] for o in coloured.scene.objects)
    assert any(o.colour != CATEGORY_COLOURS[o.category] for o in plain.scene.objects)
    np.testing.assert_array_equal(plain.depth, coloured.depth)
    assert [q.question_type for q in plain.qa] == [q.question_type for q in coloured.qa]
