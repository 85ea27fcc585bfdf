"""`python -m geovr.eval.probe`: how linearly decodable is 3D geometry from each LLM layer?

  python -m geovr.data.synthetic --out geovr_runs/probe_world --scenes 64 --size 96x128 --seed 1  # held-out
  python -m geovr.eval.probe --model geovr_runs/tiny/final --data geovr_runs/probe_world --output runs/probe

Freezes the model (a HF Qwen3-VL folder or a GeoVR checkpoint's base), collects the hidden states
of the chosen layers on held-out videos with known geometry (`probe_data.py`), and fits
closed-form ridge probes (`ridge.py`, penalty by GCV) for per-token depth, per-frame relative pose
and per-video metric scale. Scores are out-of-fold over videos (grouped K-fold: a video's rows are
always predicted by a probe fitted on other videos): R^2 per layer, plus errors in metres and
degrees. Writes probe.json, probe.md and probe.png (score against layer). Fewer videos (or frame
rows) than feature dimensions, or a planted target not recovered, is warned about with the count
needed (`probe_warnings`): the per-video probe of the tiny model needs 64 videos.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from ..cli import at_least, check_output, positive
from ..figures import save_figure
from .probe_data import ProbeData
from .ridge import cross_validate

PROBES = ("depth", "pose_translation", "pose_rotation", "scale")
PLANTED = ("token_row", "token_col", "token_rgb", "token_rgb_shuffled", "frame_linear", "video_linear")
PLANTED_SEED = 7  # the planted linear functions' weights: fixed, the same for every model and layer


def _score(s) -> dict:
    """The out-of-fold R^2, the training R^2 and the median relative penalty of a `ProbeScore`."""
    return {"r2": s.r2, "train_r2": s.train_r2, "penalty": s.penalty}


def planted_linear(x: np.ndarray, seed: int = PLANTED_SEED) -> np.ndarray:
    """A fixed random linear function of the standardised features x [N, D] -> [N]."""
    sd = x.std(0)
    z = (x - x.mean(0)) / np.where(sd > 1e-12, sd, 1.0)
    return z @ np.random.default_rng(seed).normal(size=x.shape[1]) / np.sqrt(x.shape[1])


def fit_planted(s: dict, k: int, folds: int, seed: int) -> dict:
    """The instrument check at layer k: the planted targets (`probe_data`) through the same probes."""
    out = {}
    tok = s["token_planted"]
    if tok is not None:
        for name, cols in (("token_row", [0]), ("token_col", [1]), ("token_rgb", [2, 3, 4]),
                           ("token_rgb_shuffled", [5, 6, 7])):
            out[name] = _score(cross_validate(s["token_feats"][k], tok[:, cols], s["token_group"], folds, seed))
    out["frame_linear"] = _score(cross_validate(s["frame_feats"][k], planted_linear(s["frame_feats"][k]),
                                                s["frame_group"], folds, seed))
    out["video_linear"] = _score(cross_validate(s["video_feats"][k], planted_linear(s["video_feats"][k]),
                                                s["video_group"], folds, seed))
    return out


def fit_probes(data: ProbeData, folds: int = 5, seed: int = 0) -> dict:
    """{layer: {probe: {"r2", "train_r2", "penalty", error metrics}, "planted": {target: {"r2",
    "train_r2", "penalty"}}}} for every collected layer ("planted": the instrument check)."""
    if len(data.names) < 3:
        raise ValueError(f"probing needs at least 3 videos, got {len(data.names)}")
    s = data.stacked()
    out = {}
    depth, pose, scale = s["token_depth"], s["frame_pose"], s["video_scale"]
    for k in data.layers:
        d = cross_validate(s["token_feats"][k], depth, s["token_group"], folds, seed)
        pt = cross_validate(s["frame_feats"][k], pose[:, :3], s["frame_group"], folds, seed)
        pr = cross_validate(s["frame_feats"][k], pose[:, 3:], s["frame_group"], folds, seed)
        c = cross_validate(s["video_feats"][k], scale, s["video_group"], folds, seed)
        out[k] = {
            "depth": {**_score(d), "abs_rel": float(np.mean(np.abs(np.exp(d.pred[:, 0]) - np.exp(depth))
                                                               / np.exp(depth))), "n": int(len(depth))},
            "pose_translation": {**_score(pt), "error_m": float(np.linalg.norm(pt.pred - pose[:, :3], axis=1).mean()),
                                 "n": int(len(pose))},
            "pose_rotation": {**_score(pr), "error_deg": float(np.degrees(np.linalg.norm(pr.pred - pose[:, 3:],
                                                                                         axis=1)).mean()),
                              "n": int(len(pose))},
            "scale": {**_score(c), "abs_rel": float(np.mean(np.abs(np.exp(c.pred[:, 0]) - np.exp(scale)) / np.exp(scale))),
                      "n": int(len(scale))},
            "planted": fit_planted(s, k, folds, seed),
        }
    return out


PLANTED_RECOVERED = 0.5  # out-of-fold R^2 below which a planted linear target counts as not recovered


def probe_warnings(data: ProbeData, results: dict) -> list[str]:
    """Why the per-frame or per-video scores may not be trusted: fewer rows than feature dimensions
    (a planted linear target needs about one row per dimension: the tiny model's 64 features were
    recovered from 64 videos, not from 16), and a planted linear target not recovered at some layer."""
    s = data.stacked()
    k = data.layers[0]
    videos, frames = len(data.names), len(s["frame_group"])
    out = []
    width = s["video_feats"][k].shape[1]
    if videos < width:
        out.append(f"per-video probes (scale, planted video_linear) have {videos} videos for {width} feature "
                   f"dimensions: too few for the planted check; use at least {width} videos")
    if frames < width:
        per_video = max(1.0, frames / max(1, videos))
        out.append(f"per-frame probes (pose, planted frame_linear) have {frames} frame rows ({videos} videos x about "
                   f"{per_video:.0f} frames after the first) for {width} feature dimensions: use at least {width} "
                   f"rows, e.g. {-(-width // int(per_video))} videos at these frames")
    for name in ("frame_linear", "video_linear"):
        bad = [layer for layer, r in results.items() if r["planted"][name]["r2"] < PLANTED_RECOVERED]
        if bad:
            worst = min(results[layer]["planted"][name]["r2"] for layer in bad)
            out.append(f"planted {name} not recovered (out-of-fold R^2 < {PLANTED_RECOVERED}, lowest {worst:.2f}) at "
                       f"layers {bad}: the set-up cannot decode a target made to be decodable, so the "
                       f"{'scale' if name == 'video_linear' else 'pose'} scores there say nothing about the model")
    return out


def _cell(r: dict) -> str:
    return f"{r['r2']:.3f} / {r['train_r2']:.3f} / {r['penalty']:.0e}"


def markdown(results: dict, title: str, warnings: list[str] = ()) -> str:
    rows = [f"# {title}", ""]
    if warnings:
        rows += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    rows += ["Out-of-fold R^2 (grouped by video) of linear ridge probes; errors of the same "
            "predictions.", "", "| layer | depth R^2 | depth AbsRel | pose t R^2 | pose t err (m) | pose R R^2 | "
            "pose R err (deg) | scale R^2 | scale AbsRel |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, r in results.items():
        rows.append(f"| {k} | {r['depth']['r2']:.3f} | {r['depth']['abs_rel']:.3f} | {r['pose_translation']['r2']:.3f} | "
                    f"{r['pose_translation']['error_m']:.3f} | {r['pose_rotation']['r2']:.3f} | "
                    f"{r['pose_rotation']['error_deg']:.1f} | {r['scale']['r2']:.3f} | {r['scale']['abs_rel']:.3f} |")
    rows += ["", "## The instrument", "", "Each cell: out-of-fold R^2 / training R^2 / chosen penalty (relative to the "
             "mean eigenvalue; 1e-03 barely regularises, 1e+06 predicts the mean). Training far above out-of-fold: "
             "the probe overfits; the planted targets are decodable by construction (token row, column and footprint "
             "colour at the embeddings; a random linear function of the probe's own frame and video features), so a "
             "planted target that is not recovered is a fault of the set-up, not of the model.", "",
             "| layer | " + " | ".join(PROBES) + " | " + " | ".join(f"planted {p}" for p in PLANTED) + " |",
             "|---:|" + "---:|" * (len(PROBES) + len(PLANTED))]
    for k, r in results.items():
        planted = r.get("planted", {})
        rows.append(f"| {k} | " + " | ".join(_cell(r[p]) for p in PROBES) + " | "
                    + " | ".join(_cell(planted[p]) if p in planted else "-" for p in PLANTED) + " |")
    return "\n".join(rows) + "\n"


def plot(runs: dict[str, dict], path: str | os.PathLike, title: str = "linear probes",
         colours: dict[str, str] | None = None) -> Path:
    """One panel per probe, R^2 against layer, one line per run ({run name: fit_probes result});
    an entry's optional "lo"/"hi" (an interval over seeds) is drawn as a band. R^2 below -1
    (worse than predicting the mean) is drawn at -1. colours: {run name: matplotlib colour} to keep
    a run's colour across figures (default: the colour cycle)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("the probe plot needs matplotlib: pip install matplotlib (or the 'eval' extra)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(PROBES), figsize=(4 * len(PROBES), 3.4), sharex=True)
    for ax, probe in zip(axes, PROBES):
        for name, res in runs.items():
            layers = [int(k) for k in res]
            line, = ax.plot(layers, [max(res[k][probe]["r2"], -1.0) for k in res], marker="o", label=name,
                            color=(colours or {}).get(name))
            if all("lo" in res[k][probe] for k in res):
                ax.fill_between(layers, [max(res[k][probe]["lo"], -1.0) for k in res],
                                [max(res[k][probe]["hi"], -1.0) for k in res], color=line.get_color(), alpha=0.2)
        ax.set_title(probe.replace("_", " "))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("hidden state (0 = embeddings)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("out-of-fold R$^2$ (below -1 drawn at -1)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def write_report(results: dict, output: str | os.PathLike, title: str, config: dict,
                 warnings: list[str] = ()) -> None:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "probe.json").write_text(json.dumps({"config": config, "warnings": list(warnings),
                                                   "layers": {str(k): v for k, v in results.items()}}, indent=1))
    (output / "probe.md").write_text(markdown(results, title, warnings))
    plot({title: results}, output / "probe.png", title)


