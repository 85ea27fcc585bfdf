"""Our tensor-op Qwen3-VL inputs against HF's own processors, which need torchvision.

torchvision does not import beside the CPU torch 2.13 of `pytest tests`, so this module skips
there. CI runs it in a second environment where torchvision imports (torch 2.14.1 +
torchvision 0.29.1; see README, "HF processor parity"). Compared: pixel_values and grids of the
video processor (Qwen3VLVideoProcessor) and the torchvision image processor over resizes up and
down, and whole dataset samples (a synthetic video, a png) through Qwen3VLProcessor: input_ids,
mm_token_type_ids, pixels and grids; and the evaluation harness's generation prompt.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("torchvision", reason="torchvision does not import beside this torch "
                                          "(CI runs this file in its torchvision environment)")

from transformers import Qwen3VLVideoProcessor  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor  # noqa: E402
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor  # noqa: E402
from transformers.video_utils import VideoMetadata  # noqa: E402

from clips import write_png  # noqa: E402
from geovr.data.chat import render_chat, to_messages  # noqa: E402
from geovr.data.qwen_pixels import to_qwen_image_pixels, to_qwen_pixels  # noqa: E402
from geovr.data.sampling import QwenImageVision, QwenVision, patch_timestamps  # noqa: E402


def _video_processor(vision: QwenVision, frames: int) -> tuple[Qwen3VLVideoProcessor, dict]:
    """HF's video processor and the call settings that express our per-frame budget: frames are
    given already sampled and duplicated, the pixel range is over all (duplicated) frames."""
    kwargs = {"do_sample_frames": False, "cap_pixels_per_frame": False,
              "size": {"shortest_edge": vision.min_pixels,
                       "longest_edge": vision.temporal_patch_size * frames * vision.max_tokens_per_frame
                       * vision.factor ** 2}}
    return Qwen3VLVideoProcessor(), kwargs


def _image_processor(vision: QwenImageVision) -> Qwen2VLImageProcessor:
    return Qwen2VLImageProcessor(patch_size=vision.patch_size, merge_size=vision.merge_size,
                                 temporal_patch_size=vision.temporal_patch_size, image_mean=[0.5] * 3,
                                 image_std=[0.5] * 3,
                                 size={"shortest_edge": vision.min_pixels, "longest_edge": vision.max_pixels})


@pytest.mark.parametrize("t,h,w", [
    (4, 480, 640),     # downscaled
    (32, 480, 640),    # the release's most frames
    (1, 97, 131),      # one frame, odd size, upscaled to the minimum
    (5, 720, 1280),    # odd frame count, 16:9
    (3, 64, 48),       # portrait, upscaled
])
def test_video_pixels_equal_hf_video_processor(t, h, w):
    vision = QwenVision()
    frames = torch.from_numpy(np.random.default_rng(t * h).integers(0, 256, (t, 3, h, w), dtype=np.uint8))
    proc, kwargs = _video_processor(vision, t)
    ref = proc(videos=[frames.repeat_interleave(vision.temporal_patch_size, 0)], return_tensors="pt", **kwargs)
    pv, grid = to_qwen_pixels(frames, vision)
    assert ref["video_grid_thw"][0].tolist() == grid.tolist()
    torch.testing.assert_close(pv, ref["pixel_values_videos"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("t,h,w", [
    (128, 480, 640),   # the release's evaluation: 128 frames, 4..384 tokens each
    (32, 480, 640),
    (5, 720, 1280),    # odd: the last frame repeated into the last patch
    (3, 64, 48),       # portrait, upscaled to the minimum
])
def test_paired_frames_equal_hf_video_processor_given_the_frames(t, h, w):
    """HF's processor given the frames themselves (no duplication) with the release evaluation's
    `video_processor.size` = {shortest_edge: 4 t 32 32, longest_edge: 384 t 32 32}; and the
    processor's timestamps per temporal patch."""
    vision = QwenVision(pair_frames=True, min_tokens_per_frame=4, max_tokens_per_frame=384)
    frames = torch.from_numpy(np.random.default_rng(t * w).integers(0, 256, (t, 3, h, w), dtype=np.uint8))
    ref = Qwen3VLVideoProcessor()(videos=[frames], return_tensors="pt", do_sample_frames=False,
                                  cap_pixels_per_frame=False,
                                  size={"shortest_edge": 4 * t * 32 * 32, "longest_edge": 384 * t * 32 * 32})
    pv, grid = to_qwen_pixels(frames, vision)
    assert ref["video_grid_thw"][0].tolist() == grid.tolist() and grid[0] == (t + 1) // 2
    torch.testing.assert_close(pv, ref["pixel_values_videos"], atol=1e-5, rtol=0)
    indices = np.linspace(0, 3 * t, t).round().astype(int).tolist()
    for v in (vision, QwenVision()):
        want = Qwen3VLProcessor._calculate_timestamps(None, list(indices) if v.pair_frames else
                                                      [i for i in indices for _ in range(2)], 29.97, 2)
        assert patch_timestamps(indices, 29.97, v) == pytest.approx(want, abs=0, rel=0)


