"""Every kernel compiles ahead of time to PTX and cubin for Hopper (sm_90), with no GPU present.

Runs `python -m geovr.kernels.aot` in a fresh process without TRITON_INTERPRET (the test process
has it set, and interpreted kernels cannot be compiled).
"""
import os
import subprocess
import sys

import pytest

from geovr.kernels import aot


def test_every_kernel_compiles_for_sm90(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "geovr.kernels.aot", "--arch", "90", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n_specs = len(aot.all_specs())
    assert f"compiled {n_specs}/{n_specs} kernels" in proc.stdout
    cubins = list(tmp_path.glob("*.sm90.cubin"))
    assert len(cubins) == n_specs and all(c.stat().st_size > 0 for c in cubins)
    ptx = (tmp_path / "depth_stats_bf16.sm90.ptx").read_text()
    assert ".target sm_90" in ptx


def test_refuses_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(RuntimeError, match="unset it"):
        aot.compile_all([90])
