"""Benchmark the GeoVR losses: fused Triton kernels (depth, alignment) and the compiled pose
extension vs the eager references, torch.compile(reference) and the release-style per-sample loops.
Prints one table and the targets; record figures in benchmarks/RESULTS.md.

    python benchmarks/loss_kernels.py                  # GPU: release shapes + sweep; CPU: small shapes
    python benchmarks/loss_kernels.py --shapes release --dtype bf16 --no-compile

Columns: median time of forward and of forward+backward, and the 10th-90th percentile of the latter
(a wide spread is a noisy host, not the kernel); GB/s = the minimal traffic of
forward+backward (inputs read once in forward, inputs read again and the gradient written once in
backward) / the fwd+bwd time; % of the device's measured copy bandwidth; peak memory above the
inputs (GPU: torch.cuda.max_memory_allocated; CPU: growth of the process's peak RSS).
Each sample is its own leaf, the samples lying back to back in one buffer (a model's packed
output), so no implementation pays for a stack or cat of the gradients in backward.
On CPU the Triton kernels are not timed (the interpreter measures nothing useful): the table
covers the CPU paths and says so. On a GPU the fused paths are first checked against their
references (python -m geovr.doctor's verdict for this environment, or its quick checks): a path
that fails is not timed, and its row says why.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from geovr.losses import align_loss, depth_loss, pose_loss, scale_loss
from geovr.losses.align import align_loss_reference
from geovr.losses.depth import depth_loss_reference
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
    fwd_bwd_spread: tuple[float, float] | None = None  # (10th, 90th percentile) of fwd+bwd, ms


# ---------------------------------------------------------------- timing and memory

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


WARMUP = 3  # calls before timing: torch.compile builds its inference and training graphs (and any recompile)


def _median_ms(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    return _times_ms(fn, device, reps)[0]


def _paired_ms(forward: Callable[[], object], fwd_bwd: Callable[[], object], device: torch.device,
               reps: int) -> tuple[float, tuple[float, float, float]]:
    """(forward median, (fwd+bwd median, p10, p90)), ms. Both are warmed up first; on a CPU the two
    are timed alternately, so a slow spell of the host weighs on both alike."""
    def fwd():
        with torch.no_grad():
            return forward()

    for _ in range(WARMUP):
        fwd()
        fwd_bwd()
    if device.type == "cuda":
        return _median_ms(fwd, device, reps), _times_ms(fwd_bwd, device, reps)
    a, b = [], []
    for _ in range(reps):
        for fn, out in ((fwd, a), (fwd_bwd, b)):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
    deciles = statistics.quantiles(b, n=10, method="inclusive")
    return statistics.median(a), (statistics.median(b), deciles[0], deciles[-1])


def _times_ms(fn: Callable[[], object], device: torch.device, reps: int) -> tuple[float, float, float]:
    """(median, 10th, 90th percentile) of a call's wall time, ms: the spread shows a noisy host."""
    if device.type == "cuda":
        import triton.testing

        med, lo, hi = triton.testing.do_bench(fn, quantiles=[0.5, 0.1, 0.9])
        return float(med), float(lo), float(hi)
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    if len(times) == 1:
        return times[0], times[0], times[0]
    deciles = statistics.quantiles(times, n=10, method="inclusive")
    return statistics.median(times), deciles[0], deciles[-1]


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


def copy_bandwidth_gbps(device: torch.device, nbytes: int) -> float:
    """Measured device copy bandwidth at `nbytes` moved ((read + write) bytes of dst.copy_(src) /
    time, at least 1 MiB): a loss is compared with a copy of its own size, both from the same cache
    level (a small case fits a CPU's caches, where a large copy would not)."""
    n = max(nbytes, 2**20) // 8  # fp32 elements of src: read n x 4 bytes, write n x 4
    src = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    for _ in range(WARMUP):
        dst.copy_(src)
    ms = _median_ms(lambda: dst.copy_(src), device, reps=15)
    return 2 * n * 4 / ms / 1e6


