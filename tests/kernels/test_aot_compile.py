"""Every kernel variant compiles ahead of time to PTX and cubin for Hopper (sm_90), with no GPU
present: for the depth loss every variant its launcher can reach (tests/kernels/test_depth_variants.py
checks that list against real calls), with no register spills.

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
    rows = [line.replace("* ", "", 1).split() for line in proc.stdout.splitlines() if "sm_90" in line]
    assert len(rows) == n_specs
    # the trainer's variants are marked in the table
    marked = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("* ")}
    assert {"depth_stats[fp32,buf]", "depth_backward[fp32>fp32,buf]", "align_forward[fp32]"} <= marked
    assert "depth_stats[fp32,mask,weight,buf]" not in marked
    if all(r[6] == "-" for r in rows):
        pytest.skip("Triton ships no cuobjdump here: resource usage not reported")
    spills = {r[0]: int(r[6]) for r in rows if r[6] != "0"}
    assert not spills, f"kernels spilling registers on sm_90 (bytes per thread): {spills}"
    assert all(int(r[7]) >= 8 for r in rows), "a kernel fits fewer than 8 warps per SM"
    # the SASS of each inner loop: the stats pass has one loop over every pixel, one per coarse scale
    loops = {r[0]: r[-1] for r in rows}
    assert len(loops["depth_stats[bf16]"].split(",")) == 4, loops
    assert len(loops["depth_stats[fp32,buf]"].split(",")) == 4, loops


def test_file_stems():
    assert aot.file_stem("depth_backward[fp32>bf16,mask,buf]") == "depth_backward_fp32_bf16_mask_buf"
    assert aot.file_stem("depth_finalize") == "depth_finalize"


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


def test_inner_loops_of_a_sass_listing():
    # an outer loop (0x10 .. 0x60) holding an inner one (0x20 .. 0x40), a second loop after it,
    # a forward branch and the self-branch every kernel ends with: the two innermost loops count
    sass = "\n".join(f"        /*{a:04x}*/                   {ins} ;" for a, ins in [
        (0x00, "MOV R1, c[0x0][0x28]"), (0x10, "S2R R0, SR_TID.X"), (0x20, "LDG.E R2, desc[UR4][R4.64]"),
        (0x30, "FADD R3, R3, R2"), (0x40, "@P0 BRA 0x20"), (0x50, "@P1 BRA 0x80"), (0x60, "@P2 BRA 0x10"),
        (0x70, "IADD3 R6, R6, 0x1, RZ"), (0x80, "@P3 BRA 0x70"), (0x90, "EXIT"), (0xa0, "BRA 0xa0"),
    ])
    assert aot.inner_loops(sass) == (3, 2)
    assert aot.inner_loops("") == ()
