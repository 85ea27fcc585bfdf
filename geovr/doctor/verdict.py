"""The doctor's verdicts, one file per environment fingerprint, so that a run reuses the checks
of an identical environment and redoes them when any part of it changes.

The fingerprint: the GPUs (name, compute capability), the driver, CUDA, torch, Triton, Python,
DALI, whether the checks run the kernels compiled or in Triton's interpreter, and hashes of geovr's kernel and loss sources,
of the checks themselves and of the built extension (geovr._ext). Files live in $GEOVR_DOCTOR_DIR,
or ~/.cache/geovr/doctor; each is written whole (temporary file, then rename).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import torch

from geovr.doctor.runner import Result

_PACKAGE = Path(__file__).resolve().parent.parent  # geovr/
SOURCES = ("kernels", "losses", "doctor/checks.py", "doctor/compare.py")  # what a check's result depends on


def verdict_dir() -> Path:
    return Path(os.environ.get("GEOVR_DOCTOR_DIR") or Path.home() / ".cache" / "geovr" / "doctor")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def driver_version() -> str | None:
    """The NVIDIA driver's version (None without CUDA)."""
    if not torch.cuda.is_available():
        return None
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.split()
        return out[0] if out else None
    except (OSError, subprocess.SubprocessError):
        return None


def gpus() -> list[str]:
    """'name (sm_XY)' per visible GPU."""
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        out.append(f"{torch.cuda.get_device_name(i)} (sm_{major}{minor})")
    return out


def _hash_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def source_hash() -> str:
    files: list[Path] = []
    for rel in SOURCES:
        p = _PACKAGE / rel
        files += sorted(p.glob("*.py")) if p.is_dir() else [p]
    return _hash_files(files)


def extension_hash() -> str | None:
    try:
        from geovr import _ext
    except ImportError:
        return None
    return _hash_files([Path(_ext.__file__)])


def fingerprint() -> dict[str, object]:
    """The parts of the environment a check's result depends on."""
    import triton  # noqa: F401 - its version below

    return {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "gpus": gpus(),
        "driver": driver_version(),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "triton": _version("triton"),
        "dali": _version("nvidia-dali-cuda130") or _version("nvidia-dali-cuda120"),
        "python": platform.python_version(),
        "kernels": "compiled" if torch.cuda.is_available() else "interpreter",  # how the checks run them
        "geovr": _version("geovr"),
        "sources": source_hash(),
        "extension": extension_hash(),
    }


def key(fp: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]


def path_for(fp: dict[str, object]) -> Path:
    return verdict_dir() / f"verdict-{key(fp)}.json"


def load(fp: dict[str, object]) -> dict[str, Result]:
    """The recorded results for fingerprint `fp` ({} when none, or when the file is unreadable or
    was written for another fingerprint)."""
    path = path_for(fp)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if data.get("fingerprint") != json.loads(json.dumps(fp)):
        return {}
    try:
        return {name: Result(**r) for name, r in data.get("checks", {}).items()}
    except TypeError:
        return {}


def save(fp: dict[str, object], results: list[Result]) -> Path:
    """Adds `results` to fingerprint `fp`'s file (a full check replaces a quick one, a quick one
    never replaces a full one that passed); written whole, atomically."""
    known = load(fp)
    for r in results:
        old = known.get(r.name)
        if old is not None and not old.quick and r.quick and old.status in ("ok", "skipped"):
            continue
        known[r.name] = r
    path = path_for(fp)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"fingerprint": fp, "checks": {n: asdict(r) for n, r in sorted(known.items())}}, indent=1)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(body + "\n")
    os.replace(tmp, path)
    return path
