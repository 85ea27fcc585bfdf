"""One check in its own process: `python -m geovr.doctor.worker NAME --device cuda [--quick]`.

Prints the outcome as one JSON line prefixed by RESULT_PREFIX, last; an exception prints a
`crashed` outcome with its message; a fault that kills the process (an illegal memory access, an
abort) leaves no line, and the runner reports the signal.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from dataclasses import asdict

RESULT_PREFIX = "GEOVR_DOCTOR_RESULT "


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m geovr.doctor.worker")
    ap.add_argument("name")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    import torch

    from geovr.doctor.checks import CHECKS, Outcome, Skip

    try:
        outcome = CHECKS[args.name].run(torch.device(args.device), args.quick)
        if args.device == "cuda":
            torch.cuda.synchronize()  # an asynchronous fault surfaces here, inside the check
    except Skip as why:
        outcome = Outcome("skipped", why=str(why))
    except Exception as e:  # noqa: BLE001 - any failure of the path is the finding
        traceback.print_exc(file=sys.stderr)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        outcome = Outcome("crashed", why=f"{type(e).__name__}: {first}"[:300])
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(asdict(outcome)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