def _measure(loss: str, shape: str, impl: str, forward: Callable[[], object],
             leaves: list[torch.Tensor], nbytes: int, device: torch.device, copy_bw: float,
             reps: int) -> tuple[Row, Callable[[], object]]:
    """copy_bw: the copy bandwidth at this case's bytes (`copy_bandwidth_gbps`)."""
    """Time forward and forward+backward; return the row and the fwd+bwd callable (for memory)."""
    def fwd_bwd():
        for x in leaves:
            x.grad = None
        out = forward()
        (out[0] if isinstance(out, tuple) else out).backward()

    fwd_ms, (fb_ms, fb_lo, fb_hi) = _paired_ms(forward, fwd_bwd, device, reps)
    gbps = nbytes / fb_ms / 1e6
    note = "noisy: fwd+bwd timed below fwd" if fb_ms < fwd_ms else ""
    return Row(loss, shape, impl, fwd_ms, fb_ms, gbps, 100 * gbps / copy_bw, None, note,
               fwd_bwd_spread=(fb_lo, fb_hi)), fwd_bwd


# ---------------------------------------------------------------- cases

@dataclass
class Case:
    """One benchmark shape: the tensors whose .grad is reset, the minimal fwd+bwd bytes, and the
    implementations as (name, forward callable or None when not runnable here, note)."""

    loss: str
    shape: str
    leaves: list[torch.Tensor]
    nbytes: int
    impls: list[tuple[str, Callable[[], object] | None, str]]


FAILED: dict[str, str] = {}  # doctor check -> why it failed on this device (run() fills it on a GPU)


def verify_paths(device: torch.device) -> None:
    """On a GPU, time only the fused paths that pass their check here (python -m geovr.doctor's
    recorded verdict, or its quick checks now); print which."""
    if device.type != "cuda":
        return
    from geovr.doctor.select import select

    sel = select(["depth_loss", "align_loss", "pose_loss"], "cuda")
    FAILED.update(sel.fallbacks)
    said = {n: ("FAILED " + why if n in sel.fallbacks else r.status) for n, r in sel.results.items()}
    print(f"paths checked against their references ({'recorded verdict' if sel.reused else 'checked now'}): "
          + "; ".join(f"{n} {v}" for n, v in said.items()))


def _triton(fn: Callable[[], object], device: torch.device, check: str) -> tuple[str, Callable[[], object] | None, str]:
    if device.type != "cuda":
        return ("fused triton", None, "not timed on CPU (needs CUDA)")
    if check in FAILED:
        return ("fused triton", None, f"not timed: failed its check here ({FAILED[check]})")
    return ("fused triton", fn, "")


def _fwd_bwd_bytes(x: torch.Tensor) -> int:
    """Inputs read in forward (pred, target), read again and the gradient written in backward."""
    return 5 * x.numel() * x.element_size()


def _adjacent_leaves(buf: torch.Tensor) -> list[torch.Tensor]:
    """The samples buf[0], buf[1], ... as leaf tensors that require grad and lie back to back in
    buf's storage: a model's packed output, as the kernels see it (no packing copy in forward), and
    each gradient lands in its own .grad (no stack or cat of the gradients in backward). A single
    leaf split into samples would add that copy to every implementation's fwd+bwd time."""
    return [x.requires_grad_() for x in buf.unbind(0)]


