"""Reading VSI-Bench-layout and LLaVA-style question files; prompts."""
import json

import pytest

from geovr.data.errors import RecordError
from geovr.eval.questions import detect_format, find_questions_file, read_questions, vsibench_prompt


def test_vsibench_layout(vsibench_dir):
    qs = read_questions(str(vsibench_dir))
    assert detect_format(find_questions_file(str(vsibench_dir))) == "vsibench"
    assert len(qs) == 6 and [q.id for q in qs] == [str(i) for i in range(6)]
    assert qs[0].video == str(vsibench_dir / "arkitscenes" / "41069025.mp4")
    assert qs[1].video == str(vsibench_dir / "scannet" / "scene0011_00.mp4")
    assert qs[0].prompt == ("These are frames of a video.\nHow many chair(s) are in this room?\n"
                            "Please answer the question using a single word or phrase.")
    assert qs[2].prompt == ("These are frames of a video.\nIf I am standing by the sofa and facing the table, is "
                            "the lamp to my left or right?\nOptions:\nA. left\nB. right\n"
                            "Answer with the option's letter from the given choices directly.")
    assert qs[2].options == ("A. left", "B. right") and qs[0].options is None
    assert qs[3].doc["scene_name"] == "scene0011_00"


def test_llava_questions_from_the_synthetic_world(synthetic_root):
    qs = read_questions(str(synthetic_root / "train.jsonl"))
    # the folder: its questions (train.jsonl), not the per-scene conversations (scenes.jsonl sorts first)
    assert find_questions_file(str(synthetic_root)) == str(synthetic_root / "train.jsonl")
    rows = [json.loads(line) for line in (synthetic_root / "train.jsonl").read_text().splitlines()]
    assert [q.id for q in qs] == [r["id"] for r in rows]
    for q, r in zip(qs, rows):
        assert q.ground_truth == r["answer"] and q.question_type == r["question_type"]
        assert "<video>" not in q.prompt and q.prompt.startswith("These are frames of a video.")
        assert q.video.endswith(r["video"])
        if q.options:
            assert all(o[0] in "ABCD" and o[1] == "." for o in q.options)


def _write(tmp_path, records):
    p = tmp_path / "q.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return str(p)


GOOD = {"id": 1, "dataset": "scannet", "scene_name": "s", "question_type": "object_counting",
        "question": "How many?", "options": None, "ground_truth": "2"}


@pytest.mark.parametrize("change, field", [
    ({"ground_truth": None}, "ground_truth"),
    ({"question_type": "object_colour"}, "question_type"),
    ({"question_type": "route_planning"}, "options"),
    ({"scene_name": None}, "scene_name"),
])
def test_bad_records_name_the_field(tmp_path, change, field):
    with pytest.raises(RecordError) as err:
        read_questions(_write(tmp_path, [{**GOOD, **change}]), "vsibench")
    assert err.value.field == field and ":1" in err.value.where


def test_duplicate_ids_and_missing_data(tmp_path):
    with pytest.raises(RecordError, match="more than once"):
        read_questions(_write(tmp_path, [GOOD, GOOD]), "vsibench")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_questions(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no questions file"):
        read_questions(str(tmp_path / "empty"))


def test_parquet_questions(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (VSI-Bench parquet needs it)")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([GOOD, {**GOOD, "id": 2, "question_type": "object_rel_distance",
                                                "options": ["A. x", "B. y"], "ground_truth": "B"}]),
                   tmp_path / "test-00000-of-00001.parquet")
    qs = read_questions(str(tmp_path))
    assert [q.question_type for q in qs] == ["object_counting", "object_rel_distance"]
    assert qs[1].options == ("A. x", "B. y")


def test_prompt_requires_options_for_choice():
    with pytest.raises(ValueError, match="without options"):
        vsibench_prompt("object_rel_distance", "Which?", None)


def test_default_output_names_differ_between_runs(tmp_path):
    from geovr.eval.model_io import model_name

    for run in ("tiny", "paper"):
        (tmp_path / run / "final").mkdir(parents=True)
        (tmp_path / run / "final" / "geovr_config.json").write_text("{}")
        (tmp_path / run / "checkpoints" / "step_00000040").mkdir(parents=True)
    assert model_name(tmp_path / "tiny" / "final") == "tiny" and model_name(tmp_path / "paper" / "final") == "paper"
    assert model_name(tmp_path / "tiny" / "final" / "base") == "tiny"
    assert model_name(tmp_path / "paper" / "checkpoints" / "step_00000040") == "paper_step_00000040"
    assert model_name("/models/Qwen3-VL-2B-Instruct") == "Qwen3-VL-2B-Instruct"
