"""The trainer: typed config (`config.py`, `config_io.py`), builders (`build.py`), the objective
(`objective.py`), optimizer groups and schedule (`optim.py`), checkpoints (`checkpoint.py`),
metrics (`metrics.py`) and the loop (`loop.py`). Entry point: `python -m geovr.train`."""
from .config import Config, ConfigError, paper, preset, tiny, validate

__all__ = ["Config", "ConfigError", "paper", "preset", "tiny", "validate"]
