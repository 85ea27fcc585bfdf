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
