"""The native build: every CUDA source compiles with nvcc for sm_90 (no GPU needed), and the
CMake build links the whole extension, CUDA host code and sm_90 kernels included, against this
CPU torch: the module imports, its CPU path equals the eager reference, and its CUDA entry points
refuse CPU tensors with the extension's own message."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geovr.doctor.report import fatbin_contents, runs_on

ROOT = Path(__file__).resolve().parents[2]
CUDA_SOURCES = sorted((ROOT / "csrc").glob("*.cu"))


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} not found: CI must compile the native sources")
        pytest.skip(f"{tool} not found")
    return path


@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles_for_sm90(source, tmp_path):
    nvcc = _need("nvcc")
    obj = tmp_path / (source.stem + ".o")
    proc = subprocess.run([nvcc, "-std=c++17", "-O3", "-arch=sm_90", "-Werror", "all-warnings",
                           "-c", str(source), "-o", str(obj)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert obj.stat().st_size > 0
    cuobjdump = shutil.which("cuobjdump")  # absent from minimal toolkits
    if cuobjdump:  # the object carries sm_90 machine code (SASS), not only PTX
        dump = subprocess.run([cuobjdump, "--list-elf", str(obj)], capture_output=True, text=True)
        assert "sm_90" in dump.stdout


def test_cmake_builds_a_working_cuda_module(tmp_path):
    cmake = _need("cmake")
    _need("nvcc")
    build = tmp_path / "build"
    configure = subprocess.run([cmake, "-S", str(ROOT), "-B", str(build), f"-DPython3_EXECUTABLE={sys.executable}",
                                "-DGEOVR_CUDA=ON"], capture_output=True, text=True)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compiled = subprocess.run([cmake, "--build", str(build), "-j", "2", "--target", "_ext"],
                              capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    # the CMake-built module alone in a fresh process (never beside geovr._ext: two copies of
    # one extension in a process is not a supported set-up), against the eager reference
    check = (
        "import sys, torch; sys.path.insert(0, sys.argv[1]); import _ext;"
        "from geovr.losses.pose_reference import pose_parts_reference as ref;"
        "g = torch.Generator().manual_seed(0); fr = [1, 3, 8];"
        "p = torch.randn(12, 9, generator=g, dtype=torch.float64);"
        "t = torch.randn(12, 9, generator=g, dtype=torch.float64); off = torch.tensor([0, 1, 4, 12]);"
        "modes = ['paper', 'geodesic', 'relative'];"
        "a = [_ext.pose_loss_forward(p, t, off, m, 100.0, 0.0) for m in range(3)];"
        "b = [ref(list(p.split(fr)), list(t.split(fr)), name, 100.0, 0.0) for name in modes];"
        "assert all(torch.allclose(x, y, atol=1e-12) for x, y in zip(a, b)); print('same');"
        "print('with_cuda', _ext.with_cuda);"
        "g3 = torch.ones(3, 3, dtype=torch.float64);"
        "calls = {'fwd': lambda: _ext.pose_loss_forward_cuda(p, t, off, 0, 100.0, 0.0),"
        "         'bwd': lambda: _ext.pose_loss_backward_cuda(p, t, off, g3, 0, 100.0, 0.0)};\n"
        "for name, call in calls.items():\n"
        "    try: call(); print(name, 'ran')\n"
        "    except RuntimeError as e: print(name, str(e).splitlines()[0])"
    )
    proc = subprocess.run([sys.executable, "-c", check, str(build)], capture_output=True, text=True)
    assert proc.returncode == 0 and "same" in proc.stdout, proc.stdout + proc.stderr
    assert "with_cuda True" in proc.stdout, proc.stdout
    for name, op in (("fwd", "pose_loss_forward_cuda"), ("bwd", "pose_loss_backward_cuda")):
        assert f"{name} {op}: the CUDA pose loss takes CUDA tensors, got pred on cpu" in proc.stdout, proc.stdout
    # the module carries machine code for every GPU of csrc/CUDA_ARCHS and PTX for newer ones
    # (cuobjdump ships with Triton): a build for sm_90 only fails on A100s with "no kernel image"
    module = next(build.glob("_ext*.so"))
    inside = fatbin_contents(module)
    if inside is None:
        pytest.skip("no cuobjdump to list the module's cubins")
    cubins, ptx = inside
    assert cubins == ["sm_80", "sm_86", "sm_89", "sm_90"] and ptx == ["sm_90"], inside
    for gpu, cc in (("A100", (8, 0)), ("A10", (8, 6)), ("L40S", (8, 9)), ("H100", (9, 0)), ("B200", (10, 0))):
        assert runs_on(cubins, ptx, cc), gpu
    assert not runs_on(cubins, ptx, (7, 5))  # T4: below the oldest cubin and the PTX


def test_runs_on_reads_cubins_and_ptx_as_the_driver_does():
    assert runs_on(["sm_90"], [], (9, 0)) and not runs_on(["sm_90"], [], (8, 0))
    assert runs_on(["sm_80"], [], (8, 6))  # a cubin runs on later minors of its major
    assert not runs_on(["sm_80"], [], (9, 0)) and runs_on(["sm_80"], ["sm_80"], (9, 0))


