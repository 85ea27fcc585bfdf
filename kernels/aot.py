"""Ahead-of-time compile of every geovr Triton kernel for a GPU target; needs no GPU.

    python -m geovr.kernels.aot                 # sm_90 (Hopper)
    python -m geovr.kernels.aot --arch 80 86 89 90 100 --out build/aot   # also writes .ptx/.cubin

Proves the kernels lower to PTX and cubin for real hardware, not only that they interpret, and
prints what ptxas made of each (registers per thread, bytes spilled to the stack, shared memory)
with the warps per SM that allows, and the SASS instructions per iteration of each innermost
loop: the performance signals there are without a GPU (benchmarks/RESULTS.md turns the loop
lengths into instructions per pixel). Exit status 1 when a variant has no cubin, spills registers,
needs more shared memory than a block of its GPU has (ARCH_LIMITS), or scales a program id in
int32 (narrow_products: an address that passes 2^31 on a large grid).
Run it in a process without TRITON_INTERPRET (interpreted kernels cannot be compiled).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from geovr.kernels._launch import FP_FUSION

REGS_PER_SM = 65536  # sm_80 .. sm_100
MAX_BLOCKS_PER_SM = 32  # 16 on sm_86 / sm_89, more than these kernels' occupancy ever reaches


@dataclass(frozen=True)
class ArchLimits:
    """What one SM of a GPU generation offers (CUDA programming guide, compute capabilities)."""

    smem_per_block: int  # bytes of shared memory one block may use (opt-in maximum)
    smem_per_sm: int  # bytes per SM; 1 KiB of it reserved per resident block
    max_warps: int  # resident warps per SM


# The GPUs users train on: A100 (8.0), A10 / RTX 3090 (8.6), L40S / RTX 4090 (8.9), H100 (9.0),
# B200 (10.0). The smallest shared memory is sm_86 / sm_89's 99 KiB per block: a kernel that fits
# an H100 may not load there (Triton's OutOfResources at the first launch).
ARCH_LIMITS = {
    80: ArchLimits(166912, 167936, 64),
    86: ArchLimits(101376, 102400, 48),
    89: ArchLimits(101376, 102400, 48),
    90: ArchLimits(232448, 233472, 64),
    100: ArchLimits(232448, 233472, 64),
}
ARCHES = tuple(ARCH_LIMITS)


@dataclass
class Compiled:
    name: str
    arch: int
    ptx_bytes: int
    cubin_bytes: int
    shared_bytes: int
    seconds: float
    num_warps: int = 4
    registers: int | None = None  # per thread, from cuobjdump -res-usage (None: tool missing)
    stack_bytes: int | None = None  # per thread: spilled registers (Triton kernels use no local arrays)
    loops: tuple[int, ...] = ()  # SASS instructions per iteration of each innermost loop
    trainer: bool = False  # a variant the trainer launches (fp32 depth, no mask, no weight)
    narrow: tuple[str, ...] = ()  # int32 products of a program id (narrow_products of its TTIR)

    @property
    def limits(self) -> ArchLimits:
        return ARCH_LIMITS.get(self.arch, ARCH_LIMITS[90])

    @property
    def warps_per_sm(self) -> int | None:
        """Resident warps per SM that the registers and shared memory allow (occupancy x max warps)."""
        if self.registers is None:
            return None
        per_warp = -(-self.registers * 32 // 256) * 256  # allocated in units of 256 per warp
        by_regs = REGS_PER_SM // (per_warp * self.num_warps)
        by_smem = self.limits.smem_per_sm // (self.shared_bytes + 1024)
        blocks = min(by_regs, by_smem, MAX_BLOCKS_PER_SM)
        return min(blocks * self.num_warps, self.limits.max_warps)

    def problems(self) -> list[str]:
        """Why this variant would fail or crawl on its GPU: no cubin, shared memory above the
        block's limit (OutOfResources at launch), registers spilled to local memory."""
        out = []
        if self.cubin_bytes == 0:
            out.append("no cubin")
        if self.shared_bytes > self.limits.smem_per_block:
            out.append(f"{self.shared_bytes} B of shared memory, above sm_{self.arch}'s {self.limits.smem_per_block}")
        if self.stack_bytes:
            out.append(f"{self.stack_bytes} B per thread spilled")
        if self.narrow:
            out.append(f"a program id scaled in int32 (can pass 2^31 on a large grid): {self.narrow[0]}")
        return out


