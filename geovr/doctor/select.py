"""What a run uses, verified: the doctor's checks of the paths it needs (the recorded verdict for
this environment's fingerprint, or the quick checks run now, each in a subprocess), and a route to
the fallback for each path that failed.

  mode "auto":   a failed path is replaced by its fallback, with one log line naming the check,
                 its error and the fallback
  mode "strict": a failed path refuses the run (VerificationFailed)
  mode "off":    nothing is checked
A skipped check (the path cannot run here, e.g. DALI not installed) changes nothing: the run's own
choice of path already excludes it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from geovr.doctor import verdict
from geovr.doctor.checks import CHECKS
from geovr.doctor.runner import Result, run_check
from geovr.losses._backend import use_reference

logger = logging.getLogger("geovr.doctor")
MODES = ("auto", "off", "strict")
LOSS_OF = {"depth_loss": "depth", "align_loss": "align", "pose_loss": "pose"}  # checks routed in geovr.losses


class VerificationFailed(RuntimeError):
    """A path the run needs failed its check under verify_kernels=strict."""


@dataclass
class Selection:
    """results: per check, what it found; fallbacks: per failed check, why it failed."""

    results: dict[str, Result] = field(default_factory=dict)
    fallbacks: dict[str, str] = field(default_factory=dict)
    reused: bool = False  # every result came from a recorded verdict

    def failed(self, name: str) -> bool:
        return name in self.fallbacks


def describe(r: Result) -> str:
    err = f", max error {r.max_error:.2g}" if r.max_error is not None and r.status == "mismatch" else ""
    return f"{r.status}{err}: {r.why}" if r.why else r.status


def check_results(names: list[str], device: str, timeout_s: float | None = None) -> tuple[dict[str, Result], bool]:
    """The quick checks `names` for this environment: recorded ones reused, the others run now (and
    recorded). Returns (results, whether all were reused)."""
    fp = verdict.fingerprint()
    known = verdict.load(fp)
    todo = [n for n in names if n not in known]
    fresh = []
    for name in todo:
        logger.info("verifying %s on this %s (python -m geovr.doctor --only %s; once per environment)",
                    CHECKS[name].path, "GPU" if device == "cuda" else "CPU", name)
        fresh.append(run_check(name, device, quick=True, timeout_s=timeout_s))
    if fresh:
        verdict.save(fp, fresh)
    results = {**{n: known[n] for n in names if n in known}, **{r.name: r for r in fresh}}
    return results, not todo


def select(names: list[str], device: str, mode: str = "auto", timeout_s: float | None = None,
           results: dict[str, Result] | None = None, log: bool = True) -> Selection:
    """Verifies the paths `names` (check names) and routes each failed one to its fallback;
    `results` given: decide from them instead of checking (another rank's); log: say so (one
    rank of many)."""
    if mode not in MODES:
        raise ValueError(f"train.verify_kernels: expected one of {MODES}, got {mode!r}")
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {sorted(CHECKS)}")
    sel = Selection()
    if mode == "off" or not names:
        return sel
    if results is None:
        results, sel.reused = check_results(names, device, timeout_s)
    sel.results = results
    failed = {n: describe(r) for n, r in results.items() if r.status in ("mismatch", "crashed")}
    if failed and mode == "strict":
        lines = "; ".join(f"{CHECKS[n].path} ({n}) {why}" for n, why in failed.items())
        raise VerificationFailed(f"train.verify_kernels=strict: {lines}. Run python -m geovr.doctor for the "
                                 "full table, or set train.verify_kernels=auto to train on the fallbacks")
    for name, why in failed.items():
        if name in LOSS_OF:
            use_reference(LOSS_OF[name], f"{name} {why}")
        if log:
                logger.warning("%s failed its check on this device (%s): using %s instead", CHECKS[name].path, why,
                           CHECKS[name].fallback)
    sel.fallbacks = failed
    return sel
