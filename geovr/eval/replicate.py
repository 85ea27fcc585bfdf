"""`python -m geovr.eval.replicate`: the paper's claim at laptop scale.

Trains the tiny Qwen3-VL twice on the synthetic world with the same data, order, steps and seed:
text loss only (`replication/text_only.yaml`) and text plus the four geometric losses
(`replication/geovr.yaml`): 256 scenes at 96x128 whose object categories each have their own
colour, the vision tower trained with the LLM, 2000 steps, each sample one scene's video with all
its questions as turns (`scenes.jsonl`; a scene is seen about 31 times). Then, on held-out scenes, it scores both
(and the untrained initialisation) on the synthetic spatial QA with the VSI-Bench harness, beside
the answer prior (`prior.py`), and probes every LLM layer for depth, relative pose and metric scale,
with the planted targets that check the probes themselves. The question: do the geometric losses
make the latents more 3D-aware?

  python -m geovr.eval.replicate                      # 1 seed: ~75-105 min of training + ~5 min on 2 CPU cores
  python -m geovr.eval.replicate --seeds 0 1 2 --jobs 2   # the comparison with 95 % intervals
  python -m geovr.eval.replicate --seeds 0 1 2 --ablation 0 --jobs 2   # + each loss alone, seed 0 (~1 h 45 min more)
  python -m geovr.eval.replicate --seeds 0 --grouped 0 --jobs 2   # + grouping by video: does it change what is learnt?

--grouped SEED... trains both variants on the per-question file (`train.jsonl`: the configs' steps
of 4 questions) twice more: one question a sample, and with `data.group_by_video=4` (the same
questions, up to 4 about one video a sequence), and reports grouped minus one-a-sample, paired by
seed.

Writes <out>/results.md (tables), results.json, probe.png (R^2 against layer for init, text-only
and GeoVR, interval bands over seeds), with --ablation ablation.png (the same for each loss alone,
over the ablation seeds) and pca.png (the first seed's visual-token states as RGB beside frame and
depth); runs, worlds and logs go under --work. Finished runs and answered questions are reused (delete them
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

from ..cli import at_least, check_output
from ..data.synthetic.writer import SCENES_JSONL
from ..progress import hf_bars_on_terminal

logger = logging.getLogger("geovr.eval")
VARIANTS = ("text_only", "geovr")
GEOMETRIC_LOSSES = ("pose", "depth", "align", "scale")  # the `loss.*` weights the GeoVR run turns on
ABLATIONS = {f"{loss}_only": loss for loss in GEOMETRIC_LOSSES}  # the GeoVR run with one of them left on
# the grouping arm: each variant on the per-question file, one question a sample and grouped by video
GROUPING = {f"{v}_{arm}": (v, arm) for v in VARIANTS for arm in ("questions", "grouped")}
GROUP_K = 4  # questions a sequence in the grouped arm (= the tiny preset's global batch: one rank)
RUN_COLOURS = {n: f"C{i}" for i, n in enumerate(("init", *VARIANTS, *ABLATIONS, *GROUPING))}  # one colour per run
PROBE_COLUMNS = (("depth", "r2"), ("pose_translation", "r2"), ("pose_rotation", "r2"), ("scale", "r2"))


def config_path(variant: str) -> str:
    """A variant's yaml: an ablation (`ABLATIONS`) is the GeoVR run's, a grouping run (`GROUPING`) its variant's."""
    name = "geovr" if variant in ABLATIONS else GROUPING[variant][0] if variant in GROUPING else variant
    return str(resources.files("geovr.eval").joinpath("replication", f"{name}.yaml"))


def _loss_overrides(variant: str) -> list[str]:
    """An ablation's other geometric weights set to 0 (which also removes their heads); a grouping
    run's data: the per-question file, grouped by video or not."""
    if variant in GROUPING:
        grouped = GROUPING[variant][1] == "grouped"
        return [f"data.group_by_video={GROUP_K if grouped else 0}", f"train.micro_batch={1 if grouped else 2}"]
    if variant not in ABLATIONS:
        return []
    return [f"loss.{loss}=0" for loss in GEOMETRIC_LOSSES if loss != ABLATIONS[variant]]


