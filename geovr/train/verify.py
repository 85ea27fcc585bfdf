"""The fused and native paths a run uses, verified on its device before the model is built
(`train.verify_kernels`, see geovr.doctor.select): which checks the run needs, the decision agreed
by every rank, and what then computes each loss."""
from __future__ import annotations

import logging

import torch

from ..data.decode import resolve_backend
from ..doctor.runner import Result
from ..doctor.select import Selection, VerificationFailed, check_results, select
from ..losses._backend import implementation, use_kernel
from ..parallel.data_parallel import World, all_gather_object
from . import build
from .config import Config

logger = logging.getLogger("geovr.train")


def needed_checks(cfg: Config, device: torch.device) -> list[str]:
    """The doctor's checks of the paths this run will take: the Triton losses where they run (CUDA,
    or the interpreter when forced), the pose extension's CUDA kernels, DALI's GPU decoder."""
    if cfg.train.verify_kernels == "off":
        return []
    geo = build.geovr_config(cfg)
    names = [name for name, loss, on in (("depth_loss", "depth", geo.depth), ("align_loss", "align", geo.align))
             if on and use_kernel(None, device, torch.float32, loss)]
    if device.type == "cuda":
        if geo.camera:
            names.append("pose_loss")
        if resolve_backend(cfg.data.backend) == "dali-gpu":
            names.append("dali_decode")
    return names


def implementations(cfg: Config, device: torch.device) -> dict[str, str]:
    """What computes each enabled geometric loss ("triton", "reference (fallback)", ...) and decodes
    the videos."""
    geo = build.geovr_config(cfg)
    out = {loss: implementation(loss, device) for loss, on in (("depth", geo.depth), ("align", geo.align),
                                                               ("pose", geo.camera)) if on}
    out["decode"] = resolve_backend(cfg.data.backend)
    return out


def verify_run(cfg: Config, world: World) -> Selection:
    """Checks what the run needs (rank 0, in subprocesses; every rank then decides from its results)
    and routes failed paths to their fallbacks: the reference loss, PyAV for DALI (cfg.data.backend
    is set to pyav). Raises VerificationFailed under train.verify_kernels=strict."""
    names = needed_checks(cfg, world.device)
    if not names:
        return Selection()
    results: dict[str, Result] | str = {}
    reused = False
    if world.main:
        try:
            results, reused = check_results(names, world.device.type)
        except Exception as e:  # noqa: BLE001 - every rank must hear of it, not wait for rank 0
            results = f"{type(e).__name__}: {e}"
    results = all_gather_object(results, world)[0]
    if isinstance(results, str):
        raise RuntimeError(f"train.verify_kernels: the checks could not run on rank 0 ({results}); "
                           "set train.verify_kernels=off to skip them")
    sel = select(names, world.device.type, cfg.train.verify_kernels, results=results, log=world.main)
    sel.reused = reused
    if "dali_decode" in sel.fallbacks:
        cfg.data.backend = "pyav"
    if world.main:
        passed = [n for n, r in results.items() if r.passed]
        if passed:
            logger.info("verified on this device%s: %s", " (recorded verdict)" if reused else "", ", ".join(passed))
    return sel


__all__ = ["VerificationFailed", "implementations", "needed_checks", "verify_run"]
