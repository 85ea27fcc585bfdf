"""The Megatron backend trains as users launch it (`torchrun ... -m geovr.train --tp T --pp P`; here
through `train_megatron_cpu.py`, which applies the test-only CPU shim first): a TP=2 x PP=2 run
gives the same per-step losses, loss parts and gradient norms as the 1-process run (the HF/DDP
path, which the Megatron backend at TP=1 also reproduces) for 4 optimizer steps of 2 micro-batches
each, and so does TP=2 x DP=2 with sequence parallelism, full activation recompute and the
distributed optimizer (and TP=2 with bf16 parameters, within bf16 rounding); a checkpoint written
through dist_checkpointing at TP=2 x PP=2 (and at TP=2 x DP=2 with the distributed optimizer's
sharded state) resumes at TP=1 and continues exactly; the final export is a GeoVR model folder.
TP alone runs no path the TP=2 runs here miss (TP=2 x DP=2 and TP=2 bf16 use the same layers and
the non-pipelined schedule), and PP alone none that TP=2 x PP=2 and the PP=2 run of
`test_model_path_is_read_per_stage` miss, so neither has runs of its own (the suite's time)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("megatron.core")

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "train"))
from train_helpers import losses, overrides, small_config  # noqa: E402

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
STEPS = 4
KEYS = ("loss", "loss/text", "loss/pose", "loss/depth", "loss/align", "loss/scale", "grad_norm")


def _args(root, out, *extra):
    cfg = small_config(root, out, steps=STEPS)
    cfg.checkpoint.every = 2
    cfg.checkpoint.keep = 3
    cfg.model.dtype = "fp32"
    return overrides(cfg) + list(extra)


def _launch(nproc: int, args: list[str], port: int):
    script = str(HERE / "train_megatron_cpu.py")
    if nproc == 1:
        cmd = [sys.executable, script, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
               str(port), script, *args]
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


@pytest.fixture(scope="module")
def runs(synthetic_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcore_train")
    out = {}
    ref = subprocess.run([sys.executable, "-m", "geovr.train", *_args(synthetic_root, tmp / "ref"),
                          "checkpoint.export=true"], env=ENV, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-4000:]
    out["ref"] = losses(tmp / "ref")
    layouts = {"tp1": (1, ["parallel.backend=megatron"]),
               "tp2pp2": (4, ["--tp", "2", "--pp", "2", "checkpoint.export=true"]),
               "tp2dp2_sp": (4, ["--tp", "2", "parallel.sequence_parallel=true", "parallel.recompute=full",
                                 "parallel.distributed_optimizer=true"]),
               "tp2_bf16": (2, ["--tp", "2", "model.dtype=bf16"])}
    for i, (name, (nproc, extra)) in enumerate(layouts.items()):
        _launch(nproc, _args(synthetic_root, tmp / name, *extra), 29541 + i)
        out[name] = losses(tmp / name)
    # reshard: resume the step-2 checkpoint at TP=1 x PP=1 (the same data-parallel size)
    resumes = {"tp2pp2": (1, []), "tp2dp2_sp": (2, ["parallel.distributed_optimizer=true"])}
    for i, (name, (nproc, extra)) in enumerate(resumes.items()):
        ckpt = tmp / name / "checkpoints" / "step_00000002"
        _launch(nproc, _args(synthetic_root, tmp / f"{name}_to_tp1", "parallel.backend=megatron", *extra,
                             "--resume", str(ckpt)), 29561 + i)
        out[f"{name}_to_tp1"] = losses(tmp / f"{name}_to_tp1")
    out["_tmp"] = tmp
    return out


def _same(a: dict, b: dict, steps) -> None:
    for step in steps:
        for key in KEYS:
            assert b[step][key] == pytest.approx(a[step][key], rel=1e-4, abs=1e-6), (step, key)


@pytest.mark.parametrize("layout", ["tp1", "tp2pp2", "tp2dp2_sp"])
def test_parallel_run_equals_single_process(runs, layout):
    ref = runs["ref"]
    assert sorted(ref) == list(range(1, STEPS + 1))
    assert ref[STEPS]["loss"] < ref[1]["loss"]  # it trains
    assert all(ref[s]["skipped_step"] == 0 for s in ref)
    _same(ref, runs[layout], range(1, STEPS + 1))


def test_bf16_parameters_track_fp32(runs):
    """bf16 parameters with fp32 main weights and gradients (megatron-core's mixed-precision
    optimizer, as on GPUs) follow the fp32 run within bf16 rounding, and are not the fp32 run."""
    ref, bf16 = runs["ref"], runs["tp2_bf16"]
    # the scale loss is |log1p(s*) - log1p(s^)|, a small difference of two O(1) values that each
    # carry bf16's 2^-8 rounding: its error is absolute, about 4e-3, not relative to the difference
    absolute = {"loss/scale": 2 ** -8}
    for step in range(1, STEPS + 1):
        for key in KEYS:
            assert bf16[step][key] == pytest.approx(ref[step][key], rel=2e-2, abs=absolute.get(key, 1e-3)), (step, key)
    assert any(bf16[s]["loss"] != pytest.approx(ref[s]["loss"], rel=1e-6) for s in ref)


@pytest.mark.parametrize("saved", ["tp2pp2", "tp2dp2_sp"])
def test_checkpoint_reshards_to_tp1(runs, saved):
    resumed = runs[f"{saved}_to_tp1"]
    assert sorted(resumed) == [3, 4]  # it continued from step 2
    _same(runs["ref"], resumed, [3, 4])


def test_export_joins_the_shards(runs):
    """The TP=2 x PP=2 run's final export loads as a GeoVRModel equal to the 1-process run's."""
    from geovr.model.checkpoint import load_geovr

    ref = load_geovr(runs["_tmp"] / "ref" / "final").state_dict()
    par = load_geovr(runs["_tmp"] / "tp2pp2" / "final").state_dict()
    assert set(ref) == set(par)
    worst = max(((k, (ref[k].float() - par[k].float()).abs().max().item()) for k in ref), key=lambda kv: kv[1])
    assert worst[1] < 1e-4, worst


def test_dist_checkpoint_layout(runs):
    run = runs["_tmp"] / "tp2pp2"
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["step_00000002", "step_00000004"]
    state = (run / "checkpoints" / "step_00000004" / "trainer_state.json").read_text()
    assert '"tp": 2' in state and '"pp": 2' in state and '"dp": 1' in state
    assert (run / "checkpoints" / "step_00000004" / "metadata.json").is_file()  # megatron-core's format


def test_model_path_is_read_per_stage(synthetic_root, tok, tmp_path):
    """With model.path (a saved HF folder) each Megatron rank reads only its stage's tensors from
    the safetensors (the template's base stays on the meta device), and the PP=2 run still equals
    the HF/DDP path's from the same folder; its export materialises the whole model."""
    from geovr.model.checkpoint import load_geovr
    from geovr.model.tiny import tiny_qwen3vl

    folder = tmp_path / "hf_model"
    tiny_qwen3vl(tok, layers=4, hidden=64, seed=3).save_pretrained(folder)
    tok.save_pretrained(folder)
    runs, logs = {}, {}
    for name, nproc, extra in (("ref", 1, ["parallel.backend=ddp"]), ("pp2", 2, ["--pp", "2"])):
        cfg = small_config(synthetic_root, tmp_path / name, steps=2)
        cfg.model.path = str(folder)
        cfg.model.dtype = "fp32"
        cfg.checkpoint.every = 0
        cfg.checkpoint.export = True
        logs[name] = [line for line in _launch(nproc, overrides(cfg) + extra, 29571).stderr.splitlines()
                      if "geovr.train: model: " in line]
        runs[name] = losses(tmp_path / name)
    # rank 0 names the model folder and the whole model's parameters (the template's, not a stage's)
    assert len(logs["ref"]) == 1 and f"model: {folder}, " in logs["ref"][0]
    assert logs["pp2"] == logs["ref"]
    _same(runs["ref"], runs["pp2"], [1, 2])
    ref = load_geovr(tmp_path / "ref" / "final").state_dict()
    par = load_geovr(tmp_path / "pp2" / "final").state_dict()
    assert set(ref) == set(par)
    assert max((ref[k].float() - par[k].float()).abs().max().item() for k in ref) < 1e-4
