"""An exported tiny model is a complete Qwen3-VL folder for plain transformers: `AutoProcessor`
and `AutoModelForImageTextToText` load it (the tiny base has no download to copy processor files
from: the export writes them), the processor prepares a video question exactly as geovr's data
pipeline does (tokens, grid, pixels), and `generate()` answers it.

Needs torchvision (HF's processors), which does not import beside this torch: CI runs the file in
its second environment (`.ci/torchvision_env`)."""
import subprocess
import sys

import pytest
import torch

pytest.importorskip("torchvision", reason="torchvision does not import beside this torch "
                                          "(CI runs this file in its torchvision environment)")

from transformers import AutoModelForImageTextToText, AutoProcessor  # noqa: E402
from transformers.video_utils import VideoMetadata  # noqa: E402

from model_helpers import small_heads, tiny_qwen3vl  # noqa: E402
from geovr.data.chat import render_chat, to_messages  # noqa: E402
from geovr.data.sampling import QwenVision  # noqa: E402
from geovr.model.checkpoint import save_geovr  # noqa: E402
from geovr.model.geovr_model import GeoVRModel  # noqa: E402


def test_auto_classes_load_the_export_and_answer_a_video_question(tok, synthetic_root, tmp_path):
    from geovr.data.dataset import VideoQADataset
    from geovr.data.datasets import read_vsi590k
    from geovr.data.qwen_inputs import QwenTransform

    ckpt = save_geovr(GeoVRModel(tiny_qwen3vl(tok), small_heads()), tmp_path / "ckpt", tokenizer=tok)
    res = subprocess.run([sys.executable, "-m", "geovr.export", "--ckpt", str(ckpt), "--out", str(tmp_path / "plain")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    processor = AutoProcessor.from_pretrained(tmp_path / "plain")
    assert type(processor).__name__ == "Qwen3VLProcessor"
    model = AutoModelForImageTextToText.from_pretrained(tmp_path / "plain").eval()
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"

    vision = QwenVision()
    sample = VideoQADataset(read_vsi590k(str(synthetic_root / "train.jsonl")).records, backend="pyav")[0]
    ours = QwenTransform(tok, vision=vision)(sample)
    frames, dup = sample.frames, vision.temporal_patch_size
    meta = VideoMetadata(total_num_frames=frames.info.num_frames, fps=frames.info.fps,
                         frames_indices=[i for i in frames.indices for _ in range(dup)])
    size = {"shortest_edge": vision.min_pixels,
            "longest_edge": dup * len(frames.indices) * vision.max_tokens_per_frame * vision.factor ** 2}
    text = render_chat(tok, to_messages(sample.record.turns))
    theirs = processor(text=[text], videos=[frames.data.repeat_interleave(dup, 0)], video_metadata=[meta],
                       return_tensors="pt", do_sample_frames=False, cap_pixels_per_frame=False, size=size)
    assert torch.equal(ours["input_ids"], theirs["input_ids"][0])
    assert torch.equal(ours["video_grid_thw"], theirs["video_grid_thw"])
    torch.testing.assert_close(ours["pixel_values_videos"], theirs["pixel_values_videos"], atol=1e-5, rtol=0)

    question = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "How many chairs are there?"}]}],
        add_generation_prompt=True)
    inputs = processor(text=[question], videos=[frames.data.repeat_interleave(dup, 0)], video_metadata=[meta],
                       return_tensors="pt", do_sample_frames=False, cap_pixels_per_frame=False, size=size)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert isinstance(processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0], str)
