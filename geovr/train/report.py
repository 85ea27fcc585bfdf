"""What a finished run leaves for its user: `summary.json`, `loss_curves.png` (every loss part
against step, from the whole run's metrics) and the end-of-run table that names every output."""
from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger("geovr.train")
CURVES = "loss_curves.png"
SUMMARY = "summary.json"


def plot_losses(records: list[dict], path: Path) -> Path | None:
    """One panel per loss part (and the weighted total) against step; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        from ..figures import save_figure
    except ImportError:
        logger.info("matplotlib is not installed (pip install matplotlib): no %s", path.name)
        return None
    keys = ["loss"] + sorted({k for r in records for k in r if k.startswith("loss/")})
    keys = [k for k in keys if any(k in r for r in records)]
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        pts = [(r["step"], r[key]) for r in records if key in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2)
        ax.set_title("total (weighted)" if key == "loss" else key.split("/", 1)[1])
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    return save_figure(fig, path)


def write_summary(summary: dict, output: Path) -> Path:
    path = output / SUMMARY
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return path


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def summary_table(summary: dict, output: Path) -> str:
    """The end-of-run text: how the run ended, each loss part first -> last (means over the first
    and last tenth of the logged steps of the whole run), and where every output is."""
    lines = [f"run {summary.get('stopped', 'done')}: {summary.get('steps', 0)} steps "
             f"({summary.get('bad_steps', 0)} skipped as NaN/inf), {summary.get('samples_seen', 0)} samples, "
             f"{summary.get('tokens_seen', 0):,} tokens, {_duration(summary.get('wall_s', 0.0))}"
             + (f" (this process; resumed at step {summary['resumed_at']})" if summary.get("resumed_at") else "")]
    parts = [k[:-len(" first")] for k in summary if k.endswith(" first")]
    if parts:
        lines.append(f"  {'loss':<12}{'first':>10}{'last':>10}")
        for key in parts:
            name = "total" if key == "loss" else key.split("/", 1)[1]
            lines.append(f"  {name:<12}{summary[key + ' first']:>10.4f}{summary[key + ' last']:>10.4f}")
    impl = summary.get("implementations")
    if impl:
        lines.append("  computed by: " + ", ".join(f"{k} {v}" for k, v in impl.items()))
    skipped = summary.get("data/skipped", 0)
    if skipped:
        lines.append(f"  {int(skipped)} bad data items skipped (see the warnings above)")
    out = [("final/", "the trained GeoVR model: python -m geovr.export --ckpt {p} --out DIR"),
           ("checkpoints/", "training checkpoints: continue with --resume auto"),
           ("metrics.jsonl", "one record per logged step"),
           ("tensorboard/", "tensorboard --logdir {p}"),
           (CURVES, "every loss part against step"),
           (SUMMARY, "this summary")]
    found = [(name, what) for name, what in out if (output / name.rstrip("/")).exists()]
    if found:
        lines.append(f"outputs in {output}/:")
        width = max(len(n) for n, _ in found) + 2
        lines += [f"  {name:<{width}}{what.format(p=output / name.rstrip('/'))}" for name, what in found]
    return "\n".join(lines)
