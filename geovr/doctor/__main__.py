"""python -m geovr.doctor [--quick] [--only NAME ...] [--timeout S] [--no-save]

Prints what this machine has, then runs each check in its own process and prints one table:
check, status (ok / mismatch / crashed / skipped), max error (relative to the reference's
magnitude), seconds, and why. The verdict is written for this environment's fingerprint
($GEOVR_DOCTOR_DIR or ~/.cache/geovr/doctor), where the trainer finds it. Exit status 1 when a
check failed (mismatch or crashed), 0 otherwise.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from geovr.cli import positive
from geovr.doctor import verdict
from geovr.doctor.checks import CHECKS, QUICK
from geovr.doctor.report import report_lines
from geovr.doctor.runner import Result, run_check


def table(results: list[Result]) -> str:
    rows = [("check", "status", "max error", "s", "why")]
    for r in results:
        err = "-" if r.max_error is None else f"{r.max_error:.1e}"
        rows.append((r.name, r.status, err, f"{r.seconds:.1f}", r.why))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m geovr.doctor", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help=f"fewer cases of {', '.join(QUICK)} only (under a minute on "
                                                         "a GPU; what the trainer runs)")
    ap.add_argument("--only", nargs="+", choices=sorted(CHECKS), metavar="NAME",
                    help=f"run these checks only: {', '.join(CHECKS)}")
    ap.add_argument("--timeout", type=positive, default=None, help="seconds per check (default 300 quick, 900 full)")
    ap.add_argument("--no-save", action="store_true", help="do not record the verdict")
    args = ap.parse_args(argv)
    for line in report_lines():
        print(line)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        print("no GPU: the Triton kernels are checked in the interpreter (their logic, not compiled code); the "
              "CUDA pose kernels, DALI's GPU decoder and NCCL are not checked")
    names = args.only or (list(QUICK) if args.quick else list(CHECKS))
    results = []
    t0 = time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}: {CHECKS[name].path} ...", end="", flush=True)
        r = run_check(name, device, quick=args.quick, timeout_s=args.timeout)
        print(f" {r.status} ({r.seconds:.1f} s)", flush=True)
        results.append(r)
    print()
    print(table(results))
    bad = [r for r in results if r.status in ("mismatch", "crashed")]
    for r in bad:
        if r.log:
            print(f"\n{r.name} crashed; the end of its output (python -m geovr.doctor --only {r.name} reruns it):")
            print("    " + r.log.replace("\n", "\n    "))
    if not args.no_save:
        path = verdict.save(verdict.fingerprint(), results)
        print(f"verdict: {path}")
    print(f"{len(results) - len(bad)}/{len(results)} checks passed or skipped in {time.perf_counter() - t0:.0f} s"
          + (f"; failed: {', '.join(r.name for r in bad)} (training falls back from these paths, "
             "or refuses under train.verify_kernels=strict)" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
