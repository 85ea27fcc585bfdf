"""Writing matplotlib figures: one atomic PNG save shared by every picture geovr makes."""
from __future__ import annotations

import os
from pathlib import Path

DPI = 110


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Lay out `fig`, write it to `path` (PNG) through a temporary file renamed into place, close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.stem + ".part.png")
    fig.savefig(tmp, dpi=DPI)
    plt.close(fig)
    os.replace(tmp, path)
    return path
