"""Helpers of the trainer tests (a module of its own: test files import it by this unique name)."""
from geovr.train.config import tiny


def small_config(data_root, output, **train):
    """The tiny preset on the session's small synthetic dataset (96x128, 8 frames), quick steps."""
    cfg = tiny()
    cfg.data.path = str(data_root / "train.jsonl")
    cfg.data.synthetic = False
    cfg.data.teacher_longest = 140
    cfg.model.tiny_layers = 4
    cfg.train.output = str(output)
    cfg.metrics.progress = False
    cfg.metrics.tensorboard = False
    cfg.checkpoint.export = False
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def overrides(cfg) -> list[str]:
    """The same config as command-line overrides (for subprocess runs)."""
    out = []
    for section, values in cfg.to_dict().items():
        for key, value in values.items():
            if isinstance(value, (list, tuple)):
                continue
            out.append(f"{section}.{key}={'none' if value is None else value}")
    return out


def losses(output) -> dict[int, dict]:
    """metrics.jsonl of a run: the last record of each step."""
    import json

    out = {}
    for line in (output / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[rec["step"]] = rec
    return out
