"""`python -m geovr.eval.vsibench`: score a model on VSI-Bench (or on any LLaVA-style spatial QA
file with question types, such as the synthetic world's).

  python -m geovr.eval.vsibench --model /models/Qwen3-VL-2B-Instruct --data /data/VSI-Bench --output runs/vsi
  python -m geovr.data.synthetic --out geovr_runs/synthetic_test --scenes 4 --seed 1     # held-out scenes
  python -m geovr.eval.vsibench --model geovr_runs/tiny/final --data geovr_runs/synthetic_test/train.jsonl
  python -m geovr.eval.vsibench --model /models/GeoVR-2B --data /data/VSI-Bench --protocol release

`--protocol` sets prompts, frames, pixel budget, decoding and scoring together
(`geovr.eval.protocol`): lmms-eval (default: lmms-eval's task, greedy) or release (the GeoVR
release's eval_vsi.py, which measured its published numbers); single options override it.
Batched; each video's prefix (the system turn and the video's tokens) runs once and its questions
are answered from its cache (`--share-prefix`, the same replies as answering each whole prompt;
`geovr.eval.shared_prefix`). Answers are appended to
`<output>/samples_<task>.jsonl` as they come, so a killed run continues where it stopped (same
command). At the end:
results.json, results.md (per task, overall, MRA per threshold) and the per-sample log.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from ..cli import at_least, check_output, non_negative, positive, share
from ..data.errors import VideoDecodeError
from ..data.sampling import FrameSampling, QwenVision
from .generation import GenerationSettings, generate_answers, question_seed
from .protocol import DEFAULT_PROTOCOL, PROTOCOLS, protocol
from .inputs import EncodedQuestion, QuestionEncoder, collate_left
from .questions import Question, detect_format, find_questions_file, read_questions
from .results import SampleLog, sample_row, score_rows, write_results
from .shared_prefix import continue_batch, prefill, shared_split, vision_end_id
from .scoring import DEFAULT_SCORING, MRA_THRESHOLDS, SCORINGS, Scored, aggregate, is_numeric, score_answer

logger = logging.getLogger("geovr.eval")


def _skipped_score(q: Question) -> Scored:
    return Scored(0.0, None, [False] * len(MRA_THRESHOLDS) if is_numeric(q.question_type) else [])


SHARE_PREFIX = ("auto", "on", "off")


class _Answerer:
    """Answers of encoded questions, one video's questions at a time (`answer_video`).

    share_prefix: on: the video's prefix runs once (`geovr.eval.shared_prefix`) and its questions
    continue from its cache, `batch_size` at a time; a question whose prompt does not start with
    that prefix is answered alone (counted). off: HF's `generate` on each whole prompt, batched
    (greedy) or one at a time (sampling: each question seeded from its id). auto: on, unless the
    model or tokenizer cannot share (then off, said once). `counts`: what each way answered."""

    def __init__(self, model, tokenizer, settings: GenerationSettings, batch_size: int, share_prefix: str):
        if share_prefix not in SHARE_PREFIX:
            raise ValueError(f"share_prefix {share_prefix!r}: choose one of {list(SHARE_PREFIX)}")
        self.model, self.tokenizer, self.settings, self.batch_size = model, tokenizer, settings, batch_size
        self.end_id = None
        if share_prefix != "off":
            try:
                self.end_id = vision_end_id(tokenizer)
            except ValueError as err:
                if share_prefix == "on":
                    raise ValueError(f"--share-prefix on: {err}") from None
                logger.warning("--share-prefix auto: %s; every question is answered on its whole prompt", err)
        self.counts = {"mode": share_prefix, "shared": 0, "alone": 0, "prefills": 0}
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _seed(self, e: EncodedQuestion) -> int:
        return question_seed(self.settings.seed, e.question.id)

    def _whole(self, encoded: list[EncodedQuestion]) -> list[str]:
        """HF's generate on each whole prompt."""
        if not self.settings.do_sample:
            out = []
            for start in range(0, len(encoded), self.batch_size):
                chunk = encoded[start:start + self.batch_size]
                out += generate_answers(self.model, self.tokenizer, collate_left(chunk, self.pad), self.settings)
            return out
        out = []
        for e in encoded:  # one at a time: a reply depends on its question's seed only
            torch.manual_seed(self._seed(e))
            out += generate_answers(self.model, self.tokenizer, collate_left([e], self.pad), self.settings,
                                    seed=False)
        return out

    def answer_video(self, encoded: list[EncodedQuestion]) -> list[str]:
        """Replies to questions about one video (decoded, special tokens dropped, stripped)."""
        if self.end_id is None:
            self.counts["alone"] += len(encoded)
            return self._whole(encoded)
        length, same = shared_split(encoded, self.end_id)
        replies: list[str | None] = [None] * len(encoded)
        sharing = set(same)
        alone = [i for i in range(len(encoded)) if i not in sharing]
        if same:
            prefix = prefill(self.model, encoded[same[0]], length)
            self.counts["prefills"] += 1
            for start in range(0, len(same), self.batch_size):
                chunk = same[start:start + self.batch_size]
                tokens, _ = continue_batch(self.model, self.tokenizer, prefix,
                                           [encoded[i].input_ids[length:] for i in chunk], self.settings,
                                           [self._seed(encoded[i]) for i in chunk])
                for i, t in zip(chunk, tokens):
                    replies[i] = self.tokenizer.decode(t, skip_special_tokens=True).strip()
            self.counts["shared"] += len(same)
        if alone:
            for i, r in zip(alone, self._whole([encoded[i] for i in alone])):
                replies[i] = r
            self.counts["alone"] += len(alone)
        return replies


