"""The exported model is what lmms-eval users evaluate: lmms-eval's own `qwen3_vl` model class
loads the folder `python -m geovr.export` writes and answers a VSI-Bench question on a real video,
offline, and the reply scores the same under lmms-eval's scorer and `--scoring lmms-eval`.

Needs torchvision, lmms-eval and the modules its model class imports (decord, accelerate,
qwen-vl-utils, evaluate): `.ci/torchvision_env` installs them; skipped elsewhere."""
import dataclasses
import importlib.util
import subprocess
import sys

import pytest
import torch

pytest.importorskip("torchvision", reason="lmms-eval's qwen3_vl needs torchvision")
qwen3_vl = pytest.importorskip("lmms_eval.models.simple.qwen3_vl", reason="lmms-eval's qwen3_vl imports are missing")

from geovr.eval.scoring import score_answer  # noqa: E402
from geovr.model.checkpoint import save_geovr  # noqa: E402
from geovr.model.config import GeoVRConfig  # noqa: E402
from geovr.model.geovr_model import GeoVRModel  # noqa: E402
from geovr.model.tiny import tiny_qwen3vl  # noqa: E402


@pytest.fixture(scope="module")
def exported(tok, tmp_path_factory):
    """A tiny GeoVR checkpoint whose processor files come from a 'downloaded' Qwen3-VL folder,
    exported with the CLI."""
    from transformers import Qwen3VLVideoProcessor
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    root = tmp_path_factory.mktemp("lmms_export")
    download = root / "Qwen3-VL-download"
    Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok, video_processor=Qwen3VLVideoProcessor(),
                     chat_template=tok.chat_template).save_pretrained(download)
    cfg = dataclasses.replace(GeoVRConfig.paper(), teacher_dim=32, camera_hidden=32, scale_hidden=16,
                              dpt_channels=(8, 16, 16, 16), dpt_features=8, projector_hidden=32)
    model = GeoVRModel(tiny_qwen3vl(tok, layers=4, hidden=64).eval(), cfg)
    ckpt = save_geovr(model, root / "ckpt", tokenizer=tok, processor_files_from=str(download))
    proc = subprocess.run([sys.executable, "-m", "geovr.export", "--ckpt", str(ckpt), "--out", str(root / "plain")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return root / "plain"


def _vsibench_utils():
    spec = importlib.util.find_spec("lmms_eval")
    path = spec.submodule_search_locations[0] + "/tasks/vsibench/utils.py"
    mod_spec = importlib.util.spec_from_file_location("lmms_eval_vsibench_utils_m", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def test_lmms_eval_qwen3_vl_answers_a_question_with_the_exported_model(exported, synthetic_root, monkeypatch):
    from lmms_eval.api.instance import Instance

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm = qwen3_vl.Qwen3_VL(pretrained=str(exported), device="cpu", device_map="cpu", max_num_frames=4,
                           max_pixels=128 * 128, min_pixels=32 * 32)
    assert type(lm.model).__name__ == "Qwen3VLForConditionalGeneration"
    # no GeoVR part made it into the plain model
    assert not [n for n, _ in lm.model.named_parameters() if "camera" in n or "depth_head" in n or "projector" in n]
    utils = _vsibench_utils()
    doc = {"id": 0, "dataset": "arkitscenes", "scene_name": "s", "question_type": "object_counting",
           "question": "How many chair(s) are in this room?", "options": None, "ground_truth": "3"}
    video = str(synthetic_root / "videos" / "scene_00000.mp4")
    lm.task_dict = {"vsibench": {"test": {0: doc}}}
    context = utils.vsibench_doc_to_text(doc)
    request = Instance("generate_until", (context, {"max_new_tokens": 4, "temperature": 0}, lambda d: [video], 0,
                                          "vsibench", "test"), idx=0, metadata={"task": "vsibench", "doc_id": 0, "repeats": 1})
    with torch.no_grad():
        (reply,) = lm.generate_until([request])
    assert isinstance(reply, str)
    theirs = utils.vsibench_process_results(dict(doc), [reply])["vsibench_overall"]["MRA:.5:.95:.05"]
    assert score_answer("object_counting", reply, "3", scoring="lmms-eval").score == pytest.approx(theirs, abs=1e-12)