def _train_args(variant: str, seed: int, steps: int | None, work: Path, progress: bool, extra: tuple[str, ...] = ()
                ) -> list[str]:
    """steps: None keeps the config's. An interrupted run continues from its last checkpoint."""
    data = "train.jsonl" if variant in GROUPING else SCENES_JSONL
    return ["--config", config_path(variant), "--resume", "auto", f"data.path={work / 'train_world' / data}",
            "data.synthetic=true",
            f"train.output={work / 'runs' / f'{variant}_seed{seed}'}", f"train.seed={seed}",
            *([f"train.steps={steps}"] if steps is not None else []),
            f"metrics.progress={str(progress).lower()}", "metrics.tensorboard=false", *_loss_overrides(variant), *extra]


def _run_dir(work: Path, variant: str, seed: int) -> Path:
    return work / "runs" / f"{variant}_seed{seed}"


def _finished(work: Path, variant: str, seed: int) -> bool:
    return (_run_dir(work, variant, seed) / "final" / "geovr_config.json").is_file()


def train_all(jobs: list[tuple[str, int]], steps: int | None, work: Path, progress: bool, extra: tuple[str, ...] = (),
              parallel: int = 1) -> dict[tuple[str, int], Path]:
    """Train every (variant, seed) run not finished yet, `parallel` at a time, each a
    `python -m geovr.train` process with cores / `parallel` threads. One at a time it prints its
    progress here; several write theirs to <work>/runs/<run>.log. Returns each run's final checkpoint."""
    import os
    import subprocess
    from concurrent.futures import ThreadPoolExecutor, as_completed

    todo = [j for j in jobs if not _finished(work, *j)]
    for j in jobs:
        if j not in todo:
            logger.warning("reusing %s", _run_dir(work, *j) / "final")
    if todo:  # the training world, once, before runs that would each write it
        from ..train.build import ensure_data
        from ..train.main import parse_config

        ensure_data(parse_config(_train_args(*todo[0], steps, work, False, extra))[0], progress)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def one(job: tuple[str, int]) -> None:
        variant, seed = job
        name = f"{variant}_seed{seed}"
        args = [sys.executable, "-m", "geovr.train",
                *_train_args(variant, seed, steps, work, progress and parallel == 1, extra)]
        log = work / "runs" / f"{name}.log"
        if parallel == 1:
            rc = subprocess.run(args, env=env).returncode
        else:
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"training {name} ({threads} thread(s); log: {log})", flush=True)
            with open(log, "w") as f:
                rc = subprocess.run(args, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
        if rc != 0 or not _finished(work, variant, seed):
            where = f"; its log: {log}" if parallel > 1 else ""
            raise RuntimeError(f"training {name} failed with exit code {rc}{where}")
        if parallel > 1:
            print(f"trained {name}", flush=True)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(one, j) for j in todo]
        for f in as_completed(futures):
            if f.exception() is not None:  # runs not started yet are dropped; running ones finish
                pool.shutdown(cancel_futures=True)
                raise f.exception()
    return {j: _run_dir(work, *j) / "final" for j in jobs}


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
    with hf_bars_on_terminal():
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


