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
    proc = subprocess.run([sys.executable, "-m", "geovr.export", "--ckpt", str(tmp_path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "neither a GeoVR model folder" in proc.stderr and "Traceback" not in proc.stderr


def test_exported_model_stops_generating_at_the_end_of_its_turn(tok, tmp_path):
    """The export carries the chat template's end tokens as eos and pad, so a plain generate()
    stops after the answer: here a tiny model whose LM head always prefers `<|im_end|>`."""
    import json

    from transformers import Qwen3VLForConditionalGeneration

    base = tiny_qwen3vl(tok).eval()
    assert not base.config.tie_word_embeddings  # the head can change alone
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = tok.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "How many chairs?"}]}],
                                  add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
    with torch.no_grad():
        hidden = base.model(input_ids=ids).last_hidden_state[0, -1]
        base.lm_head.weight.zero_()
        base.lm_head.weight[im_end] = hidden.sign()  # <|im_end|> the only positive logit at the first step
    assert base.generation_config.eos_token_id is None  # what the export must fill in
    ckpt = save_geovr(GeoVRModel(base, small_heads()), tmp_path / "ckpt", tokenizer=tok)
    proc = subprocess.run([sys.executable, "-m", "geovr.export", "--ckpt", str(ckpt), "--out", str(tmp_path / "plain")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    gen = json.loads((tmp_path / "plain" / "generation_config.json").read_text())
    assert im_end in (gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]])
    assert gen["pad_token_id"] == tok.pad_token_id
    plain = Qwen3VLForConditionalGeneration.from_pretrained(tmp_path / "plain").eval()
    out = plain.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False)
    assert out.shape[1] - ids.shape[1] == 1 and out[0, -1] == im_end  # stopped at once, not after 20 tokens
