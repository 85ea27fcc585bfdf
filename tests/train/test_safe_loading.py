"""Loading without arbitrary unpickling or the network: a checkpoint's RNG file reads with
torch.load(weights_only=True) and restores every generator (old files with a numpy array too);
a GeoVR checkpoint's base loads with local_files_only; geovr._ext imports before torch."""
import dataclasses
import random
import subprocess
import sys

import numpy as np
import torch

from geovr.train.checkpoint import load_rng_state, rng_state, set_rng_state


def _draws():
    return np.random.rand(3).tolist(), [random.random() for _ in range(3)], torch.rand(3).tolist()


def test_rng_file_reads_with_weights_only_and_restores_every_generator(tmp_path):
    np.random.seed(1)
    np.random.randn()  # a cached Gaussian in numpy's state
    random.seed(2)
    random.gauss(0, 1)
    torch.manual_seed(3)
    torch.save(rng_state(), tmp_path / "rank_00000.pt")
    expected = _draws()
    state = torch.load(tmp_path / "rank_00000.pt", weights_only=True)  # raises on anything but tensors and numbers
    np.random.seed(9), random.seed(9), torch.manual_seed(9)
    set_rng_state(state)
    assert _draws() == expected
    assert np.random.get_state()[0] == "MT19937"


def test_an_rng_file_of_the_old_format_still_restores(tmp_path):
    np.random.seed(4)
    old = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    torch.save(old, tmp_path / "old.pt")
    expected = _draws()
    np.random.seed(9), random.seed(9), torch.manual_seed(9)
    set_rng_state(load_rng_state(tmp_path / "old.pt"))
    assert _draws() == expected


def test_a_geovr_checkpoints_base_loads_with_local_files_only(tok, tmp_path, monkeypatch):
    from transformers import Qwen3VLForConditionalGeneration

    from geovr.model.checkpoint import load_geovr, save_geovr
    from geovr.model.config import GeoVRConfig
    from geovr.model.geovr_model import GeoVRModel
    from geovr.model.tiny import tiny_qwen3vl

    cfg = dataclasses.replace(GeoVRConfig.paper(), teacher_dim=32, camera_hidden=32, scale_hidden=16,
                              dpt_channels=(8, 16, 16, 16), dpt_features=8, projector_hidden=32)
    folder = save_geovr(GeoVRModel(tiny_qwen3vl(tok), cfg), tmp_path / "ckpt")
    seen = []
    original = Qwen3VLForConditionalGeneration.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("local_files_only"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Qwen3VLForConditionalGeneration, "from_pretrained", classmethod(spy))
    load_geovr(folder)
    assert seen == [True]


def test_the_extension_imports_before_torch():
    run = subprocess.run([sys.executable, "-c", "import geovr._ext as e; import torch; print(e.__name__)"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