@pytest.mark.gpu
@pytest.mark.parametrize("t,h,w", [(4, 480, 640), (3, 64, 48), (5, 720, 1280)])
def test_video_pixels_equal_hf_video_processor_on_gpu(t, h, w):
    """On CUDA, torchvision resizes uint8 in float then clamps and rounds (no native uint8
    kernel there): frames already on the GPU (as after DALI) give HF's GPU pixels."""
    vision = QwenVision()
    frames = torch.from_numpy(np.random.default_rng(t * h).integers(0, 256, (t, 3, h, w), dtype=np.uint8)).cuda()
    proc, kwargs = _video_processor(vision, t)
    ref = proc(videos=[frames.repeat_interleave(vision.temporal_patch_size, 0)], device="cuda",
               return_tensors="pt", **kwargs)
    pv, grid = to_qwen_pixels(frames, vision)
    assert pv.is_cuda and ref["video_grid_thw"][0].tolist() == grid.tolist()
    torch.testing.assert_close(pv, ref["pixel_values_videos"].to(pv.device), atol=1e-5, rtol=0)


@pytest.mark.parametrize("h,w", [(480, 640), (1080, 1920), (50, 70), (333, 77)])
def test_image_pixels_equal_hf_image_processor(h, w):
    vision = QwenImageVision()
    img = torch.from_numpy(np.random.default_rng(h + w).integers(0, 256, (1, 3, h, w), dtype=np.uint8))
    ref = _image_processor(vision)(images=[img[0]], return_tensors="pt")
    pv, grid = to_qwen_image_pixels(img, vision)
    assert ref["image_grid_thw"][0].tolist() == grid.tolist()
    torch.testing.assert_close(pv, ref["pixel_values"], atol=1e-5, rtol=0)


def _hf_processor(tok) -> Qwen3VLProcessor:
    return Qwen3VLProcessor(image_processor=_image_processor(QwenImageVision()), tokenizer=tok,
                            video_processor=Qwen3VLVideoProcessor())


def _hf_on_frames(tok, vision: QwenVision, text: str, frames) -> dict:
    """Qwen3VLProcessor on decoded frames (a `Frames`: data, indices, info), duplicated as our
    pipeline does, with the metadata its timestamps come from."""
    dup = vision.temporal_patch_size
    meta = VideoMetadata(total_num_frames=frames.info.num_frames, fps=frames.info.fps,
                         frames_indices=[i for i in frames.indices for _ in range(dup)])
    _, kwargs = _video_processor(vision, len(frames.indices))
    return _hf_processor(tok)(text=[text], videos=[frames.data.repeat_interleave(dup, 0)],
                                      video_metadata=[meta], return_tensors="pt", **kwargs)


def test_video_sample_equals_hf_processor(synthetic_root, tok):
    """A decoded synthetic video through our QwenTransform and through Qwen3VLProcessor (given the
    same sampled frames and their metadata): the same tokens, timestamps included, and pixels."""
    from geovr.data.dataset import VideoQADataset
    from geovr.data.datasets import read_vsi590k
    from geovr.data.qwen_inputs import QwenTransform

    vision = QwenVision()
    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    sample = VideoQADataset(recs, backend="pyav")[0]
    ours = QwenTransform(tok, vision=vision)(sample)
    ref = _hf_on_frames(tok, vision, render_chat(tok, to_messages(sample.record.turns)), sample.frames)
    assert tok.decode(ours["input_ids"]) == tok.decode(ref["input_ids"][0])
    assert torch.equal(ours["input_ids"], ref["input_ids"][0])
    assert torch.equal(ours["mm_token_type_ids"], ref["mm_token_type_ids"][0])
    assert torch.equal(ours["video_grid_thw"], ref["video_grid_thw"])
    torch.testing.assert_close(ours["pixel_values_videos"], ref["pixel_values_videos"], atol=1e-5, rtol=0)


