"""Checkpoint round trip and export: the exported folder is a plain Qwen3-VL (no GeoVR weights)
whose logits equal the trained GeoVR model's with the geometric tokens off."""
import dataclasses
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from model_helpers import small_heads, tiny_qwen3vl
from geovr.model.checkpoint import load_geovr, save_geovr
from geovr.model.config import GeoVRConfig
from geovr.model.geovr_model import GeoVRModel


def test_checkpoint_round_trip_and_export(tok, batch, tmp_path):
    b, _ = batch
    model = GeoVRModel(tiny_qwen3vl(tok), small_heads())
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)  # move every weight away from its init
    out = model(b)
    (out.loss_text + sum(p.sum() for p in out.pose) + out.scale.sum() + sum(d.mean() for d in out.depth)).backward()
    opt.step()
    model.eval()
    ckpt = save_geovr(model, tmp_path / "ckpt", tokenizer=tok)
    again = load_geovr(ckpt).eval()
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    proc = subprocess.run([sys.executable, "-m", "geovr.export", "--ckpt", str(ckpt), "--out", str(tmp_path / "plain")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration

    plain = Qwen3VLForConditionalGeneration.from_pretrained(tmp_path / "plain").eval()
    for f in (tmp_path / "plain").glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as st:
            assert not [k for k in st.keys() if "camera" in k or "projector" in k or "depth_head" in k]
    off = GeoVRModel(again.base, dataclasses.replace(GeoVRConfig.off(), text_logits="all"))
    with torch.no_grad():
        ref = off(b).logits
        got = plain(input_ids=b["input_ids"], attention_mask=b["attention_mask"], mm_token_type_ids=b["mm_token_type_ids"],
                    pixel_values_videos=b["pixel_values_videos"], video_grid_thw=b["video_grid_thw"]).logits
    assert torch.equal(ref, got)
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "plain")
    assert tok2.chat_template == tok.chat_template and tok2("<|video_pad|>")["input_ids"] == tok("<|video_pad|>")["input_ids"]
    assert not list(tmp_path.glob("*.part"))


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a GeoVR checkpoint"):
        load_geovr(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "geovr.export", "--ckpt", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