def parse_layers(text: str) -> list[int] | None:
    if text == "all":
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers must be 'all' or comma-separated integers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m geovr.eval.probe", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", required=True, help="HF Qwen3-VL folder or GeoVR checkpoint")
    p.add_argument("--data", required=True, help="folder with videos/<name>.mp4 + geometry/<name>.npz")
    p.add_argument("--output", default=None, help="results folder (default: geovr_runs/probe/<model>: "
                   "the run's name for a run's final/)")
    p.add_argument("--layers", type=parse_layers, default=None, help="'all' (default) or e.g. 0,4,8")
    p.add_argument("--videos", type=at_least(3), default=None, help="use the first N videos")
    p.add_argument("--folds", type=at_least(2), default=5, help="grouped cross-validation folds (over videos)")
    p.add_argument("--max-tokens-per-video", type=at_least(1), default=256,
                   help="visual tokens per video for the depth probe")
    p.add_argument("--fps", type=positive, default=2.0)
    p.add_argument("--max-frames", type=at_least(2), default=32)
    p.add_argument("--tokens-per-frame", type=at_least(4), default=300)
    p.add_argument("--backend", default="auto", choices=("auto", "pyav", "dali-gpu", "dali-cpu"))
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    check_output(p, "--output", a.output)
    from ..data.sampling import FrameSampling, QwenVision
    from .model_io import load_model, model_folder, model_name, resolve_device, resolve_dtype
    from .probe_data import collect, find_probe_videos

    try:
        model_folder(a.model)
        videos = find_probe_videos(a.data)[:a.videos]
        if len(videos) < 3:
            raise ValueError(f"probing needs at least 3 videos with geometry (the scale probe is fitted on "
                             f"videos, leaving one out), found {len(videos)}")
        device = resolve_device(a.device)
        model, tok = load_model(a.model, device, resolve_dtype(a.dtype, device))
        data = collect(model, tok, videos, a.layers, FrameSampling(a.fps, 2, a.max_frames),
                       QwenVision(max_tokens_per_frame=a.tokens_per_frame), a.backend, a.max_tokens_per_video,
                       a.seed, progress=not a.quiet)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = fit_probes(data, a.folds, a.seed)
    output = a.output or str(Path("geovr_runs/probe") / model_name(a.model))
    config = {"model": str(Path(a.model).resolve()), "data": str(Path(a.data).resolve()), "videos": len(videos),
              "folds": a.folds, "max_tokens_per_video": a.max_tokens_per_video, "seed": a.seed}
    warnings = probe_warnings(data, results)
    write_report(results, output, model_name(a.model), config, warnings)
    print((Path(output) / "probe.md").read_text(), end="")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"results: {Path(output) / 'probe.json'}  plot: {Path(output) / 'probe.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
