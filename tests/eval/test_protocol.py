"""`--protocol`: the lmms-eval and release evaluation protocols (prompts, frames, pixel budget,
decoding, scoring chosen together), single options overriding them, and what the run records."""
import json

import numpy as np
import pytest

from geovr.data.sampling import FrameSampling, QwenVision
from geovr.eval.generation import GenerationSettings
from geovr.eval.protocol import PROTOCOLS, protocol
from geovr.eval.questions import read_questions, release_prompt
from geovr.eval.vsibench import main


def test_lmms_eval_is_the_harness_as_it_was():
    """The default protocol keeps every default the harness had before protocols (older runs resume)."""
    p = protocol("lmms-eval")
    assert (p.prompts, p.scoring) == ("lmms-eval", "lmms-eval")
    assert p.sampling == FrameSampling() and p.vision == QwenVision() and p.generation == GenerationSettings()
    assert p.frames_record() == {"fps": 2.0, "min": 4, "max": 32, "tokens_per_frame": 300}


def test_release_is_its_eval_script():
    p = protocol("release")
    assert (p.prompts, p.scoring) == ("release", "release")
    assert p.sampling.count == 128
    assert (p.vision.pair_frames, p.vision.min_tokens_per_frame, p.vision.max_tokens_per_frame) == (True, 4, 384)
    g = p.generation
    assert (g.do_sample, g.temperature, g.top_p, g.top_k, g.repetition_penalty, g.max_new_tokens, g.seed) == \
        (True, 0.7, 0.8, 20, 1.0, 32768, 42)
    assert "exactly 128 frames" in p.describe() and "release scoring" in p.describe()


def test_release_prompts():
    assert release_prompt("object_counting", "How many chairs?", None) == \
        "How many chairs?\nPlease answer the question ONLY using a single Arabic numeral."
    assert release_prompt("route_planning", "Which way?", ["A. left", "B. right"]) == \
        "Which way?\nA. left\nB. right\nAnswer with ONLY the option's letter directly."


def test_overrides():
    rel = protocol("release")
    p = rel.override(max_frames=16, tokens_per_frame=200, scoring="lmms-eval", do_sample=False, seed=None)
    assert p.sampling.count == 16 and p.vision.max_tokens_per_frame == 200 and p.vision.pair_frames
    assert p.scoring == "lmms-eval" and not p.generation.do_sample and p.generation.seed == 42
    assert p.frames_record()["count"] == 16 and p.name == "release"
    with pytest.raises(ValueError, match="--fps and --min-frames do not apply to --protocol release"):
        rel.override(fps=1.0)
    lm = protocol("lmms-eval").override(fps=1.0, max_frames=8, top_k=5)
    assert lm.sampling == FrameSampling(1.0, 4, 8) and lm.generation.top_k == 5
    assert protocol("lmms-eval").override() == PROTOCOLS["lmms-eval"]
    with pytest.raises(ValueError, match="choose one of"):
        protocol("vlmevalkit")


def test_release_frames_are_its_processors(tok, vsibench_dir):
    """128 frames of a 16-frame clip: HF's num_frames indices (repeats), two a temporal patch."""
    from geovr.eval.inputs import QuestionEncoder
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor
    from transformers.video_utils import VideoMetadata

    p = protocol("release")
    q = read_questions(str(vsibench_dir), prompts=p.prompts)[0]
    e = QuestionEncoder(tok, p.sampling, p.vision, "pyav")(q)
    want = Qwen3VLVideoProcessor().sample_frames(VideoMetadata(total_num_frames=16, fps=4.0), num_frames=128)
    assert e.frame_indices == want.tolist() and len(e.frame_indices) == 128
    assert int(e.video_grid_thw[0, 0]) == 64
    assert np.diff(e.frame_indices).min() == 0  # repeated frames, as the processor feeds them


def _rows(out):
    return [json.loads(line) for line in (out / "samples_vsibench.jsonl").read_text().splitlines()]


def test_cli_release_protocol_records_itself(tiny_model_dir, vsibench_dir, tmp_path, capsys):
    out = tmp_path / "rel"
    args = ["--model", str(tiny_model_dir), "--data", str(vsibench_dir), "--output", str(out), "--quiet",
            "--device", "cpu", "--protocol", "release", "--max-new-tokens", "3"]
    assert main(args) == 0
    result = json.loads((out / "results.json").read_text())
    cfg = result["config"]
    assert cfg["protocol"] == "release"
    assert cfg["frames"] == {"fps": 2.0, "min": 4, "max": 128, "tokens_per_frame": 384, "count": 128,
                             "pair_frames": True, "min_tokens_per_frame": 4}
    assert cfg["generation"] == {"max_new_tokens": 3, "do_sample": True, "temperature": 0.7, "top_p": 0.8, "seed": 42,
                                 "top_k": 20, "repetition_penalty": 1.0}
    assert result["results"]["vsibench"]["scoring"] == "release"
    assert "`--protocol release`" in (out / "results.md").read_text()
    for r in _rows(out):
        prompt = r["arguments"]["prompt"]
        assert prompt.startswith(r["doc"]["question"] + "\n")
        assert prompt.endswith("single Arabic numeral." if r["doc"]["options"] is None else "letter directly.")
    # the scorer still overrides, and a resume under it answers nothing again
    replies = [r["resps"] for r in _rows(out)]
    assert main(args + ["--scoring", "lmms-eval"]) == 0
    assert json.loads((out / "results.json").read_text())["results"]["vsibench"]["scoring"] == "lmms-eval"
    assert [r["resps"] for r in _rows(out)] == replies
    # another protocol's answers are not mixed in
    assert main(args[:-4] + ["--max-new-tokens", "3"]) == 2
    assert "protocol" in capsys.readouterr().err
    assert main(args + ["--fps", "1"]) == 2
    assert "do not apply to --protocol release" in capsys.readouterr().err


def test_a_run_written_before_protocols_resumes_under_lmms_eval(tiny_model_dir, vsibench_dir, tmp_path):
    out = tmp_path / "old"
    args = ["--model", str(tiny_model_dir), "--data", str(vsibench_dir), "--output", str(out), "--quiet",
            "--device", "cpu", "--max-new-tokens", "2"]
    assert main(args) == 0
    cfg_path = out / "run_config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["protocol"]  # as the harness wrote it before
    cfg_path.write_text(json.dumps(cfg))
    lines = (out / "samples_vsibench.jsonl").read_text().splitlines(keepends=True)
    (out / "samples_vsibench.jsonl").write_text("".join(lines[:3]))
    assert main(args) == 0
    assert len(_rows(out)) == 6
    assert main(args + ["--protocol", "release", "--max-frames", "8"]) == 2