def evaluate(model, tokenizer, questions: list[Question], output: str | Path, run_config: dict,
             settings: GenerationSettings = GenerationSettings(), sampling: FrameSampling = FrameSampling(),
             vision: QwenVision = QwenVision(), backend: str = "auto", batch_size: int = 8, task: str = "vsibench",
             overwrite: bool = False, progress: bool = True, scoring: str = DEFAULT_SCORING,
             share_prefix: str = "auto") -> dict:
    """Answer and score `questions` with `model` (a Qwen3VLForConditionalGeneration); returns the
    results dict also written to `output`/results.json. Resumes from `output`'s sample log.
    scoring: `geovr.eval.scoring.SCORINGS`; results.json scores every stored reply with it, so a
    resumed run may change it without answering again. share_prefix: auto | on | off (`_Answerer`;
    the replies are the same either way, so a resumed run may change it too; results.json records
    what answered this run's questions under "prefix")."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if scoring not in SCORINGS:
        raise ValueError(f"scoring {scoring!r}: choose one of {list(SCORINGS)}")
    log = SampleLog(Path(output), task, run_config, overwrite=overwrite)
    done = log.done
    order = sorted(range(len(questions)), key=lambda i: (questions[i].video, i))  # one video's questions in a row
    todo = [i for i in order if questions[i].id not in done]
    answerer = _Answerer(model, tokenizer, settings, batch_size, share_prefix) if todo else None
    encoder = QuestionEncoder(tokenizer, sampling, vision, backend)
    from ..progress import progress as progress_display

    bar = progress_display(enabled=progress, total=len(questions), initial=len(questions) - len(todo), desc=task,
                           unit="q")
    for video in _runs(todo, questions):
        encoded, rows = [], []
        for i in video:
            q = questions[i]
            try:
                encoded.append((i, encoder(q)))
            except VideoDecodeError as err:
                logger.warning("skipping %s: %s", q.id, err)
                rows.append(sample_row(i, q.doc, q.prompt, settings.to_dict(), None, _skipped_score(q),
                                       q.ground_truth, skipped=f"{err.kind}: {err.reason}", scoring=scoring))
        if encoded:
            answers = answerer.answer_video([e for _, e in encoded])
            for (i, _), answer in zip(encoded, answers):
                q = questions[i]
                scored = score_answer(q.question_type, answer, q.ground_truth, list(q.options or []) or None, scoring)
                rows.append(sample_row(i, q.doc, q.prompt, settings.to_dict(), answer, scored, q.ground_truth,
                                       scoring=scoring))
        log.append(sorted(rows, key=lambda r: r["doc_id"]))
        bar.update(len(video))
    bar.close()
    wanted = {q.id for q in questions}
    rows = [r for r in log.rows if str(r["doc"]["id"]) in wanted]
    report = aggregate(score_rows(rows, scoring), scoring)
    prefix = answerer.counts if answerer is not None else {"mode": share_prefix, "shared": 0, "alone": 0, "prefills": 0}
    return write_results(Path(output), task, report, run_config, len(rows), sum(r["skipped"] is not None for r in rows),
                         n_empty=sum(r["skipped"] is None and not r["resps"][0][0].strip() for r in rows),
                         extra={"prefix": prefix})


def _runs(todo: list[int], questions: list[Question], limit: int = 64) -> list[list[int]]:
    """`todo` (ordered by video) cut into runs of one video's questions, at most `limit` each (the
    sample log is appended after each run: the resume point)."""
    runs: list[list[int]] = []
    for i in todo:
        if runs and questions[runs[-1][0]].video == questions[i].video and len(runs[-1]) < limit:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m geovr.eval.vsibench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", required=True, help="HF Qwen3-VL folder or GeoVR checkpoint (its base model is scored)")
    p.add_argument("--data", required=True, help="VSI-Bench folder or questions file (.jsonl/.json/.parquet), "
                                                 "or a LLaVA-style QA file")
    p.add_argument("--video-root", default=None, help="folder holding <dataset>/<scene_name>.mp4 (default: "
                                                      "the questions file's folder)")
    p.add_argument("--format", default="auto", choices=("auto", "vsibench", "llava"))
    p.add_argument("--output", default=None, help="results folder (default: geovr_runs/eval/<model>: "
                   "the run's name for a run's final/, e.g. geovr_runs/eval/tiny)")
    p.add_argument("--task", default=None, help="name in the results (default: vsibench, or spatial_qa for llava)")
    p.add_argument("--protocol", default=DEFAULT_PROTOCOL, choices=list(PROTOCOLS),
                   help="prompts, frames, pixel budget, decoding and scoring together (the options below override "
                        "its settings): " + "; ".join(pr.describe() for pr in PROTOCOLS.values()))
    p.add_argument("--batch-size", type=at_least(1), default=8)
    p.add_argument("--max-new-tokens", type=at_least(1), default=None,
                   help="answer length cap (default: the protocol's)")
    p.add_argument("--do-sample", action=argparse.BooleanOptionalAction, default=None,
                   help="sample (--do-sample) or decode greedily (--no-do-sample) (default: the protocol's)")
    p.add_argument("--temperature", type=non_negative, default=None)
    p.add_argument("--top-p", type=share, default=None)
    p.add_argument("--top-k", type=at_least(0), default=None,
                   help="sampling: keep the k likeliest tokens (default: the protocol's, else the model's generation "
                        "config; 0: off)")
    p.add_argument("--repetition-penalty", type=positive, default=None,
                   help="default: the protocol's, else the model's generation config; 1: none")
    p.add_argument("--seed", type=int, default=None, help="sampling: each question is seeded from it and its id")
    p.add_argument("--fps", type=positive, default=None, help="frames sampled per second of video (lmms-eval: 2)")
    p.add_argument("--min-frames", type=at_least(1), default=None, help="lmms-eval: 4")
    p.add_argument("--max-frames", type=at_least(1), default=None,
                   help="lmms-eval: at most this many frames (32); release: exactly this many (128)")
    p.add_argument("--tokens-per-frame", type=at_least(4), default=None,
                   help="merged visual tokens per frame at most (lmms-eval: 300; release: 384)")
    p.add_argument("--backend", default="auto", choices=("auto", "pyav", "dali-gpu", "dali-cpu"))
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    p.add_argument("--scoring", default=None, choices=SCORINGS,
                   help="lmms-eval: as lmms-eval's VSI-Bench task; release: as the GeoVR release's metric_result.py; "
                        "lenient: geovr's forgiving reader of free-form replies (default: the protocol's)")
    p.add_argument("--share-prefix", default="auto", choices=SHARE_PREFIX,
                   help="on: run each video's prefix (system turn, video tokens) once and answer its questions from "
                        "its cache, the same replies as off; off: each question's whole prompt; auto (default): on "
                        "where the model allows it")
    p.add_argument("--limit", type=at_least(1), default=None, help="score only the first N questions")
    p.add_argument("--overwrite", action="store_true", help="discard earlier answers in --output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    p = build_parser()
    a = p.parse_args(argv)
    check_output(p, "--output", a.output)
    if a.min_frames is not None and a.max_frames is not None and a.min_frames > a.max_frames:
        p.error(f"argument --min-frames: {a.min_frames} exceeds --max-frames {a.max_frames}")
    from .model_io import load_model, model_folder, model_name, resolve_device, resolve_dtype

    try:
        model_folder(a.model)
        chosen = protocol(a.protocol).override(
            fps=a.fps, min_frames=a.min_frames, max_frames=a.max_frames, tokens_per_frame=a.tokens_per_frame,
            scoring=a.scoring, max_new_tokens=a.max_new_tokens, do_sample=a.do_sample, temperature=a.temperature,
            top_p=a.top_p, top_k=a.top_k, repetition_penalty=a.repetition_penalty, seed=a.seed)
        questions = read_questions(a.data, a.format, a.video_root, chosen.prompts)
        device = resolve_device(a.device)
        dtype = resolve_dtype(a.dtype, device)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if a.limit is not None:
        questions = questions[:a.limit]
    fmt = detect_format(find_questions_file(a.data)) if a.format == "auto" else a.format
    task = a.task or ("vsibench" if fmt == "vsibench" else "spatial_qa")
    output = a.output or str(Path("geovr_runs/eval") / model_name(a.model))
    model, tokenizer = load_model(a.model, device, dtype)
    settings = chosen.generation
    run_config = {"model": str(Path(a.model).resolve()), "data": str(Path(a.data).resolve()), "task": task,
                  "n_questions": len(questions), "frames": chosen.frames_record(),
                  "generation": settings.to_dict(), "dtype": str(dtype), "protocol": chosen.name}
    try:
        result = evaluate(model, tokenizer, questions, output, run_config, settings, chosen.sampling, chosen.vision,
                          a.backend, a.batch_size, task, a.overwrite, progress=not a.quiet, scoring=chosen.scoring,
                          share_prefix=a.share_prefix)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((Path(output) / "results.md").read_text(), end="")
    print(f"results: {Path(output) / 'results.json'}  samples: {Path(output) / f'samples_{task}.jsonl'}")
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())
