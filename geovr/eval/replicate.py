"""`python -m geovr.eval.replicate`: the paper's claim at laptop scale.

Trains the tiny Qwen3-VL twice on the synthetic world with the same data, order, steps and seed:
text loss only (`replication/text_only.yaml`) and text plus the four geometric losses
(`replication/geovr.yaml`): 256 scenes at 96x128 whose object categories each have their own
colour, the vision tower trained with the LLM, 2000 steps. Then, on held-out scenes, it scores both
(and the untrained initialisation) on the synthetic spatial QA with the VSI-Bench harness, beside
the answer prior (`prior.py`), and probes every LLM layer for depth, relative pose and metric scale,
with the planted targets that check the probes themselves. The question: do the geometric losses
make the latents more 3D-aware?

  python -m geovr.eval.replicate                      # 1 seed: ~50 min of training + ~10 min on 2 CPU cores
  python -m geovr.eval.replicate --seeds 0 1 2        # the comparison with 95 % intervals

Writes <out>/results.md (tables), results.json, probe.png (R^2 against layer, every run, interval
bands over seeds) and pca.png (the first seed's visual-token states as RGB beside frame and depth);
runs, worlds and logs go under --work. Finished runs and answered questions are reused (delete them
to redo).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from importlib import resources
from pathlib import Path

import numpy as np

logger = logging.getLogger("geovr.eval")
VARIANTS = ("text_only", "geovr")
PROBE_COLUMNS = (("depth", "r2"), ("pose_translation", "r2"), ("pose_rotation", "r2"), ("scale", "r2"))


def config_path(variant: str) -> str:
    return str(resources.files("geovr.eval").joinpath("replication", f"{variant}.yaml"))


def _train_args(variant: str, seed: int, steps: int | None, work: Path, progress: bool, extra: tuple[str, ...] = ()
                ) -> list[str]:
    """steps: None keeps the config's."""
    return ["--config", config_path(variant), f"data.path={work / 'train_world' / 'train.jsonl'}", "data.synthetic=true",
            f"train.output={work / 'runs' / f'{variant}_seed{seed}'}", f"train.seed={seed}",
            *([f"train.steps={steps}"] if steps is not None else []),
            f"metrics.progress={str(progress).lower()}", "metrics.tensorboard=false", *extra]


def train(variant: str, seed: int, steps: int | None, work: Path, progress: bool, extra: tuple[str, ...] = ()) -> Path:
    """Train one run (skipped when its final model exists); returns the final GeoVR checkpoint."""
    from ..train.main import main as train_main

    final = work / "runs" / f"{variant}_seed{seed}" / "final"
    if (final / "geovr_config.json").is_file():
        logger.warning("reusing %s", final)
        return final
    rc = train_main(_train_args(variant, seed, steps, work, progress, extra))
    if rc != 0 or not (final / "geovr_config.json").is_file():
        raise RuntimeError(f"training {variant} (seed {seed}) failed with exit code {rc}")
    return final


def init_model(seed: int, work: Path, extra: tuple[str, ...] = ()) -> Path:
    """The untrained starting point of both runs (same seed, same tiny config) as a HF folder."""
    from ..train.build import build_model, build_tokenizer
    from ..train.main import parse_config

    out = work / "runs" / f"init_seed{seed}"
    if (out / "config.json").is_file():
        return out
    cfg, _ = parse_config(_train_args("text_only", seed, 1, work, False, extra))
    tok = build_tokenizer(cfg)
    import torch

    model = build_model(cfg, tok, torch.device("cpu"))
    model.base.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_world(work: Path, scenes: int, seed: int, extra: tuple[str, ...] = (), progress: bool = True) -> Path:
    """Held-out scenes rendered like the training world (its size and length), another seed."""
    from ..data.synthetic import generate
    from ..train.build import synthetic_world
    from ..train.main import parse_config

    root = work / "test_world"
    if (root / "train.jsonl").is_file() and len(list((root / "geometry").glob("*.npz"))) == scenes:
        return root
    cfg, _ = parse_config(_train_args("geovr", 0, 1, work, False, extra))
    d = cfg.data
    if seed == d.synthetic_seed:
        raise ValueError(f"the test world's seed ({seed}) must differ from the training world's ({d.synthetic_seed})")
    generate(root, scenes=scenes, seed=seed, progress=progress,
             cfg=synthetic_world(d))
    return root


