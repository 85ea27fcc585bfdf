import sys
import types

import pytest


@pytest.fixture
def fake_vggt(monkeypatch):
    """install(cls): make `from vggt.models.vggt import VGGT` give `cls` (VGGT is not on the
    package index), so the real loading code runs; returns cls."""
    def install(cls):
        pkg, models, mod = (types.ModuleType(n) for n in ("vggt", "vggt.models", "vggt.models.vggt"))
        mod.VGGT = cls
        for name, m in (("vggt", pkg), ("vggt.models", models), ("vggt.models.vggt", mod)):
            monkeypatch.setitem(sys.modules, name, m)
        return cls
    return install
