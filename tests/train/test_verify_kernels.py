"""train.verify_kernels: the trainer checks the fused paths it will use before building the model,
trains on the fallback of a path that failed (and says so), refuses under strict, and uses DALI
only when it decodes right. On the CPU the Triton paths are forced (GEOVR_LOSS_BACKEND=triton, run
in the interpreter) and broken in the doctor's subprocesses by tests/doctor/fault_site."""
import logging

import pytest
import torch

from geovr.losses import _backend
from geovr.train import verify
from geovr.train.loop import Trainer
from geovr.train.report import summary_table
from geovr.train.verify import VerificationFailed
from train_helpers import losses, small_config


def test_a_crashing_kernel_falls_back_and_the_run_says_so(synthetic_root, tmp_path, doctor_env, monkeypatch, caplog):
    fault, _ = doctor_env
    monkeypatch.setenv("GEOVR_LOSS_BACKEND", "triton")  # the fused losses, in the interpreter
    fault("depth", "abort")
    cfg = small_config(synthetic_root, tmp_path / "run", steps=1)
    assert verify.needed_checks(cfg, torch.device("cpu")) == ["depth_loss", "align_loss"]
    with caplog.at_level(logging.INFO, logger="geovr"):
        trainer = Trainer(cfg)
    assert "Triton depth loss failed its check on this device (crashed: killed by SIGABRT" in caplog.text
    assert "using the eager reference depth loss instead" in caplog.text
    assert trainer.implementations == {"depth": "reference (fallback)", "align": "triton (interpreter)",
                                       "pose": "extension (cpu)", "decode": "pyav"}
    summary = trainer.train()
    trainer.close()
    assert summary["implementations"]["depth"] == "reference (fallback)"
    first = losses(tmp_path / "run")[1]
    assert first["impl/depth"] == "reference (fallback)" and first["impl/align"] == "triton (interpreter)"
    assert "computed by: depth reference (fallback), align triton (interpreter)" in summary_table(summary, tmp_path)

    cfg = small_config(synthetic_root, tmp_path / "strict", steps=1)
    cfg.train.verify_kernels = "strict"
    _backend._routed.clear()
    with pytest.raises(VerificationFailed, match="depth_loss\\) crashed: killed by SIGABRT"):
        Trainer(cfg)
    cfg.train.verify_kernels = "off"
    assert verify.needed_checks(cfg, torch.device("cpu")) == []


def test_dali_that_fails_its_check_is_replaced_by_pyav(synthetic_root, tmp_path, doctor_env, monkeypatch):
    from geovr.data.decode import available_backends
    from geovr.parallel.data_parallel import init_world

    if "dali-cpu" not in available_backends():
        pytest.skip("DALI is not installed")
    doctor_env[0]("decode", "raise")
    cfg = small_config(synthetic_root, tmp_path / "run", steps=1)
    cfg.data.backend = "dali-cpu"
    monkeypatch.setattr(verify, "needed_checks", lambda cfg, device: ["dali_decode"])  # a GPU run's need
    sel = verify.verify_run(cfg, init_world("cpu"))
    assert "simulated kernel failure" in sel.fallbacks["dali_decode"] and cfg.data.backend == "pyav"
