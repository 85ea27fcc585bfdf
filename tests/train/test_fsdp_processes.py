"""FSDP2 (`parallel.backend=fsdp`) as users run it, in real torchrun processes on CPU (gloo):

- 2 ranks (accumulation 2, activation checkpointing) and 4 ranks (no accumulation) equal the
  1-process DDP run at the same global batch, step for step, and export the same model;
- a checkpoint of 4 FSDP ranks resumes with 2 FSDP ranks (reduce-scattering each micro-batch), and
  theirs with 1 DDP process, and the losses continue as the uninterrupted run's; `python -m geovr.export` reads a sharded checkpoint;
- SIGKILL then `--resume auto` continues bit-identically;
- the parameters, gradients and AdamW state a rank holds fall as 1/N, and so does its peak memory.

The dataset is 8 records, so every layout (1, 2, 4 ranks x 4 samples a step) reads the same
samples in every step, across epochs.
"""
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch

from train_helpers import losses, overrides, small_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
PARTS = ("loss/text", "loss/pose", "loss/depth", "loss/align", "loss/scale", "grad_norm")
STEPS = 6


def launch(nproc: int, cfg, *extra: str, popen: bool = False):
    cmd = [sys.executable, "-m", "geovr.train", *overrides(cfg), *extra]
    if nproc > 1:
        cmd[1:3] = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "geovr.train"]
    if popen:
        return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


@pytest.fixture(scope="module")
def data8(synthetic_root):
    path = synthetic_root / "train_8.jsonl"
    if not path.is_file():
        lines = (synthetic_root / "train.jsonl").read_text().splitlines()
        assert len(lines) >= 8
        path.write_text("\n".join(lines[:8]) + "\n")
    return path


def config(data8, output, backend: str, steps: int = STEPS, **train):
    cfg = small_config(data8.parent, output, steps=steps, global_batch=4, micro_batch=1, **train)
    cfg.data.path = str(data8)
    cfg.parallel.backend = backend
    cfg.checkpoint.every, cfg.checkpoint.keep = 2, 3
    return cfg


@pytest.fixture(scope="module")
def runs(data8, tmp_path_factory):
    """The reference (1-process DDP) and the FSDP runs of the same job; each exports its model."""
    root = tmp_path_factory.mktemp("fsdp")
    out = {}
    for name, nproc, backend, recompute in (("ddp1", 1, "ddp", False), ("fsdp2", 2, "fsdp", True),
                                            ("fsdp4", 4, "fsdp", False)):
        cfg = config(data8, root / name, backend)
        cfg.model.gradient_checkpointing = recompute
        cfg.checkpoint.export = True
        out[f"{name}_log"] = launch(nproc, cfg).stderr
        out[name] = root / name
    return out


def _model_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "geovr.train: model: " in line]


def close(a: dict, b: dict, steps) -> None:
    for step in steps:
        for key in PARTS:
            assert b[step][key] == pytest.approx(a[step][key], rel=2e-4, abs=1e-6), (step, key)


def test_fsdp_ranks_equal_one_ddp_process(runs):
    ref = losses(runs["ddp1"])
    assert sorted(ref) == list(range(1, STEPS + 1))
    assert ref[STEPS]["loss"] < ref[1]["loss"]  # the steps changed the model
    for name in ("fsdp2", "fsdp4"):
        got = losses(runs[name])
        assert sorted(got) == sorted(ref), name
        close(ref, got, ref)
    state = json.loads((runs["fsdp4"] / "checkpoints" / "step_00000006" / "trainer_state.json").read_text())
    assert state["backend"] == "fsdp" and state["world_size"] == 4
    assert [tuple(p) for p in state["sampler"]["ranks"]] == [(2, 2)] * 4  # 3 epochs of 2 steps, level ranks
    # rank 0 alone names the model, with the whole model's parameter count though each rank holds a shard
    one = _model_lines(runs["ddp1_log"])
    assert len(one) == 1 and "tiny random Qwen3-VL" in one[0]
    assert _model_lines(runs["fsdp4_log"]) == one


def _weights(folder):
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.rglob("*.safetensors")):
        out.update({f"{f.parent.name}/{k}": v for k, v in load_file(str(f)).items()})
    return out