def test_image_sample_equals_hf_processor(tmp_path, tok):
    """A LLaVA image record (a png read by PyAV) through our QwenTransform and Qwen3VLProcessor."""
    from geovr.data.dataset import VideoQADataset
    from geovr.data.datasets import read_llava
    from geovr.data.qwen_inputs import QwenTransform

    rgb = np.random.default_rng(4).integers(0, 256, (150, 260, 3), dtype=np.uint8)
    write_png(tmp_path / "room.png", rgb)
    (tmp_path / "img.json").write_text(json.dumps([{"id": "img", "image": "room.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is on the left?"}, {"from": "gpt", "value": "a chair"}]}]))
    sample = VideoQADataset(read_llava(str(tmp_path / "img.json")).records, backend="pyav")[0]
    ours = QwenTransform(tok)(sample)
    ref = _hf_processor(tok)(text=[render_chat(tok, to_messages(sample.record.turns))],
                                           images=[sample.frames.data[0]], return_tensors="pt")
    assert torch.equal(sample.frames.data[0].permute(1, 2, 0), torch.from_numpy(rgb))  # png is lossless
    assert torch.equal(ours["input_ids"], ref["input_ids"][0])
    assert torch.equal(ours["mm_token_type_ids"], ref["mm_token_type_ids"][0])
    assert torch.equal(ours["image_grid_thw"], ref["image_grid_thw"])
    torch.testing.assert_close(ours["pixel_values"], ref["pixel_values"], atol=1e-5, rtol=0)


def test_eval_prompt_equals_hf_processor(synthetic_root, tok):
    """The evaluation harness's question encoding (QuestionEncoder: the video, the question as one
    user turn, then the generation prompt) equals Qwen3VLProcessor's on the same frames."""
    from geovr.data.dataset import load_video
    from geovr.data.sampling import FrameSampling
    from geovr.eval.inputs import QuestionEncoder

    vision = QwenVision()
    video = str(next((synthetic_root / "videos").glob("*.mp4")))
    enc = QuestionEncoder(tok, vision=vision, backend="pyav").encode(video, "How many chairs are in the room?", "q0")
    messages = [{"role": "user", "content": [{"type": "video"},
                                             {"type": "text", "text": "How many chairs are in the room?"}]}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ref = _hf_on_frames(tok, vision, text, load_video(video, FrameSampling(), "pyav"))
    assert tok.decode(enc.input_ids) == tok.decode(ref["input_ids"][0])
    assert torch.equal(enc.input_ids, ref["input_ids"][0])
    assert torch.equal(enc.mm_token_type_ids, ref["mm_token_type_ids"][0])
    torch.testing.assert_close(enc.pixel_values_videos, ref["pixel_values_videos"], atol=1e-5, rtol=0)


def test_release_protocol_question_equals_hf_processor_sampling_the_video(synthetic_root, tok):
    """`--protocol release`: the harness's encoding of a question (exactly 128 frames of a 16-frame
    clip, paired, 4..384 tokens a frame, the release's prompt) equals Qwen3VLProcessor given the
    whole decoded clip and `num_frames=128` (it samples the frames itself, as eval_vsi.py has it)."""
    from geovr.data.decode import decode_frames, probe_video
    from geovr.eval.inputs import QuestionEncoder
    from geovr.eval.protocol import protocol
    from geovr.eval.questions import release_prompt

    p = protocol("release")
    video = str(next((synthetic_root / "videos").glob("*.mp4")))
    prompt = release_prompt("route_planning", "Which way to the door?", ["A. left", "B. right"])
    enc = QuestionEncoder(tok, p.sampling, p.vision, backend="pyav").encode(video, prompt, "q0")
    info = probe_video(video)
    whole = decode_frames(info, list(range(info.num_frames)), backend="pyav")
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt}]}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    meta = VideoMetadata(total_num_frames=info.num_frames, fps=info.fps, frames_indices=list(range(info.num_frames)))
    n = p.sampling.count
    ref = _hf_processor(tok)(text=[text], videos=[whole.data], video_metadata=[meta], return_tensors="pt",
                             do_sample_frames=True, num_frames=n, fps=None, cap_pixels_per_frame=False,
                             size={"shortest_edge": 4 * n * 32 * 32, "longest_edge": 384 * n * 32 * 32})
    assert info.num_frames < n and int(ref["video_grid_thw"][0, 0]) == n // 2
    assert tok.decode(enc.input_ids) == tok.decode(ref["input_ids"][0])
    assert torch.equal(enc.input_ids, ref["input_ids"][0])
    assert torch.equal(enc.mm_token_type_ids, ref["mm_token_type_ids"][0])
    assert torch.equal(enc.video_grid_thw, ref["video_grid_thw"])
    torch.testing.assert_close(enc.pixel_values_videos, ref["pixel_values_videos"], atol=1e-5, rtol=0)
