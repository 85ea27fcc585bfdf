"""Benchmark the GeoVR losses: fused Triton kernels vs eager reference, torch.compile and the
release-style per-sample loop. Prints one table; record GPU figures in benchmarks/RESULTS.md.

    python benchmarks/loss_kernels.py                  # GPU: release shapes + sweep; CPU: small shapes
    python benchmarks/loss_kernels.py --shapes release --dtype bf16 --no-compile

Columns: median time of forward and of forward+backward; GB/s = the minimal traffic of
forward+backward (inputs read once in forward, inputs read again and the gradient written once in
backward) / the fwd+bwd time; % of the device's measured copy bandwidth; peak memory above the
inputs (GPU: torch.cuda.max_memory_allocated; CPU: growth of the process's peak RSS).
On CPU the Triton kernels are not timed (the interpreter measures nothing useful): the table
covers the CPU paths and says so.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch

from geovr.losses import align_loss, depth_loss, pose_loss, scale_loss
from geovr.losses.align import align_loss_reference
from geovr.losses.depth import depth_loss_reference
from geovr.losses.pose import pose_loss_reference
from geovr.losses.release_loop import align_loss_loop, depth_loss_loop, pose_loss_loop, scale_loss_loop

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Row:
    loss: str
    shape: str
    impl: str
    fwd_ms: float | None
    fwd_bwd_ms: float | None
    gbps: float | None
    pct_copy: float | None
    peak_mb: float | None
    note: str = ""


# ---------------------------------------------------------------- timing and memory

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, return_mode="median"))
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _malloc_returns_large_blocks() -> None:
    """Make glibc mmap (and unmap) every block above 128 KiB, so the peak RSS follows live tensors
    instead of being hidden by the heap's reuse of freed memory. CPU runs on Linux only."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        libc.malloc_trim(0)  # give back the pages of blocks freed so far
    except (OSError, AttributeError):
        pass


def _peak_mb(fn: Callable[[], object], device: torch.device) -> float | None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS of this process (Linux)
    except OSError:
        return None
    base = _rss_kb("VmRSS:")
    fn()
    return max(_rss_kb("VmHWM:") - base, 0) / 1024