def assess(model_dir: Path, name: str, world: Path, work: Path, progress: bool) -> dict:
    """Synthetic-QA scores and per-layer probe results of one model."""
    import torch

    from ..data.sampling import FrameSampling
    from .model_io import load_model
    from .probe import fit_probes
    from .probe_data import collect, find_probe_videos
    from .questions import read_questions
    from .vsibench import evaluate

    model, tok = load_model(model_dir, torch.device("cpu"), torch.float32)
    sampling = FrameSampling(max_frames=16)  # the tiny preset's training frames
    qa = evaluate(model, tok, read_questions(str(world / "train.jsonl")), work / "eval" / name,
                  {"model": str(model_dir), "data": str(world)}, sampling=sampling, backend="pyav",
                  task="synthetic_qa", progress=progress, scoring="lenient")  # as the recorded results
    data = collect(model, tok, find_probe_videos(str(world)), sampling=sampling, backend="pyav", progress=progress)
    probes = fit_probes(data)
    return {"qa": qa["results"]["synthetic_qa"], "probe": {str(k): v for k, v in probes.items()}}


T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)  # Student t 0.975, df 1..10


def interval95(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % t-interval of the mean over seeds); half-width NaN for one value."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    t = T975[len(v) - 2] if len(v) - 1 <= len(T975) else 1.96
    return float(v.mean()), float(t * v.std(ddof=1) / np.sqrt(len(v)))


def _mean_ci(values: list[float], digits: int = 3) -> str:
    m, half = interval95(values)
    return f"{m:.{digits}f}" if np.isnan(half) else f"{m:.{digits}f} ± {half:.{digits}f}"