def summarise(results: dict[str, list[dict]], meta: dict, prior: dict | None = None,
              question_prior: dict | None = None) -> str:
    """The markdown report: QA per task (beside the answer and question priors, `prior.py`), probe
    R^2 per layer, the instrument check and the layer-averaged comparison."""
    from .scoring import TASKS

    names = list(results)
    lines = ["# Replication at laptop scale: do the geometric losses make the latents more 3D-aware?", "",
             f"Tiny Qwen3-VL ({meta['layers']} layers x {meta['hidden']} wide, random init), {meta['steps']} steps "
             f"on {meta['train_scenes']} synthetic training scenes, seeds {meta['seeds']}; scored on "
             f"{meta['test_scenes']} held-out scenes ({meta['questions']} questions). Values: mean over seeds"
             + (" ± the half-width of its 95 % t-interval." if len(meta["seeds"]) > 1 else "."), "",
             "## Synthetic spatial QA (VSI-Bench scoring, %)", "",
             "| task | " + ("answer prior | " if prior else "") + ("question prior | " if question_prior else "")
             + " | ".join(names) + " |",
             "|---|" + "---:|" * (len(names) + bool(prior) + bool(question_prior))]
    blind = [b for b in (prior, question_prior) if b]
    tasks = [t for t in TASKS if t in results[names[0]][0]["qa"]["scores"]]
    for t in tasks + ["overall"]:
        cells = []
        for n in names:
            vals = [r["qa"]["overall"] if t == "overall" else r["qa"]["scores"][t] for r in results[n]]
            cells.append(_mean_ci(vals, digits=1))
        cells[:0] = [f"{_blind_score(b, t):.1f}" for b in blind]
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
    lines += qa_difference_lines(results, prior, question_prior)
    lines += ablation_lines(results)
    lines += grouping_lines(results)
    lines += instrument_lines({n: results[n] for n in ("init", *VARIANTS) if n in results})
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


def _diff_cell(diffs: list[float], digits: int = 1) -> str:
    """Mean difference (QA points, or R^2 with digits=2), its 95 % interval, bold when the interval
    excludes 0; the bare value for one seed."""
    m, half = interval95(diffs)
    if np.isnan(half):
        return f"{m:+.{digits}f}"
    cell = f"{m:+.{digits}f} [{m - half:+.{digits}f}, {m + half:+.{digits}f}]"
    return f"**{cell}**" if m - half > 0 or m + half < 0 else cell


def _by_seed(runs: list[dict]) -> dict[int, dict]:
    """{seed: assessed run}; results from before runs carried their seed pair by position."""
    return {r.get("seed", i): r for i, r in enumerate(runs)}


def ablation_lines(results: dict[str, list[dict]]) -> list[str]:
    """Each single-loss run (`ABLATIONS`) and the GeoVR run minus text-only, paired by seed: mean
    R^2 over LLM hidden states 1..L per probe, and the QA overall in points."""
    from .scoring import TASKS

    alone = [n for n in ABLATIONS if n in results]
    if not alone:
        return []
    layers = list(results["text_only"][0]["probe"])[1:]
    tasks = [t for t in TASKS if t in results["text_only"][0]["qa"]["scores"]]
    base = _by_seed(results["text_only"])

    heads = [p.replace("_", " ") + " R^2" for p, _ in PROBE_COLUMNS] + [t for t in tasks] + ["QA overall"]
    lines = ["## Each geometric loss alone, minus text-only (paired by seed; R^2 over hidden states 1..L, QA in points)",
             "", "| run | seeds | " + " | ".join(heads) + " |", "|---|---:|" + "---:|" * len(heads)]
    for n in ["geovr", *alone]:
        lines.append(_difference_row(n, _by_seed(results[n]), base, layers, tasks))
    return lines + [""]


def _difference_row(label: str, runs: dict[int, dict], base: dict[int, dict], layers: list[str], tasks: list[str]) -> str:
    """One table row: `runs` minus `base` over their common seeds, the mean R^2 over `layers` per
    probe (2 digits) and the QA per task and overall (points)."""
    def probe_mean(r: dict, probe: str) -> float:
        return float(np.mean([r["probe"][k][probe]["r2"] for k in layers]))

    seeds = [s for s in runs if s in base]
    cells = [_diff_cell([probe_mean(runs[s], p) - probe_mean(base[s], p) for s in seeds], 2) for p, _ in PROBE_COLUMNS]
    cells += [_diff_cell([runs[s]["qa"]["scores"][t] - base[s]["qa"]["scores"][t] for s in seeds]) for t in tasks]
    cells.append(_diff_cell([runs[s]["qa"]["overall"] - base[s]["qa"]["overall"] for s in seeds]))
    return f"| {label} | {len(seeds)} | " + " | ".join(cells) + " |"


