"""Every kernel variant compiles ahead of time to PTX and cubin for each GPU users train on (sm_80,
86, 89, 90, 100), with no GPU present: for the depth loss every variant its launcher can reach (tests/kernels/test_depth_variants.py
checks that list against real calls), with no register spills and within each GPU's shared memory.

Runs `python -m geovr.kernels.aot` in a fresh process without TRITON_INTERPRET (the test process
has it set, and interpreted kernels cannot be compiled).
"""
import os
import subprocess
import sys

import pytest

from geovr.kernels import aot


def test_every_kernel_compiles_for_every_target_gpu(tmp_path):
    """sm_80, 86, 89, 90 and 100, in two processes at once (about 2.5 min of 2 cores per GPU):
    every variant has a cubin, spills nothing and fits its GPU's shared memory per block."""
    # without the suite's TRITON_DEFAULT_FP_FUSION too: the kernels pass FP fusion themselves, and
    # Triton warns on stderr about any compile that leaves it to the default
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITON_DEFAULT_FP_FUSION")}
    halves = [[80, 86, 89], [90, 100]]
    assert sorted(a for h in halves for a in h) == sorted(aot.ARCHES)
    procs = [subprocess.Popen([sys.executable, "-m", "geovr.kernels.aot", "--arch", *map(str, arches), "--out",
                               str(tmp_path / f"part{i}")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i, arches in enumerate(halves)]
    outs = [proc.communicate(timeout=1500) for proc in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, out + err
    stdout = "".join(out for out, _ in outs)
    assert not any("TRITON_DEFAULT_FP_FUSION" in err for _, err in outs)
    n_specs = len(aot.all_specs())
    for arches, (out, _) in zip(halves, outs):
        assert f"compiled {n_specs * len(arches)}/{n_specs * len(arches)} kernels" in out
    for i, arches in enumerate(halves):
        for arch in arches:
            cubins = list((tmp_path / f"part{i}").glob(f"*.sm{arch}.cubin"))
            assert len(cubins) == n_specs and all(c.stat().st_size > 0 for c in cubins)
    ptx = (tmp_path / "part1" / "depth_stats_bf16.sm90.ptx").read_text()
    assert ".target sm_90" in ptx
    # the trainer's variants are marked in the table
    marked = {line.split()[1] for line in stdout.splitlines() if line.startswith("* ")}
    assert {"depth_stats[fp32,buf]", "depth_backward[fp32>fp32,buf]", "align_forward[fp32]"} <= marked
    assert "depth_stats[fp32,mask,weight,buf]" not in marked
    rows = {arch: [line.replace("* ", "", 1).split() for line in stdout.splitlines() if f" sm_{arch} " in line]
            for arch in aot.ARCHES}
    assert all(len(r) == n_specs for r in rows.values())
    # shared memory within the smallest GPU's block (sm_86 / sm_89: 99 KiB), which aot also checks
    assert max(int(r[4]) for r in rows[86]) <= aot.ARCH_LIMITS[86].smem_per_block
    if all(r[6] == "-" for r in rows[90]):
        pytest.skip("Triton ships no cuobjdump here: resource usage not reported")
    # ptxas's resource usage per kernel: no register spills (a tile too big for the register
    # file shows up here long before anyone times it on a GPU); aot exits 1 on one too
    for arch, table in rows.items():
        spills = {r[0]: int(r[6]) for r in table if r[6] not in ("0", "-")}
        assert not spills, f"kernels spilling registers on sm_{arch} (bytes per thread): {spills}"
        assert all(int(r[7]) >= 8 for r in table if r[7] != "-"), f"a kernel fits fewer than 8 warps per SM on sm_{arch}"
    # the SASS of each inner loop: the stats pass has one loop over every pixel, one per coarse scale
    loops = {r[0]: r[-1] for r in rows[90]}
    assert len(loops["depth_stats[bf16]"].split(",")) == 4, loops
    assert len(loops["depth_stats[fp32,buf]"].split(",")) == 4, loops


def test_a_variant_over_its_gpus_shared_memory_or_spilling_fails():
    ok = aot.Compiled("k", 86, 1, 1, 101376, 0.0, registers=32, stack_bytes=0)
    assert ok.problems() == []
    assert aot.Compiled("k", 86, 1, 1, 101377, 0.0).problems() == ["101377 B of shared memory, above sm_86's 101376"]
    assert aot.Compiled("k", 90, 1, 1, 101377, 0.0).problems() == []  # fits an H100
    assert aot.Compiled("k", 90, 1, 1, 0, 0.0, stack_bytes=8).problems() == ["8 B per thread spilled"]
    assert aot.Compiled("k", 89, 1, 1, 0, 0.0, num_warps=4, registers=32).warps_per_sm == 48


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


def test_a_program_id_scaled_in_int32_is_found_in_the_ttir():
    """The static check that fails on the alignment kernel as it was (rows = program id x 8 in
    int32, stats at rows x 3: wrong addresses past 716M rows) and passes its int64 form; the full
    compile above applies it to every variant (aot exits 1 on one)."""
    here = os.path.dirname(__file__)
    code = (
        "import triton, sys; from triton.backends.compiler import GPUTarget; sys.path.insert(0, sys.argv[1]);"
        "import narrow_index_kernels as k; from geovr.kernels.aot import narrow_products\n"
        "for fn in (k.old_rows, k.new_rows):\n"
        "    src = triton.compiler.ASTSource(fn=fn, signature={'x_ptr': '*fp32', 'stats_ptr': '*fp32', 'R': 'i32',"
        " 'BLOCK': 'constexpr'}, constexprs={'BLOCK': 8})\n"
        "    print(fn.fn.__name__, len(narrow_products(triton.compile(src, target=GPUTarget('cuda', 90, 32)).asm['ttir'])))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", code, here], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "old_rows 2" in proc.stdout and "new_rows 0" in proc.stdout, proc.stdout
    ttir = "%pid = tt.get_program_id x : i32 loc(#l)\n%v = tt.load %p : !tt.ptr<i32> loc(#l)\n" \
           "%a = arith.muli %v, %c3 : i32 loc(#l)\n%b = arith.muli %pid, %c3 : i32 loc(#l)\n" \
           "%w = arith.extsi %pid : i32 to i64 loc(#l)\n%c = arith.muli %w, %c3 : i64 loc(#l)\n"
    assert aot.narrow_products(ttir) == ["%b = arith.muli %pid, %c3 : i32"]  # a loaded value is not derived
