"""The Megatron Qwen3-VL equals HF's: logits and per-token loss at TP=1, TP=2, PP=2 and TP=2 x PP=2
(4 gloo processes, megatron-core's own schedules), tied and untied embeddings; the weights come back
unchanged from the shards (the conversion round-trips through a live model)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("megatron.core")

HERE = Path(__file__).parent
LAYOUTS = "1,1;2,1;1,2;2,2"
TOL = 2e-5  # fp32: different reduction order in the split matmuls


def _reference(model, batch):
    keys = ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values_videos", "video_grid_thw")
    with torch.no_grad():
        logits = model(**{k: batch[k] for k in keys}).logits
    labels = batch["labels"]
    loss = torch.zeros(labels.shape)
    loss[:, :-1] = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100,
                                   reduction="none").view(labels.shape[0], -1)
    return logits, loss


@pytest.fixture(scope="module")
def report(batch, tok, tmp_path_factory):
    from geovr.model.tiny import tiny_qwen3vl

    tmp = tmp_path_factory.mktemp("mcore")
    models = {}
    for name, tied in (("untied", False), ("tied", True)):
        model = tiny_qwen3vl(tok, layers=6).eval()
        if tied:
            model.config.tie_word_embeddings = model.config.text_config.tie_word_embeddings = True
            model.tie_weights()
            assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr()
        logits, loss = _reference(model, batch[0])
        models[name] = (model.config, {k: v.clone() for k, v in model.state_dict().items()}, logits, loss)
    torch.save({"models": models, "batch": batch[0]}, tmp / "in.pt")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "4", "--master_port", "29531",
           str(HERE / "mcore_parity_worker.py"), str(tmp / "in.pt"), str(tmp / "out.json"), LAYOUTS]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads((tmp / "out.json").read_text())


@pytest.mark.parametrize("name", ["untied", "tied"])
@pytest.mark.parametrize("layout", LAYOUTS.split(";"), ids=lambda s: "tp{}_pp{}".format(*s.split(",")))
def test_logits_and_loss_match_hf(report, name, layout):
    r = report[name][layout]
    tp, pp = (int(v) for v in layout.split(","))
    assert r["ranks_reporting_logits"] == 4 // pp  # every last-stage rank (TP x DP replicas)
    assert r["logits_max_abs"] > 0.1  # the comparison is not between two tiny numbers
    assert r["logits_max_diff"] < TOL
    assert r["tokens"] > 0 and r["loss_max_diff"] < TOL


@pytest.mark.parametrize("name", ["untied", "tied"])
@pytest.mark.parametrize("layout", LAYOUTS.split(";"), ids=lambda s: "tp{}_pp{}".format(*s.split(",")))
def test_weights_roundtrip_through_live_model(report, name, layout):
    r = report[name][layout]
    assert r["roundtrip_keys"]
    assert r["roundtrip_max_diff"] == 0.0