def summarise(results: dict[str, list[dict]], meta: dict, prior: dict | None = None) -> str:
    """The markdown report: QA per task (beside the answer prior, `prior.py`), probe R^2 per
    layer, the instrument check and the layer-averaged comparison."""
    from .scoring import TASKS

    names = list(results)
    lines = ["# Replication at laptop scale: do the geometric losses make the latents more 3D-aware?", "",
             f"Tiny Qwen3-VL ({meta['layers']} layers x {meta['hidden']} wide, random init), {meta['steps']} steps "
             f"on {meta['train_scenes']} synthetic training scenes, seeds {meta['seeds']}; scored on "
             f"{meta['test_scenes']} held-out scenes ({meta['questions']} questions). Values: mean over seeds"
             + (" ± the half-width of its 95 % t-interval." if len(meta["seeds"]) > 1 else "."), "",
             "## Synthetic spatial QA (VSI-Bench scoring, %)", "",
             "| task | " + ("answer prior | " if prior else "") + " | ".join(names) + " |",
             "|---|" + "---:|" * (len(names) + bool(prior))]
    tasks = [t for t in TASKS if t in results[names[0]][0]["qa"]["scores"]]
    for t in tasks + ["overall"]:
        cells = []
        for n in names:
            vals = [r["qa"]["overall"] if t == "overall" else r["qa"]["scores"][t] for r in results[n]]
            cells.append(_mean_ci(vals, digits=1))
        if prior:
            cells.insert(0, f"{prior['overall'] if t == 'overall' else prior['scores'].get(t, 0.0):.1f}")
        lines.append(f"| {'**overall**' if t == 'overall' else t} | " + " | ".join(cells) + " |")
    layers = list(results[names[0]][0]["probe"])
    lines += ["", "## Linear probes: out-of-fold R^2 per hidden state (0 = embeddings)", ""]
    for probe, key in PROBE_COLUMNS:
        lines += [f"**{probe.replace('_', ' ')}**", "", "| run | " + " | ".join(layers) + " | mean 1..L |",
                  "|---|" + "---:|" * (len(layers) + 1)]
        for n in names:
            per = [np.mean([r["probe"][k][probe][key] for r in results[n]]) for k in layers]
            lines.append(f"| {n} | " + " | ".join(f"{v:.3f}" for v in per) + f" | {np.mean(per[1:]):.3f} |")
        lines.append("")
    lines += ["**mean over LLM hidden states 1..L**", "", "| probe | " + " | ".join(names) + " |",
              "|---|" + "---:|" * len(names)]
    for probe, key in PROBE_COLUMNS:
        cells = [_mean_ci([np.mean([r["probe"][k][probe][key] for k in layers[1:]]) for r in results[n]]) for n in names]
        lines.append(f"| {probe.replace('_', ' ')} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += instrument_lines(results)
    lines += ["## Comparison (mean R^2 over LLM hidden states 1..L, GeoVR minus text-only, paired by seed)", ""]
    for probe, key in PROBE_COLUMNS:
        diffs = []
        for rg, rt in zip(results["geovr"], results["text_only"]):
            g = np.mean([rg["probe"][k][probe][key] for k in layers[1:]])
            t = np.mean([rt["probe"][k][probe][key] for k in layers[1:]])
            diffs.append(g - t)
        better = sum(d > 0 for d in diffs)
        m, half = interval95(diffs)
        ci = "" if np.isnan(half) else f"; mean {m:+.3f}, 95 % interval [{m - half:+.3f}, {m + half:+.3f}]"
        lines.append(f"- {probe.replace('_', ' ')}: {', '.join(f'{d:+.3f}' for d in diffs)} "
                     f"(GeoVR higher in {better} of {len(diffs)} seed(s){ci})")
    return "\n".join(lines) + "\n"


def instrument_lines(results: dict[str, list[dict]]) -> list[str]:
    """The instrument check: each planted target's out-of-fold R^2 (training R^2) at hidden state 0
    and over 1..L, and each real probe's out-of-fold vs training R^2 and median penalty."""
    from .probe import PLANTED, PROBES

    names = list(results)
    layers = list(results[names[0]][0]["probe"])
    if "planted" not in results[names[0]][0]["probe"][layers[0]]:
        return []

    def mean(run: str, layer_keys: list[str], pick) -> float:
        return float(np.mean([pick(r["probe"][k]) for r in results[run] for k in layer_keys]))

    lines = ["## The instrument: planted targets and probe fit", "",
             "Planted targets are decodable by construction (token row, column and footprint colour at the "
             "embeddings, the shuffled colour as the control that a wrong token-to-footprint mapping would match; "
             "a random linear function of the pose and scale probes' own features). Cells: out-of-fold R^2 "
             "(training R^2).", "", "| target | " + " | ".join(f"{n} @0 | {n} @1..L" for n in names) + " |",
             "|---|" + "---:|" * (2 * len(names))]
    rows = [(f"planted {t}", lambda p, t=t: p["planted"][t]) for t in PLANTED] + [(q, lambda p, q=q: p[q]) for q in PROBES]
    for label, entry in rows:
        cells = [f"{mean(n, ks, lambda p: entry(p)['r2']):.3f} ({mean(n, ks, lambda p: entry(p)['train_r2']):.3f})"
                 for n in names for ks in (layers[:1], layers[1:])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    pen = {p: float(np.median([r["probe"][k][p]["penalty"] for n in names for r in results[n] for k in layers]))
           for p in PROBES}
    lines += ["", "Median chosen penalty (relative to the mean eigenvalue): "
              + ", ".join(f"{p} {v:.0e}" for p, v in pen.items()) + ".", ""]
    return lines


def plots(results: dict[str, list[dict]], out: Path) -> None:
    from .probe import plot

    runs = {}
    for n, rs in results.items():
        layers = list(rs[0]["probe"])
        runs[n] = {}
        for k in layers:
            runs[n][k] = {}
            for p, _ in PROBE_COLUMNS:
                m, half = interval95([r["probe"][k][p]["r2"] for r in rs])
                runs[n][k][p] = {"r2": m} if np.isnan(half) else {"r2": m, "lo": m - half, "hi": m + half}
    bands = len(next(iter(results.values()))) > 1
    plot(runs, out / "probe.png", "linear probes on held-out synthetic scenes (mean over seeds"
         + (", 95 % interval bands)" if bands else ")"))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m geovr.eval.replicate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--out", default="results/replication", help="where the tables and plots go")
    p.add_argument("--work", default="geovr_runs/replication", help="runs, worlds and evaluation logs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the configs' 2000)")
    p.add_argument("--test-scenes", type=int, default=64,
                   help="held-out scenes (64: enough for the per-video scale probe's planted check)")
    p.add_argument("--test-seed", type=int, default=1)
    p.add_argument("--train-scenes", type=int, default=None, help="training scenes (default: the configs' 256)")
    p.add_argument("--frame-size", default=None, help="HxW of both worlds' frames (default: the configs' 96x128)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    work, out = Path(a.work), Path(a.out)
    progress = not a.quiet
    extra: list[str] = []
    if a.train_scenes is not None:
        extra.append(f"data.synthetic_scenes={a.train_scenes}")
    if a.frame_size is not None:
        try:
            h, w = (int(v) for v in a.frame_size.lower().split("x"))
        except ValueError:
            p.error(f"--frame-size must be HxW, e.g. 96x128, got {a.frame_size!r}")
        extra += [f"data.synthetic_height={h}", f"data.synthetic_width={w}"]
    extra = tuple(extra)
    world = test_world(work, a.test_scenes, a.test_seed, extra, progress)
    results: dict[str, list[dict]] = {"init": [], "text_only": [], "geovr": []}
    first: dict[str, Path] = {}
    for seed in a.seeds:
        models = {"init": init_model(seed, work, extra)}
        for variant in VARIANTS:
            models[variant] = train(variant, seed, a.steps, work, progress, extra)
        for name, path in models.items():
            results[name].append(assess(path, f"{name}_seed{seed}", world, work, progress))
        first = first or models
    from ..train.main import parse_config

    cfg, _ = parse_config(_train_args("geovr", a.seeds[0], a.steps, work, False, extra))
    meta = {"layers": cfg.model.tiny_layers, "hidden": cfg.model.tiny_hidden, "steps": cfg.train.steps,
            "train_scenes": cfg.data.synthetic_scenes, "test_scenes": a.test_scenes, "seeds": a.seeds,
            "questions": sum(1 for _ in open(world / "train.jsonl"))}
    out.mkdir(parents=True, exist_ok=True)
    from .prior import prior_report
    from .questions import read_questions

    prior = prior_report(read_questions(str(work / "train_world" / "train.jsonl")),
                         read_questions(str(world / "train.jsonl")), "lenient")
    (out / "results.json").write_text(json.dumps({"meta": meta, "prior": prior, "results": results}, indent=1))
    (out / "results.md").write_text(summarise(results, meta, prior))
    plots(results, out)
    from .pca_picture import pca_figure
    from .probe_data import find_probe_videos

    layer = max(1, cfg.model.tiny_layers // 2)
    pca_figure(first, find_probe_videos(str(world))[0], layer, out / "pca.png")
    print((out / "results.md").read_text(), end="")
    print(f"written: {out / 'results.md'}, {out / 'results.json'}, {out / 'probe.png'}, {out / 'pca.png'} "
          f"(PCA of hidden state {layer}, seed {a.seeds[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