def test_fsdp_exports_the_trained_model(runs, tmp_path):
    ref, got = _weights(runs["ddp1"] / "final"), _weights(runs["fsdp4"] / "final")
    assert sorted(got) == sorted(ref) and any(k.startswith("base/") for k in ref)
    for k in ref:
        assert got[k].shape == ref[k].shape, k
        assert torch.allclose(got[k], ref[k], rtol=1e-4, atol=1e-6), k
    # the sharded checkpoint of the last step exports the same plain model
    res = subprocess.run([sys.executable, "-m", "geovr.export", "--ckpt",
                          str(runs["fsdp4"] / "checkpoints" / "step_00000006"), "--out", str(tmp_path / "plain")],
                         env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    plain = {k.split("/", 1)[1]: v for k, v in _weights(tmp_path / "plain").items()}
    base = {k.split("/", 1)[1]: v for k, v in got.items() if k.startswith("base/")}
    assert plain.keys() == base.keys()
    for k, v in plain.items():
        assert torch.equal(v, base[k]), k


def test_reshard_four_fsdp_to_two_fsdp_to_one_ddp(runs, data8, tmp_path):
    ref = losses(runs["ddp1"])
    two = config(data8, tmp_path / "two", "fsdp")
    two.parallel.fsdp_sync_each_micro_batch = True  # 2 micro-batches a step, each reduce-scattered
    res = launch(2, two, "--resume", str(runs["fsdp4"] / "checkpoints" / "step_00000002"))
    assert "resharded: the checkpoint was written by 4 ranks, this run has 2" in res.stderr
    got = losses(tmp_path / "two")
    assert sorted(got) == [3, 4, 5, 6]
    close(ref, got, got)
    one = config(data8, tmp_path / "one", "ddp")
    res = launch(1, one, "--resume", str(tmp_path / "two" / "checkpoints" / "step_00000004"))
    assert "written by 2 ranks, this run has 1" in res.stderr
    got = losses(tmp_path / "one")
    assert sorted(got) == [5, 6]
    close(ref, got, [5, 6])


def test_fsdp_sigkill_then_resume_is_bit_identical(runs, data8, tmp_path):
    reference = losses(runs["fsdp2"])
    cfg = config(data8, tmp_path / "killed", "fsdp")
    cfg.model.gradient_checkpointing = True
    proc = launch(2, cfg, popen=True)
    marker = tmp_path / "killed" / "checkpoints" / "step_00000004" / "trainer_state.json"
    t0 = time.time()
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() - t0 < 600, "no checkpoint at step 4"
        time.sleep(0.02)
    procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in procs:  # the launcher and its workers at once, as a node failure does
        p.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(procs, timeout=60)
    done = losses(tmp_path / "killed")
    assert max(done) < STEPS, "the run finished before it was killed"
    res = launch(2, cfg, "--resume", "auto")
    assert "step_00000004" in res.stderr
    resumed = losses(tmp_path / "killed")
    assert sorted(resumed) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        for key in ("loss", *PARTS, "lr/llm"):
            assert resumed[step][key] == reference[step][key], (step, key)


def test_state_and_peak_memory_per_rank_fall_with_the_ranks(data8, tmp_path):
    """A 100M-parameter student (hidden 1024, 8 layers; 2-frame videos keep activations small):
    each rank holds the frozen vision tower whole and 1/N of everything else; peak RSS follows."""
    from geovr.train import build

    records = {}
    for nproc in (1, 4):
        cfg = config(data8, tmp_path / f"r{nproc}", "fsdp", steps=1)
        cfg.model.tiny_hidden, cfg.model.tiny_layers = 1024, 8
        cfg.data.min_frames = cfg.data.max_frames = 2
        cfg.checkpoint.every = 0
        launch(nproc, cfg)
        records[nproc] = losses(tmp_path / f"r{nproc}")[1]
    geo = build.build_model(cfg, build.build_tokenizer(cfg), torch.device("cpu"))
    params = {n: p for n, p in geo.named_parameters()}
    frozen = sum(p.numel() * 4 for n, p in params.items() if n.startswith("base.model.visual.") and not p.requires_grad)
    trainable = sum(p.numel() * 4 for p in params.values() if p.requires_grad)
    total = sum(p.numel() * 4 for p in {id(p): p for p in geo.parameters()}.values())
    gib = 2 ** 30
    for n, rec in records.items():
        assert rec["memory/parameters_gb"] * gib == pytest.approx(frozen + (total - frozen) / n, rel=0.01), n
        assert rec["memory/gradients_gb"] * gib == pytest.approx(trainable / n, rel=0.01), n
        assert rec["memory/optimizer_gb"] * gib == pytest.approx(2 * trainable / n, rel=0.01), n  # AdamW's two moments
    state = {n: sum(r[f"memory/{k}_gb"] for k in ("parameters", "gradients", "optimizer")) for n, r in records.items()}
    assert state[1] > 1.0  # GiB: large enough to see in the process's peak memory
    saved = state[1] - state[4]
    assert records[1]["peak_memory_gb"] - records[4]["peak_memory_gb"] > 0.5 * saved, (records, state)


def test_fsdp_with_lora_equals_ddp_with_lora(data8, tmp_path):
    """LoRA (model.lora_rank) on 2 FSDP ranks equals it on 1 DDP process: the losses step for step,
    and the final model (adapters merged into the plain base; the adapter folder)."""
    pytest.importorskip("peft", reason="LoRA needs the optional extra: pip install -e '.[lora]'")
    out = {}
    for name, nproc, backend in (("ddp1", 1, "ddp"), ("fsdp2", 2, "fsdp")):
        cfg = config(data8, tmp_path / name, backend, steps=4)
        cfg.model.lora_rank, cfg.model.lora_alpha, cfg.model.lora_dropout = 4, 8.0, 0.0
        cfg.optim.lr_lora = 1e-2
        cfg.checkpoint.export = True
        launch(nproc, cfg)
        out[name] = tmp_path / name
    ref, got = losses(out["ddp1"]), losses(out["fsdp2"])
    assert sorted(ref) == sorted(got) == [1, 2, 3, 4] and "lr/lora" in ref[1]
    close(ref, got, ref)
    a, b = _weights(out["ddp1"] / "final"), _weights(out["fsdp2"] / "final")
    assert sorted(a) == sorted(b)
    assert any(k.startswith("adapter/") and ".lora_B." in k for k in a)
    assert not any("base_layer" in k or ".lora_" in k for k in a if k.startswith("base/"))
    for k in a:
        # AdamW divides each gradient by its own running scale, so the two layouts' summation orders
        # show in a few small entries of an adapter: compare against the tensor's scale
        scale = float(a[k].abs().max())
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=2e-4 * scale + 1e-7, msg=k)
        assert float((b[k] - a[k]).norm()) <= 1e-4 * float(a[k].norm()) + 1e-7, k
