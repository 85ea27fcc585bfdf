"""The environment report of `python -m geovr.doctor`: versions, GPUs, what the native extension
was built for, NCCL, shared memory, and the environment variables that change geovr's behaviour."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import torch

from geovr.doctor.verdict import _version, driver_version
from geovr.kernels.aot import cuobjdump_tool

ENV_VARS = ("CUDA_VISIBLE_DEVICES", "GEOVR_LOSS_BACKEND", "GEOVR_DOCTOR_DIR", "TRITON_INTERPRET", "TRITON_CACHE_DIR",
            "TORCH_CUDA_ARCH_LIST", "FORCE_CUDA", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_NO_CUDA_MEMORY_CACHING",
            "CUDA_LAUNCH_BLOCKING", "OMP_NUM_THREADS", "HF_HUB_OFFLINE", "NCCL_DEBUG", "NCCL_P2P_DISABLE",
            "NCCL_IB_DISABLE", "NCCL_SOCKET_IFNAME")
SHM_MIN_GB = 8.0  # DataLoader workers pass decoded frames through /dev/shm; Docker's default is 64 MB


def fatbin_contents(path: str | os.PathLike) -> tuple[list[str], list[str]] | None:
    """(cubin architectures, PTX architectures) inside a binary, e.g. (['sm_80', 'sm_90'],
    ['sm_90']); None when no cuobjdump is found."""
    tool = cuobjdump_tool()
    if tool is None:
        return None
    found = []
    for flag in ("--list-elf", "--list-ptx"):
        out = subprocess.run([tool, flag, str(path)], capture_output=True, text=True).stdout
        found.append(sorted(set(re.findall(r"\b(sm_\d+a?)\b", out)), key=lambda s: int(re.sub(r"\D", "", s))))
    return found[0], found[1]


def extension_contents() -> tuple[list[str], list[str]] | None:
    """(cubins, PTX) of geovr._ext's CUDA part; None when it has none or they cannot be listed."""
    try:
        from geovr import _ext
    except ImportError:
        return None
    return fatbin_contents(_ext.__file__) if _ext.with_cuda else None


def extension_line() -> str:
    try:
        from geovr import _ext
    except ImportError as e:
        return f"not built ({e.__class__.__name__}): pip install --no-build-isolation -e ."
    if not _ext.with_cuda:
        return f"CPU only ({Path(_ext.__file__).name}); the CUDA pose kernels need FORCE_CUDA=1 at build time"
    inside = extension_contents()
    if inside is None:
        return "CUDA (no cuobjdump to list its architectures)"
    cubins, ptx = inside
    return f"CUDA: cubins {', '.join(cubins) or 'none'}; PTX {', '.join(ptx) or 'none'}"


def runs_on(cubins: list[str], ptx: list[str], capability: tuple[int, int]) -> bool:
    """Whether a binary with these cubins and PTX runs on a GPU of `capability`: a cubin of the
    same major version and a minor no higher, or PTX of an architecture no newer (JIT-compiled)."""
    major, minor = capability
    def num(s: str) -> int:
        return int(re.sub(r"\D", "", s))
    same_major = any(num(c) // 10 == major and num(c) % 10 <= minor for c in cubins if not c.endswith("a"))
    return same_major or any(num(p) <= 10 * major + minor for p in ptx)


def shm_gb() -> float | None:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    return st.f_frsize * st.f_blocks / 1e9


def report_lines() -> list[str]:
    """The report, one 'name: value' line each."""
    cuda = torch.cuda.is_available()
    lines = [f"torch: {torch.__version__} (CUDA {torch.version.cuda or 'none'})",
             f"driver: {driver_version() or 'none'}",
             f"triton: {_version('triton') or 'not installed'}",
             f"transformers: {_version('transformers') or 'not installed'}",
             f"megatron-core: {_version('megatron-core') or 'not installed'}",
             f"nvidia-dali: {_version('nvidia-dali-cuda130') or _version('nvidia-dali-cuda120') or 'not installed'}",
             f"geovr: {_version('geovr') or 'not installed'}; extension {extension_line()}"]
    if cuda:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            line = f"gpu {i}: {p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB"
            inside = extension_contents()
            if inside is not None and not runs_on(*inside, (p.major, p.minor)):
                line += (f"; geovr._ext has no kernel image for it: rebuild with TORCH_CUDA_ARCH_LIST={p.major}.{p.minor} "
                         "FORCE_CUDA=1 pip install --no-build-isolation -e .")
            lines.append(line)
        try:
            nccl = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception:  # noqa: BLE001
            nccl = "unavailable"
        lines.append(f"nccl: {nccl}")
    else:
        lines.append("gpu: none visible (checks run on the CPU: the Triton kernels in its interpreter)")
    shm = shm_gb()
    if shm is not None:
        low = f" (below {SHM_MIN_GB:.0f} GB: DataLoader workers may fail; docker run --shm-size=16g)" if shm < SHM_MIN_GB else ""
        lines.append(f"/dev/shm: {shm:.1f} GB{low}")
    set_vars = [f"{k}={os.environ[k]}" for k in ENV_VARS if k in os.environ]
    lines.append(f"environment: {' '.join(set_vars) if set_vars else 'none of the variables geovr reads is set'}")
    return lines
