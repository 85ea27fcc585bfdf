import json
import shutil

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tok):
    """A tiny random Qwen3-VL saved as a plain HF folder with the tiny tokenizer."""
    from geovr.model.tiny import tiny_qwen3vl

    out = tmp_path_factory.mktemp("tiny_qwen3vl")
    tiny_qwen3vl(tok, layers=2, hidden=64).save_pretrained(out)
    tok.save_pretrained(out)
    return out


VSI_RECORDS = [
    ("object_counting", "How many chair(s) are in this room?", None, "3"),
    ("object_abs_distance", "Measuring from the closest point of each object, what is the distance between "
                            "the sofa and the table (in meters)?", None, "2.4"),
    ("object_rel_direction_easy", "If I am standing by the sofa and facing the table, is the lamp to my left "
                                  "or right?", ["A. left", "B. right"], "A"),
    ("route_planning", "You are a robot beginning at the door. Which turn?",
     ["A. Turn Left", "B. Turn Right", "C. Go forward", "D. Turn Back"], "C"),
    ("room_size_estimation", "What is the size of this room (in square meters)?", None, "18.5"),
    ("object_rel_direction_hard", "Standing by the bed facing the tv, is the box front-left or back-right?",
     ["A. front-left", "B. back-right", "C. front-right", "D. back-left"], "D"),
]


@pytest.fixture(scope="session")
def vsibench_dir(tmp_path_factory, synthetic_root):
    """A folder in VSI-Bench's layout: test.jsonl + <dataset>/<scene_name>.mp4 (synthetic videos)."""
    root = tmp_path_factory.mktemp("vsibench")
    for ds, scene in (("arkitscenes", "41069025"), ("scannet", "scene0011_00")):
        (root / ds).mkdir()
    shutil.copy(synthetic_root / "videos" / "scene_00000.mp4", root / "arkitscenes" / "41069025.mp4")
    shutil.copy(synthetic_root / "videos" / "scene_00001.mp4", root / "scannet" / "scene0011_00.mp4")
    lines = []
    for i, (qtype, question, options, truth) in enumerate(VSI_RECORDS):
        ds, scene = (("arkitscenes", "41069025"), ("scannet", "scene0011_00"))[i % 2]
        lines.append(json.dumps({"id": i, "dataset": ds, "scene_name": scene, "question_type": qtype,
                                 "question": question, "options": options, "ground_truth": truth}))
    (root / "test.jsonl").write_text("\n".join(lines) + "\n")
    return root