def grouping_lines(results: dict[str, list[dict]]) -> list[str]:
    """The grouping arm (`GROUPING`), paired by seed: each variant grouped minus one question a
    sample, and GeoVR minus text-only in each arm; mean R^2 over LLM hidden states 1..L per probe and
    the QA in points."""
    from .scoring import TASKS

    if not all(results.get(n) for n in GROUPING):
        return []
    layers = list(results["text_only_questions"][0]["probe"])[1:]
    tasks = [t for t in TASKS if t in results["text_only_questions"][0]["qa"]["scores"]]

    heads = [p.replace("_", " ") + " R^2" for p, _ in PROBE_COLUMNS] + list(tasks) + ["QA overall"]
    pairs = [(f"{v} grouped - one a sample", f"{v}_grouped", f"{v}_questions") for v in VARIANTS]
    pairs += [(f"geovr - text_only, {arm}", f"geovr_{arm}", f"text_only_{arm}") for arm in ("questions", "grouped")]
    lines = [f"## Grouping by video (K = {GROUP_K}) on the per-question file (paired by seed; R^2 over hidden "
             "states 1..L, QA in points)", "", "| difference | seeds | " + " | ".join(heads) + " |",
             "|---|---:|" + "---:|" * len(heads)]
    for label, a, b in pairs:
        lines.append(_difference_row(label, _by_seed(results[a]), _by_seed(results[b]), layers, tasks))
    return lines + [""]


def _blind_score(blind: dict, task: str) -> float:
    return blind["overall"] if task == "overall" else blind["scores"].get(task, 0.0)


