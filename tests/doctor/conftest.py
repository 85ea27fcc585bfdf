from pathlib import Path

import pytest

FAULT_SITE = Path(__file__).parent / "fault_site"


@pytest.fixture
def doctor_env(tmp_path, monkeypatch):
    """A fresh verdict folder; faults loadable in the doctor's subprocesses (`fault(PATH, KIND)`);
    the losses' routing restored afterwards."""
    import os

    from geovr.losses import _backend

    monkeypatch.setenv("GEOVR_DOCTOR_DIR", str(tmp_path / "verdicts"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAULT_SITE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
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
