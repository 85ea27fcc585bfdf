"""Test set-up shared by every test folder.

Without a GPU the Triton kernels run in the interpreter: TRITON_INTERPRET must be set before the
kernel modules are imported, so it is set here, first. GPU-only tests carry `@pytest.mark.gpu`
and are skipped when CUDA is absent.
"""
import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped without one)")


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device() -> torch.device:
    """Where kernel tests run: the GPU when present, else the CPU under the Triton interpreter."""
    return torch.device("cuda" if HAS_CUDA else "cpu")


@pytest.fixture(scope="session")
def tok():
    """The tiny Qwen-style tokenizer (built offline in under a second)."""
    from geovr.data.tiny_tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A small synthetic dataset: 2 scenes, 96x128, 4 s at 4 fps (8 frames sampled per video)."""
    from geovr.data.synthetic import WorldConfig, generate

    out = tmp_path_factory.mktemp("synthetic")
    generate(out, scenes=2, seed=5, cfg=WorldConfig(height=96, width=128, fps=4.0, seconds=4.0), progress=False)
    return out


@pytest.fixture(scope="session")
def batch(synthetic_root, tok):
    """Two video samples (8 frames each) from the two scenes of `synthetic_root`, through the data
    pipeline (PyAV decoding, Qwen inputs, collate): (collated batch, [their records])."""
    from geovr.data.dataset import VideoQADataset
    from geovr.data.datasets import read_vsi590k
    from geovr.data.qwen_inputs import QwenTransform, collate

    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    ds = VideoQADataset(recs, backend="pyav", transform=QwenTransform(tok))
    last = max(i for i, r in enumerate(recs) if r.extra["scene"] != recs[0].extra["scene"])
    return collate([ds[0], ds[last]], tok.pad_token_id), [recs[0], recs[last]]


@pytest.fixture
def doctor_env(tmp_path, monkeypatch):
    """For tests of geovr.doctor and of the trainer's kernel checks: a fresh verdict folder; faults
    loadable in the doctor's subprocesses (`fault(PATH, KIND)`, tests/doctor/fault_site); `starts()`
    counts the check processes started under KIND count; the losses' routing restored afterwards."""
    from pathlib import Path

    from geovr.losses import _backend

    site = Path(__file__).parent / "doctor" / "fault_site"
    monkeypatch.setenv("GEOVR_DOCTOR_DIR", str(tmp_path / "verdicts"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("GEOVR_TEST_FAULT_COUNT", str(tmp_path / "starts.txt"))
    monkeypatch.delenv("GEOVR_TEST_FAULT", raising=False)

    def fault(path: str, kind: str) -> None:
        monkeypatch.setenv("GEOVR_TEST_FAULT", f"{path}:{kind}")

    def starts() -> int:
        p = tmp_path / "starts.txt"
        return len(p.read_text().splitlines()) if p.exists() else 0

    saved = dict(_backend._routed)
    yield fault, starts
    _backend._routed.clear()
    _backend._routed.update(saved)