def qa_difference_lines(results: dict[str, list[dict]], prior: dict | None, question_prior: dict | None = None
                        ) -> list[str]:
    """Per QA task: each trained run minus the answer prior (and minus the question prior, which
    knows what the question names), and GeoVR minus text-only paired by seed, in points with 95 %
    t-intervals over seeds."""
    from .scoring import TASKS

    if not prior:
        return []
    tasks = [t for t in TASKS if t in results["text_only"][0]["qa"]["scores"]] + ["overall"]
    blinds = [("prior", prior)] + ([("question prior", question_prior)] if question_prior else [])

    def score(r: dict, t: str) -> float:
        return r["qa"]["overall"] if t == "overall" else r["qa"]["scores"][t]

    heads = [f"{n} - {b}" for b, _ in blinds for n in VARIANTS] + ["geovr - text_only"]
    lines = ["## Synthetic QA against the blind priors (points; 95 % interval over seeds, bold when it excludes 0)",
             "", "| task | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for t in tasks:
        cells = [_diff_cell([score(r, t) - _blind_score(b, t) for r in results[n]]) for _, b in blinds for n in VARIANTS]
        cells.append(_diff_cell([score(g, t) - score(x, t) for g, x in zip(results["geovr"], results["text_only"])]))
        lines.append(f"| {'**overall**' if t == 'overall' else t} | " + " | ".join(cells) + " |")
    return lines + [""]


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


def _probe_curves(results: dict[str, list[dict]]) -> dict[str, dict]:
    """{run: {layer: {probe: {"r2": mean over seeds, "lo"/"hi": its 95 % interval when 2+ seeds}}}}."""
    runs = {}
    for n, rs in results.items():
        runs[n] = {}
        for k in rs[0]["probe"]:
            runs[n][k] = {}
            for p, _ in PROBE_COLUMNS:
                m, half = interval95([r["probe"][k][p]["r2"] for r in rs])
                runs[n][k][p] = {"r2": m} if np.isnan(half) else {"r2": m, "lo": m - half, "hi": m + half}
    return runs


def plots(results: dict[str, list[dict]], out: Path, ablation_seeds: list[int] = ()) -> list[Path]:
    """probe.png: init, text-only and GeoVR over every seed. With ablation runs, ablation.png:
    text-only, GeoVR and each loss alone over the ablation seeds only, so every line has the same seeds."""
    from .probe import plot

    main_runs = {n: results[n] for n in ("init", *VARIANTS) if n in results}
    bands = len(next(iter(main_runs.values()))) > 1
    written = [plot(_probe_curves(main_runs), out / "probe.png", "linear probes on held-out synthetic scenes "
                    "(mean over seeds" + (", 95 % interval bands)" if bands else ")"), RUN_COLOURS)]
    alone = [n for n in ABLATIONS if results.get(n)]
    if alone:
        same = {n: [r for r in results[n] if r.get("seed") in ablation_seeds] for n in (*VARIANTS, *alone)}
        seeds = ", ".join(str(s) for s in ablation_seeds)
        written.append(plot(_probe_curves(same), out / "ablation.png",
                            f"each geometric loss alone (seed(s) {seeds}; held-out synthetic scenes)", RUN_COLOURS))
    return written


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m geovr.eval.replicate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--out", default="results/replication", help="where the tables and plots go")
    p.add_argument("--work", default="geovr_runs/replication", help="runs, worlds and evaluation logs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=at_least(1), default=None, help="training steps (default: the configs' 2000)")
    p.add_argument("--test-scenes", type=at_least(3), default=64,
                   help="held-out scenes (64: enough for the per-video scale probe's planted check)")
    p.add_argument("--test-seed", type=int, default=1)
    p.add_argument("--train-scenes", type=at_least(1), default=None, help="training scenes (default: the configs' 256)")
    p.add_argument("--frame-size", default=None, help="HxW of both worlds' frames (default: the configs' 96x128)")
    p.add_argument("--jobs", type=at_least(1), default=1,
                   help="training runs at once, each with cores/jobs threads (2 on 2 cores: ~25 %% less time)")
    p.add_argument("--ablation", type=int, nargs="+", default=[], metavar="SEED",
                   help="also train each geometric loss alone (" + ", ".join(ABLATIONS) + ") for these seeds, "
                        "a subset of --seeds: the paper's ablation, four GeoVR-priced runs a seed")
    p.add_argument("--grouped", type=int, nargs="+", default=[], metavar="SEED",
                   help="also train both variants on the per-question file, one question a sample and grouped by "
                        f"video (K = {GROUP_K}), for these seeds (a subset of --seeds): four runs a seed")
    p.add_argument("--grouping-only", action="store_true",
                   help="train and report the --grouped runs alone (no conversation runs; its own results.md)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    check_output(p, "--out", a.out)
    check_output(p, "--work", a.work)
    if not set(a.ablation) <= set(a.seeds):
        p.error(f"--ablation seeds {sorted(set(a.ablation) - set(a.seeds))} are not in --seeds {a.seeds}: "
                "each single-loss run is compared with the text-only run of its seed")
    if not set(a.grouped) <= set(a.seeds):
        p.error(f"--grouped seeds {sorted(set(a.grouped) - set(a.seeds))} are not in --seeds {a.seeds}")
    if a.grouping_only and (not a.grouped or a.ablation):
        p.error("--grouping-only reports the --grouped runs alone: give --grouped SEED..., and no --ablation")
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
    results: dict[str, list[dict]] = {"init": [], "text_only": [], "geovr": [],
                                      **{v: [] for v in ABLATIONS if a.ablation},
                                      **{v: [] for v in GROUPING if a.grouped}}
    first: dict[str, Path] = {}
    jobs = [(v, s) for s in a.seeds for v in VARIANTS] + [(v, s) for s in a.ablation for v in ABLATIONS]
    jobs += [(v, s) for s in a.grouped for v in GROUPING]
    if a.grouping_only:
        return grouping_only(a, [j for j in jobs if j[0] in GROUPING], world, work, out, progress, extra)
    trained = train_all(jobs, a.steps, work, progress, extra, a.jobs)
    for seed in a.seeds:
        models = {"init": init_model(seed, work, extra),
                  **{v: trained[v, s] for v, s in jobs if s == seed}}
        for name, path in models.items():
            results[name].append({**assess(path, f"{name}_seed{seed}", world, work, progress), "seed": seed})
        first = first or {n: models[n] for n in ("init", *VARIANTS)}
    from ..train.main import parse_config

    cfg, _ = parse_config(_train_args("geovr", a.seeds[0], a.steps, work, False, extra))
    meta = {"layers": cfg.model.tiny_layers, "hidden": cfg.model.tiny_hidden, "steps": cfg.train.steps,
            "train_scenes": cfg.data.synthetic_scenes, "test_scenes": a.test_scenes, "seeds": a.seeds,
            "ablation_seeds": a.ablation, "grouped_seeds": a.grouped,
            "questions": sum(1 for _ in open(world / "train.jsonl"))}
    out.mkdir(parents=True, exist_ok=True)
    from .prior import prior_report, question_prior_report
    from .questions import read_questions

    train_qs = read_questions(str(work / "train_world" / "train.jsonl"))
    test_qs = read_questions(str(world / "train.jsonl"))
    prior = prior_report(train_qs, test_qs, "lenient")
    question_prior = question_prior_report(train_qs, test_qs, "lenient")
    (out / "results.json").write_text(json.dumps({"meta": meta, "prior": prior, "question_prior": question_prior,
                                                  "results": results}, indent=1))
    (out / "results.md").write_text(summarise(results, meta, prior, question_prior))
    pictures = plots(results, out, a.ablation)
    from .pca_picture import pca_figure
    from .probe_data import find_probe_videos

    layer = max(1, cfg.model.tiny_layers // 2)
    pca_figure(first, find_probe_videos(str(world))[0], layer, out / "pca.png")
    print((out / "results.md").read_text(), end="")
    print(f"written: {out / 'results.md'}, {out / 'results.json'}, {', '.join(str(p) for p in pictures)}, "
          f"{out / 'pca.png'} (PCA of hidden state {layer}, seed {a.seeds[0]})")
    return 0


def grouping_only(a: argparse.Namespace, jobs: list[tuple[str, int]], world: Path, work: Path, out: Path,
                  progress: bool, extra: tuple[str, ...]) -> int:
    """The grouping arm alone: train its runs, assess them and the initialisation, write the QA and
    probe tables of these runs and the grouping differences to <out>/results.md (and .json)."""
    trained = train_all(jobs, a.steps, work, progress, extra, a.jobs)
    results: dict[str, list[dict]] = {"init": [], **{v: [] for v in GROUPING}}
    for seed in a.grouped:
        models = {"init": init_model(seed, work, extra), **{v: trained[v, s] for v, s in jobs if s == seed}}
        for name, path in models.items():
            results[name].append({**assess(path, f"{name}_seed{seed}", world, work, progress), "seed": seed})
    from ..train.main import parse_config
    from .scoring import TASKS

    cfg, _ = parse_config(_train_args("geovr_grouped", a.grouped[0], a.steps, work, False, extra))
    names = list(results)
    tasks = [t for t in TASKS if t in results["init"][0]["qa"]["scores"]]
    lines = [f"# Replication at laptop scale: does grouping by video change what is learnt?", "",
             f"Tiny Qwen3-VL ({cfg.model.tiny_layers} layers x {cfg.model.tiny_hidden}), {cfg.train.steps} steps of "
             f"{cfg.train.global_batch} questions from the per-question file of {cfg.data.synthetic_scenes} training "
             f"scenes, seeds {a.grouped}; scored on {a.test_scenes} held-out scenes. `*_questions`: one question a "
             f"sample; `*_grouped`: data.group_by_video={GROUP_K}.", "", "## Synthetic spatial QA (%)", "",
             "| task | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for t in tasks + ["overall"]:
        vals = [_mean_ci([r["qa"]["overall"] if t == "overall" else r["qa"]["scores"][t] for r in results[n]], 1)
                for n in names]
        lines.append(f"| {'**overall**' if t == 'overall' else t} | " + " | ".join(vals) + " |")
    layers = list(results["init"][0]["probe"])[1:]
    lines += ["", "## Linear probes: mean out-of-fold R^2 over hidden states 1..L", "",
              "| probe | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for probe, key in PROBE_COLUMNS:
        lines.append(f"| {probe.replace('_', ' ')} | " + " | ".join(
            _mean_ci([float(np.mean([r["probe"][k][probe][key] for k in layers])) for r in results[n]]) for n in names)
            + " |")
    lines += [""] + grouping_lines(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": {"seeds": a.grouped, "steps": cfg.train.steps,
                                                           "group_k": GROUP_K}, "results": results}, indent=1))
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print((out / "results.md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
