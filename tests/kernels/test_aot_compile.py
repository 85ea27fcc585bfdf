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
    # ptxas's resource usage per kernel: no register spills (a tile too big for the register
    # file shows up here long before anyone times it on a GPU)
    rows = [line.split() for line in proc.stdout.splitlines() if "sm_90" in line]
    assert len(rows) == n_specs
    if all(r[6] == "-" for r in rows):
        pytest.skip("Triton ships no cuobjdump here: resource usage not reported")
    spills = {r[0]: int(r[6]) for r in rows if r[6] != "0"}
    assert not spills, f"kernels spilling registers on sm_90 (bytes per thread): {spills}"
    assert all(int(r[7]) >= 8 for r in rows), "a kernel fits fewer than 8 warps per SM"


def test_resource_usage_reads_registers_and_spills():
    # the occupancy arithmetic: 255 registers x 4 warps leave room for 2 blocks (8 warps) per SM
    c = aot.Compiled("k", 90, 1, 1, 0, 0.0, num_warps=4, registers=255, stack_bytes=16)
    assert c.warps_per_sm == 8
    assert aot.Compiled("k", 90, 1, 1, 0, 0.0, num_warps=4, registers=32).warps_per_sm == 64
    assert aot.Compiled("k", 90, 1, 1, 200_000, 0.0, num_warps=4, registers=32).warps_per_sm == 4


def test_refuses_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(RuntimeError, match="unset it"):
        aot.compile_all([90])
