"""Ahead-of-time compile of every geovr Triton kernel for a GPU target; needs no GPU.

    python -m geovr.kernels.aot                 # sm_90 (Hopper)
    python -m geovr.kernels.aot --arch 80 90 100 --out build/aot   # also writes .ptx/.cubin

Proves the kernels lower to PTX and cubin for real hardware, not only that they interpret.
Run it in a process without TRITON_INTERPRET (interpreted kernels cannot be compiled).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Compiled:
    name: str
    arch: int
    ptx_bytes: int
    cubin_bytes: int
    shared_bytes: int
    seconds: float


def all_specs() -> list[tuple]:
    """(name, kernel, signature, constexprs) of every kernel in geovr.kernels."""
    from geovr.kernels import align_loss, depth_loss

    return [*depth_loss._aot_specs(), *align_loss._aot_specs()]


def compile_all(arches: list[int], out: Path | None = None, num_warps: int = 4) -> list[Compiled]:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("TRITON_INTERPRET is set: unset it to compile kernels ahead of time")
    import triton
    from triton.backends.compiler import GPUTarget

    results = []
    for arch in arches:
        target = GPUTarget("cuda", arch, 32)
        for name, fn, signature, constexprs in all_specs():
            sig = {**signature, **{k: "constexpr" for k in constexprs}}
            t0 = time.perf_counter()
            src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs)
            kernel = triton.compile(src, target=target, options={"num_warps": num_warps})
            asm = kernel.asm
            results.append(Compiled(name, arch, len(asm["ptx"]), len(asm["cubin"]),
                                    kernel.metadata.shared, time.perf_counter() - t0))
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                stem = f"{name.replace('[', '_').replace(']', '')}.sm{arch}"
                (out / f"{stem}.ptx").write_text(asm["ptx"])
                (out / f"{stem}.cubin").write_bytes(asm["cubin"])
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[90], help="SM versions (default: 90)")
    ap.add_argument("--out", type=Path, default=None, help="write .ptx and .cubin files here")
    ap.add_argument("--num-warps", type=int, default=4)
    args = ap.parse_args(argv)
    results = compile_all(args.arch, args.out, args.num_warps)
    print(f"{'kernel':28s} {'arch':>6s} {'ptx KB':>8s} {'cubin KB':>9s} {'smem B':>8s} {'s':>6s}")
    for r in results:
        print(f"{r.name:28s} {'sm_' + str(r.arch):>6s} {r.ptx_bytes / 1e3:8.1f} "
              f"{r.cubin_bytes / 1e3:9.1f} {r.shared_bytes:8d} {r.seconds:6.2f}")
    bad = [r.name for r in results if r.cubin_bytes == 0]
    print(f"compiled {len(results) - len(bad)}/{len(results)} kernels")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