def depth_case(b: int, t: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> Case:
    g = torch.Generator(device=device).manual_seed(0)
    pred = (torch.rand(b, t, h, w, generator=g, device=device) * 5 + 0.1).to(dtype)
    target = (torch.rand(b, t, h, w, generator=g, device=device) * 5 + 0.1).to(dtype)
    preds, targets = _adjacent_leaves(pred), list(target.unbind(0))
    return Case("depth", f"B={b} T={t} {h}x{w} {str(dtype)[6:]}", preds, _fwd_bwd_bytes(pred), [
        _triton(lambda: depth_loss(preds, targets, backend="triton"), device, "depth_loss"),
        ("eager reference", lambda: depth_loss_reference(preds, targets), ""),
        ("release loop", lambda: depth_loss_loop(preds, targets), ""),
    ])


def align_case(k: int, b: int, t: int, h: int, w: int, d: int, dtype: torch.dtype, device: torch.device) -> Case:
    g = torch.Generator(device=device).manual_seed(0)
    n = t * h * w
    student = torch.randn(k, b, n, d, generator=g, device=device).to(dtype)
    teacher = torch.randn(k, b, n, d, generator=g, device=device).to(dtype)
    leaves = _adjacent_leaves(student.view(k * b, n, d))
    s_lists = [leaves[i * b:(i + 1) * b] for i in range(k)]
    t_lists = [list(teacher[i].unbind(0)) for i in range(k)]
    return Case("align", f"K={k} B={b} T={t} {h}x{w} D={d} {str(dtype)[6:]}", leaves, _fwd_bwd_bytes(student), [
        _triton(lambda: align_loss(s_lists, t_lists, backend="triton"), device, "align_loss"),
        ("eager reference", lambda: align_loss_reference(s_lists, t_lists), ""),
        ("release loop", lambda: align_loss_loop(s_lists, t_lists), ""),
    ])


def pose_case(b: int, t: int, mode: str, device: torch.device) -> Case:
    g = torch.Generator(device=device).manual_seed(0)
    pred = torch.randn(b, t, 9, generator=g, device=device).requires_grad_()
    target = torch.randn(b, t, 9, generator=g, device=device)
    preds, targets = list(pred.unbind(0)), list(target.unbind(0))
    impls = [
        ("extension", None, f"not timed: failed its check here ({FAILED['pose_loss']})") if "pose_loss" in FAILED
        else ("extension", lambda: pose_loss(preds, targets, mode, backend="extension"), ""),
        ("eager reference", lambda: pose_loss(preds, targets, mode, backend="reference"), ""),
    ]
    if mode == "paper":
        impls.append(("release loop", lambda: pose_loss_loop(preds, targets), ""))
    return Case(f"pose {mode}", f"B={b} T={t}", [pred], _fwd_bwd_bytes(pred), impls)


def scale_case(b: int, device: torch.device) -> Case:
    pred = (torch.rand(b, device=device) + 0.5).requires_grad_()
    target = torch.rand(b, device=device) + 0.5
    return Case("scale", f"B={b}", [pred], _fwd_bwd_bytes(pred), [
        ("eager reference", lambda: scale_loss(pred, target), ""),
        ("release loop", lambda: scale_loss_loop(pred, target), ""),
    ])


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
    reps = 9 if device.type == "cpu" else 1
    big = copy_bandwidth_gbps(device, 2 * 2**30 if device.type == "cuda" else 512 * 2**20)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (no GPU: CPU paths only)"
    print(f"device: {name}; measured copy bandwidth {big:.0f} GB/s (large copies; each row's % is of a copy of "
          f"its own bytes); torch {torch.__version__}")
    verify_paths(device)
    copy_at: dict[int, float] = {}
    cases = [depth_case(*s, dtype, device) for s in depth_shapes]
    cases += [align_case(*s, dtype, device) for s in align_shapes]
    cases += [pose_case(8, 32, mode, device) for mode in ("paper", "geodesic", "relative")]
    cases.append(scale_case(8, device))
    rows, peaks = [], []
    for case in cases:
        impls = list(case.impls)
        if args.compile:  # torch.compile of the eager reference, right after it
            at = next(i for i, (name, _, _) in enumerate(impls) if name == "eager reference")
            impls.insert(at + 1, ("compiled reference", torch.compile(impls[at][1], dynamic=False), ""))
        for impl, fn, note in impls:
            if fn is None:
                rows.append(Row(case.loss, case.shape, impl, None, None, None, None, None, note))
                continue
            print(f"  {case.loss:14s} {case.shape:38s} {impl} ...", file=sys.stderr, flush=True)
            try:
                if case.nbytes not in copy_at:
                    copy_at[case.nbytes] = copy_bandwidth_gbps(device, case.nbytes)
                row, fwd_bwd = _measure(case.loss, case.shape, impl, fn, case.leaves, case.nbytes,
                                        device, copy_at[case.nbytes], reps)
                rows.append(row)
                peaks.append((row, fwd_bwd))
            except Exception as exc:  # a baseline that cannot run (e.g. compile) is reported, not fatal
                rows.append(Row(case.loss, case.shape, impl, None, None, None, None, None,
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

    def spread(x: tuple[float, float] | None) -> str:
        return "-" if x is None else f"{x[0]:.3f}-{x[1]:.3f}"

    head = ("| loss | shape | implementation | fwd ms | fwd+bwd ms | fwd+bwd p10-p90 ms | GB/s | % copy BW | peak MB "
            "| note |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r.loss} | {r.shape} | {r.impl} | {f(r.fwd_ms, '.3f')} | {f(r.fwd_bwd_ms, '.3f')} "
                     f"| {spread(r.fwd_bwd_spread)} | {f(r.gbps, '.1f')} | {f(r.pct_copy, '.1f')} "
                     f"| {f(r.peak_mb, '.0f')} | {r.note} |")
    return "\n".join(lines)


# Targets: (loss, implementation) -> (device type, min % of copy bandwidth or None, baseline,
# min speed-up of fwd+bwd over the baseline).
TARGETS = {
    ("depth", "fused triton"): [("cuda", 85.0, "release loop", 5.0)],
    ("align", "fused triton"): [("cuda", 80.0, "eager reference", 3.0)],
    ("pose relative", "extension"): [("cpu", None, "eager reference", 5.0), ("cuda", None, "eager reference", 10.0)],
}


def judged(value: float, goal: float, unit: str = "") -> str:
    """`value` printed with the fewest decimals (1 to 8) that leave it on the same side of `goal`
    as the unrounded value (4.96 against 5 prints 4.96, not 5.0), then whether it meets the goal."""
    for decimals in range(1, 9):
        if (round(value, decimals) >= goal) == (value >= goal):
            break
    return f"{value:.{decimals}f}{unit}"


def target_report(rows: list[Row], device: str = "cuda") -> str:
    """One line per row with a target on `device`: bandwidth share and speed-up, met or not."""
    lines = []
    for r in rows:
        for dev, pct, base_impl, speedup in TARGETS.get((r.loss, r.impl), []):
            if dev != device or r.fwd_bwd_ms is None:
                continue
            base = next((b for b in rows if (b.loss, b.shape, b.impl) == (r.loss, r.shape, base_impl)), None)
            x = base.fwd_bwd_ms / r.fwd_bwd_ms if base and base.fwd_bwd_ms else None
            parts = []
            if pct is not None:
                ok = r.pct_copy is not None and r.pct_copy >= pct
                shown = judged(r.pct_copy, pct, "%") if r.pct_copy is not None else "-"
                parts.append(f"{shown} of copy BW (>= {pct:.0f}%: {'met' if ok else 'NOT met'})")
            if x is None:
                parts.append(f"no {base_impl} timing")
            else:
                parts.append(f"{judged(x, speedup, 'x')} {base_impl} (>= {speedup:.0f}x: "
                             f"{'met' if x >= speedup else 'NOT met'})")
            lines.append(f"target {r.loss} {r.shape} [{dev}]: " + ", ".join(parts))
    return "\n".join(lines) or f"targets: none evaluated on {device}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="GeoVR loss benchmark")
    ap.add_argument("--shapes", choices=sorted(SHAPES), default=None,
                    help="shape set: release (the release's batch), sweep (sizes around it), cpu (small enough for "
                         "a CPU), tiny (a smoke test of the script, seconds); default: sweep on GPU, cpu on CPU")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="input dtype (default fp32)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="time torch.compile(reference) too (default: yes, but not for --shapes tiny, where "
                         "compiling takes a minute on a CPU)")
    ap.add_argument("--cpu", action="store_true", help="benchmark the CPU even when a GPU is present")
    args = ap.parse_args(argv)
    # torch.compile's expected notices (graph breaks, recompiles of the baseline) are not results
    warnings.filterwarnings("ignore", module=r"torch\._(dynamo|inductor)")
    for name in ("torch._dynamo", "torch._inductor"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.compile is None:
        args.compile = args.shapes != "tiny"
    torch.manual_seed(0)
    rows = run(args)
    print(format_table(rows))
    if args.shapes == "tiny":
        print("targets: not judged on the tiny smoke-test shapes (they are judged at the cpu, sweep and release shapes)")
    else:
        print(target_report(rows, "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