def resource_usage(cubin: bytes) -> tuple[int, int] | None:
    """(registers, stack bytes) per thread of the cubin's kernel, from the cuobjdump that ships
    with Triton; None when it is not there."""
    out = _cuobjdump(cubin, "-res-usage")
    if out is None:
        return None
    m = re.search(r"REG:(\d+) STACK:(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def cuobjdump_tool() -> str | None:
    """A cuobjdump: the one that ships with Triton, else one on PATH; None without either."""
    import shutil

    try:
        from triton import knobs

        path = knobs.nvidia.cuobjdump.path
        if path and Path(path).exists():
            return path
    except Exception:  # noqa: BLE001 - an older Triton without knobs, or no bundled tool
        pass
    return shutil.which("cuobjdump")


def _cuobjdump(cubin: bytes, flag: str) -> str | None:
    """cuobjdump `flag` output for a cubin; None when no cuobjdump is found."""
    tool = cuobjdump_tool()
    if tool is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([tool, flag, f.name], capture_output=True, text=True).stdout


_SASS_LINE = re.compile(r"^\s+/\*([0-9a-f]{4,})\*/\s+(.*?);")


def inner_loops(sass: str) -> tuple[int, ...]:
    """Instructions per iteration of each innermost loop of a `cuobjdump -sass` listing, in
    program order. A loop is a backward branch; innermost: it encloses no other loop. The
    per-pixel cost of a kernel is its loop bodies over the pixels one iteration covers."""
    addr, text = [], []
    for line in sass.splitlines():
        m = _SASS_LINE.match(line)
        if m:
            addr.append(int(m.group(1), 16))
            text.append(m.group(2))
    index = {a: k for k, a in enumerate(addr)}
    spans = []
    for k, ins in enumerate(text):
        m = re.search(r"\bBRA (0x[0-9a-f]+)", ins)
        if m and index.get(int(m.group(1), 16), k) < k:
            spans.append((index[int(m.group(1), 16)], k))
    inner = [s for s in spans if not any(o != s and s[0] <= o[0] and o[1] <= s[1] for o in spans)]
    return tuple(end - start + 1 for start, end in sorted(inner))


_SSA = re.compile(r"%([\w.$-]+)")


def narrow_products(ttir: str) -> list[str]:
    """The int32 multiplications of a value derived from `tt.get_program_id` in a kernel's TTIR.

    An index scaled from a program id (rows of a program, a map's row of a program) grows with the
    grid and passes 2^31 on large inputs, wrapping to a wrong address in int32; widened to int64
    first (`tl.program_id(0).to(tl.int64)`) it cannot. Values read from memory are not derived, so
    indices within one sample, from its map entries, stay int32 (their size is checked by the
    launcher). Dependence is followed through every operation and loop-carried arguments."""
    derived: set[str] = set()
    found = []
    for line in ttir.splitlines():
        text = line.split(" loc(")[0].strip()
        if "=" not in text or not text.startswith("%"):
            if "iter_args(" in text:  # scf.for ... iter_args(%a = %b, ...)
                for a, b in re.findall(r"%([\w.$-]+) = %([\w.$-]+)", text):
                    if b in derived:
                        derived.add(a)
            continue
        lhs, rhs = text.split("=", 1)
        results = [r.split(":")[0] for r in _SSA.findall(lhs)]
        operands = [o.split("#")[0] for o in _SSA.findall(rhs)]
        for a, b in re.findall(r"%([\w.$-]+) = %([\w.$-]+)", rhs):  # iter_args on a result line
            if b in derived:
                derived.add(a)
        if "tt.get_program_id" in rhs or (any(o in derived for o in operands) and "tt.load" not in rhs):
            derived.update(results)
            if "arith.muli" in rhs and re.search(r":\s*(tensor<[^>]*x)?i32>?\s*$", rhs):
                found.append(text)
    return found


def all_specs() -> list[tuple]:
    """(name, kernel, signature, constexprs, trainer) of every kernel variant in geovr.kernels: for
    the depth loss every variant its launch plan reaches (depth_loss.reachable_inputs), for the
    alignment loss one per input dtype; trainer: the training loop launches it."""
    from geovr.kernels import align_loss, depth_loss

    return [*depth_loss._aot_specs(), *((*spec, True) for spec in align_loss._aot_specs())]


def file_stem(name: str) -> str:
    """A variant's name as a file name: depth_refine2[fp32,buf,fold] -> depth_refine2_fp32_buf_fold."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def compile_all(arches: list[int], out: Path | None = None, num_warps: int = 4,
                trainer_only: bool = False) -> list[Compiled]:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("TRITON_INTERPRET is set: unset it to compile kernels ahead of time")
    import triton
    from triton.backends.compiler import GPUTarget

    results = []
    for arch in arches:
        target = GPUTarget("cuda", arch, 32)
        for name, fn, signature, constexprs, trainer in all_specs():
            if trainer_only and not trainer:
                continue
            constexprs = dict(constexprs)
            warps = constexprs.pop("num_warps", num_warps)  # a launch option some kernels set
            sig = {**signature, **{k: "constexpr" for k in constexprs}}
            t0 = time.perf_counter()
            src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs)
            kernel = triton.compile(src, target=target, options={"num_warps": warps, "enable_fp_fusion": FP_FUSION})
            asm = kernel.asm
            usage = resource_usage(asm["cubin"]) or (None, None)
            loops = inner_loops(_cuobjdump(asm["cubin"], "-sass") or "")
            results.append(Compiled(name, arch, len(asm["ptx"]), len(asm["cubin"]),
                                    kernel.metadata.shared, time.perf_counter() - t0, warps, *usage,
                                    loops, trainer, tuple(narrow_products(asm["ttir"]))))
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                stem = f"{file_stem(name)}.sm{arch}"
                (out / f"{stem}.ptx").write_text(asm["ptx"])
                (out / f"{stem}.cubin").write_bytes(asm["cubin"])
    return results


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _arch(text: str) -> int:
    """--arch: an SM version Triton compiles for (70 and up, e.g. 90 for sm_90)."""
    value = _integer(text)
    if value < 70:
        raise argparse.ArgumentTypeError(f"must be an SM version >= 70 (e.g. 90 for sm_90), got {value}")
    return value


def _warps(text: str) -> int:
    """--num-warps: a power of two from 1 to 32 (a block of at most 1024 threads)."""
    value = _integer(text)
    if not 1 <= value <= 32 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two from 1 to 32, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=_arch, nargs="+", default=[90],
                    help=f"SM versions (default: 90; the GPUs users train on: {' '.join(map(str, ARCHES))})")
    ap.add_argument("--out", type=Path, default=None, help="write .ptx and .cubin files here")
    ap.add_argument("--num-warps", type=_warps, default=4, help="for kernels that do not set their own")
    ap.add_argument("--trainer", action="store_true",
                    help="only the variants the trainer launches (marked * in the full table)")
    args = ap.parse_args(argv)
    results = compile_all(args.arch, args.out, args.num_warps, trainer_only=args.trainer)
    print(f"{'kernel variant (* trainer)':38s} {'arch':>6s} {'ptx KB':>8s} {'cubin KB':>9s} {'smem B':>8s} "
          f"{'regs':>5s} {'spill B':>8s} {'warps/SM':>9s} {'s':>6s}  inner loops (SASS per iteration)")
    for r in results:
        regs, spill, warps = (("-" if v is None else str(v)) for v in (r.registers, r.stack_bytes, r.warps_per_sm))
        name = ("* " if r.trainer else "  ") + r.name
        print(f"{name:38s} {'sm_' + str(r.arch):>6s} {r.ptx_bytes / 1e3:8.1f} "
              f"{r.cubin_bytes / 1e3:9.1f} {r.shared_bytes:8d} {regs:>5s} {spill:>8s} {warps:>9s} {r.seconds:6.2f}"
              f"  {','.join(map(str, r.loops)) or '-'}")
    bad = [r for r in results if r.cubin_bytes == 0]
    print(f"compiled {len(results) - len(bad)}/{len(results)} kernels")
    failed = [f"{r.name} sm_{r.arch}: {'; '.join(r.problems())}" for r in results if r.problems()]
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