def copy_bandwidth_gbps(device: torch.device, mib: int) -> float:
    """Measured device copy bandwidth: (read + write) bytes of dst.copy_(src) / time."""
    src = torch.empty(mib * 2**20 // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    ms = _median_ms(lambda: dst.copy_(src), device, reps=5)
    return 2 * src.numel() * 4 / ms / 1e6


def _measure(loss: str, shape: str, impl: str, forward: Callable[[], object],
             leaves: list[torch.Tensor], nbytes: int, device: torch.device, copy_bw: float,
             reps: int) -> tuple[Row, Callable[[], object]]:
    """Time forward and forward+backward; return the row and the fwd+bwd callable (for memory)."""
    def fwd_bwd():
        for x in leaves:
            x.grad = None
        out = forward()
        (out[0] if isinstance(out, tuple) else out).backward()

    with torch.no_grad():
        fwd_ms = _median_ms(forward, device, reps)
    fb_ms = _median_ms(fwd_bwd, device, reps)
    gbps = nbytes / fb_ms / 1e6
    return Row(loss, shape, impl, fwd_ms, fb_ms, gbps, 100 * gbps / copy_bw, None), fwd_bwd


# ---------------------------------------------------------------- cases

def _impls(device: torch.device, kernel: Callable, reference: Callable, loop: Callable,
           compile_ref: bool) -> list[tuple[str, Callable | None, str]]:
    impls: list[tuple[str, Callable | None, str]] = []
    if kernel is not None:
        if device.type == "cuda":
            impls.append(("fused triton", kernel, ""))
        else:
            impls.append(("fused triton", None, "not timed on CPU (needs CUDA)"))
    impls.append(("eager reference", reference, ""))
    if compile_ref:
        impls.append(("compiled reference", torch.compile(reference, dynamic=False), ""))
    impls.append(("release loop", loop, ""))
    return impls


def depth_cases(b: int, t: int, h: int, w: int, dtype: torch.dtype, device: torch.device):
    g = torch.Generator(device=device).manual_seed(0)
    pred = (torch.rand(b, t, h, w, generator=g, device=device) * 5 + 0.1).to(dtype).requires_grad_()
    target = (torch.rand(b, t, h, w, generator=g, device=device) * 5 + 0.1).to(dtype)
    preds, targets = list(pred.unbind(0)), list(target.unbind(0))
    n, es = pred.numel(), pred.element_size()
    nbytes = 2 * n * es + 3 * n * es
    return (
        f"B={b} T={t} {h}x{w} {str(dtype)[6:]}", [pred], nbytes,
        lambda: depth_loss(preds, targets, backend="triton"),
        lambda: depth_loss_reference(preds, targets),
        lambda: depth_loss_loop(preds, targets),
    )


def align_cases(k: int, b: int, t: int, h: int, w: int, d: int, dtype: torch.dtype, device: torch.device):
    g = torch.Generator(device=device).manual_seed(0)
    n = t * h * w
    student = torch.randn(k, b * n, d, generator=g, device=device).to(dtype).requires_grad_()
    teacher = torch.randn(k, b * n, d, generator=g, device=device).to(dtype)
    s_lists = [list(student[i].split(n)) for i in range(k)]
    t_lists = [list(teacher[i].split(n)) for i in range(k)]
    es = student.element_size()
    nbytes = 2 * student.numel() * es + 3 * student.numel() * es
    return (
        f"K={k} B={b} T={t} {h}x{w} D={d} {str(dtype)[6:]}", [student], nbytes,
        lambda: align_loss(s_lists, t_lists, backend="triton"),
        lambda: align_loss_reference(s_lists, t_lists),
        lambda: align_loss_loop(s_lists, t_lists),
    )


def pose_cases(b: int, t: int, device: torch.device):
    g = torch.Generator(device=device).manual_seed(0)
    pred = torch.randn(b, t, 9, generator=g, device=device).requires_grad_()
    target = torch.randn(b, t, 9, generator=g, device=device)
    preds, targets = list(pred.unbind(0)), list(target.unbind(0))
    return (f"B={b} T={t}", [pred], 5 * pred.numel() * 4, None,
            lambda: pose_loss_reference(preds, targets), lambda: pose_loss_loop(preds, targets))


def scale_cases(b: int, device: torch.device):
    pred = (torch.rand(b, device=device) + 0.5).requires_grad_()
    target = torch.rand(b, device=device) + 0.5
    return (f"B={b}", [pred], 5 * b * 4, None, lambda: scale_loss(pred, target),
            lambda: scale_loss_loop(pred, target))


SHAPES = {
    # (depth [(B, T, H, W)], align [(K, B, T, h, w, D)])
    "release": ([(8, 32, 392, 504)], [(4, 8, 32, 14, 18, 1024)]),
    "sweep": ([(8, 4, 392, 504), (8, 16, 392, 504), (2, 32, 196, 252), (8, 32, 392, 504)],
              [(4, 8, 4, 14, 18, 1024), (4, 8, 16, 14, 18, 1024), (4, 2, 32, 14, 18, 1024),
               (4, 8, 32, 14, 18, 1024)]),
    "cpu": ([(2, 4, 392, 504), (8, 8, 98, 126)], [(4, 2, 8, 14, 18, 1024), (4, 8, 32, 14, 18, 256)]),
    "tiny": ([(2, 2, 40, 50)], [(4, 2, 2, 4, 5, 64)]),  # smoke test of the script itself
}


def run(args: argparse.Namespace) -> list[Row]:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    dtype = DTYPES[args.dtype]
    shapes = args.shapes or ("sweep" if device.type == "cuda" else "cpu")
    depth_shapes, align_shapes = SHAPES[shapes]
    reps = 5 if device.type == "cpu" else 1
    copy_bw = copy_bandwidth_gbps(device, 1024 if device.type == "cuda" else 256)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (no GPU: CPU paths only)"
    print(f"device: {name}; measured copy bandwidth {copy_bw:.0f} GB/s; torch {torch.__version__}")
    cases = [("depth", depth_cases(*s, dtype, device)) for s in depth_shapes]
    cases += [("align", align_cases(*s, dtype, device)) for s in align_shapes]
    cases += [("pose", pose_cases(8, 32, device)), ("scale", scale_cases(8, device))]
    rows, peaks = [], []
    for loss, (shape, leaves, nbytes, kernel, reference, loop) in cases:
        for impl, fn, note in _impls(device, kernel, reference, loop, args.compile):
            if fn is None:
                rows.append(Row(loss, shape, impl, None, None, None, None, None, note))
                continue
            print(f"  {loss:6s} {shape:38s} {impl} ...", file=sys.stderr, flush=True)
            try:
                row, fwd_bwd = _measure(loss, shape, impl, fn, leaves, nbytes, device, copy_bw, reps)
                rows.append(row)
                peaks.append((row, fwd_bwd))
            except Exception as exc:  # a baseline that cannot run (e.g. compile) is reported, not fatal
                rows.append(Row(loss, shape, impl, None, None, None, None, None,
                                f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    # Memory last: on CPU malloc then maps large blocks afresh, which would slow the timings.
    for row, fwd_bwd in peaks:
        if device.type == "cpu":
            _malloc_returns_large_blocks()
        row.peak_mb = _peak_mb(fwd_bwd, device)
    return rows


def format_table(rows: list[Row]) -> str:
    def f(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    head = "| loss | shape | implementation | fwd ms | fwd+bwd ms | GB/s | % copy BW | peak MB | note |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r.loss} | {r.shape} | {r.impl} | {f(r.fwd_ms, '.3f')} | {f(r.fwd_bwd_ms, '.3f')} "
                     f"| {f(r.gbps, '.1f')} | {f(r.pct_copy, '.1f')} | {f(r.peak_mb, '.0f')} | {r.note} |")
    return "\n".join(lines)


# The issue's GPU targets for the fused kernels: (min % of copy bandwidth, baseline, min speed-up).
TARGETS = {"depth": (85.0, "release loop", 5.0), "align": (80.0, "eager reference", 3.0)}


def target_report(rows: list[Row]) -> str:
    """One line per fused-kernel row: fwd+bwd speed-up over the baseline and the targets met."""
    lines = []
    for r in rows:
        if r.impl != "fused triton" or r.loss not in TARGETS or r.fwd_bwd_ms is None:
            continue
        pct, base_impl, speedup = TARGETS[r.loss]
        base = next((b for b in rows if (b.loss, b.shape, b.impl) == (r.loss, r.shape, base_impl)), None)
        x = base.fwd_bwd_ms / r.fwd_bwd_ms if base and base.fwd_bwd_ms else None
        ok_bw = r.pct_copy is not None and r.pct_copy >= pct
        ok_x = x is not None and x >= speedup
        lines.append(
            f"target {r.loss} {r.shape}: {r.pct_copy:.1f}% of copy BW (>= {pct:.0f}%: "
            f"{'met' if ok_bw else 'NOT met'}), "
            + (f"{x:.1f}x {base_impl} (>= {speedup:.0f}x: {'met' if ok_x else 'NOT met'})"
               if x is not None else f"no {base_impl} timing")
        )
    return "\n".join(lines) or "targets: not evaluated (the fused kernels need a GPU)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="GeoVR loss benchmark")
    ap.add_argument("--shapes", choices=sorted(SHAPES), default=None,
                    help="shape set (default: sweep on GPU, cpu on CPU)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="input dtype (default fp32)")
    ap.add_argument("--no-compile", dest="compile", action="store_false",
                    help="skip the torch.compile(reference) baseline")
    ap.add_argument("--cpu", action="store_true", help="benchmark the CPU even when a GPU is present")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    rows = run(args)
    print(format_table(rows))
    print(target_report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
