"""Runs a doctor check in a subprocess with a timeout, so that a crash, a hang or a poisoned CUDA
context (after an illegal memory access every later CUDA call fails) stays in that process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from geovr.doctor.worker import RESULT_PREFIX

STATUSES = ("ok", "mismatch", "crashed", "skipped")
QUICK_TIMEOUT_S = 300.0  # a quick check: Triton's first compile of every variant included
FULL_TIMEOUT_S = 900.0
LOG_LINES = 25  # of a crashed check's stderr, kept with its result


@dataclass
class Result:
    """A check's verdict: status (one of STATUSES), the worst relative error, why (a mismatch's
    first failure, a crash's error or signal, why it was skipped), seconds, and whether it ran the
    quick subset."""

    name: str
    status: str
    max_error: float | None = None
    why: str = ""
    seconds: float = 0.0
    quick: bool = True
    cases: int = 0
    log: str = ""  # a crash's last lines of stderr (its traceback), for a bug report

    @property
    def passed(self) -> bool:
        return self.status == "ok"


def worker_env(device: str) -> dict[str, str]:
    """The subprocess's environment: this one, with TRITON_INTERPRET=1 on a machine without a GPU
    (the kernels then run in the interpreter)."""
    env = dict(os.environ)
    if device != "cuda":
        env["TRITON_INTERPRET"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_check(name: str, device: str, quick: bool, timeout_s: float | None = None) -> Result:
    """Runs check `name` in a fresh Python process on `device` ("cuda" or "cpu")."""
    timeout_s = timeout_s or (QUICK_TIMEOUT_S if quick else FULL_TIMEOUT_S)
    cmd = [sys.executable, "-m", "geovr.doctor.worker", name, "--device", device] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=worker_env(device))
    except subprocess.TimeoutExpired:
        return Result(name, "crashed", why=f"timed out after {timeout_s:.0f} s", seconds=time.perf_counter() - t0,
                      quick=quick)
    seconds = time.perf_counter() - t0
    line = next((x for x in reversed(proc.stdout.splitlines()) if x.startswith(RESULT_PREFIX)), None)
    log = "\n".join(proc.stderr.strip().splitlines()[-LOG_LINES:])
    if line is not None:
        out = json.loads(line[len(RESULT_PREFIX):])
        return Result(name, out["status"], out["max_error"], out["why"], seconds, quick, out["cases"],
                      log if out["status"] == "crashed" else "")
    if proc.returncode < 0:
        why = f"killed by {signal.Signals(-proc.returncode).name}"
    else:
        why = f"exit status {proc.returncode}"
    tail = [x for x in proc.stderr.strip().splitlines() if x.strip()][-1:]
    return Result(name, "crashed", why=f"{why}: {tail[0].strip()[:240]}" if tail else why, seconds=seconds, quick=quick,
                  log=log)
