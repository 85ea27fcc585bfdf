"""Evaluation questions: the VSI-Bench layout and LLaVA-style QA files (the synthetic world's).

VSI-Bench (the official release): a questions file (`test.jsonl`, a json list, or
`test-*.parquet`) whose records hold `id`, `dataset` (arkitscenes | scannet | scannetpp),
`scene_name`, `question_type`, `question`, `options` (a list of "A. ..." strings, or null for
numeric questions) and `ground_truth`; the videos are `<video root>/<dataset>/<scene_name>.mp4`.
The prompt (`PROMPTS`): "lmms-eval" as VSI-Bench's lmms-eval task builds it (a pre-prompt, the
question, for multiple choice the options under "Options:", a post-prompt asking for a letter or a
short answer), or "release" as the GeoVR release's eval_vsi.py (no pre-prompt; the question, the
options, and a request for a single numeral or the option's letter only).

LLaVA-style (`--format llava`, e.g. the synthetic world's train.jsonl): the first user turn is
the prompt as written (its `<video>` placeholder removed), the ground truth is the record's
`answer` field or else its first assistant turn, and `question_type` comes from the record.
"""
from __future__ import annotations

import glob
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field

from ..data.errors import RecordError
from .scoring import is_numeric

PRE_PROMPT = "These are frames of a video."
NUMERIC_POST = "Please answer the question using a single word or phrase."
CHOICE_POST = "Answer with the option's letter from the given choices directly."
RELEASE_NUMERIC_POST = "Please answer the question ONLY using a single Arabic numeral."
RELEASE_CHOICE_POST = "Answer with ONLY the option's letter directly."
VSIBENCH_FIELDS = ("id", "dataset", "scene_name", "question_type", "question", "ground_truth")
_OPTION_LINE = re.compile(r"^\s*([A-Z])[.)]\s+\S")


@dataclass(frozen=True)
class Question:
    """One evaluation question. prompt: the user text after the video; video: absolute path;
    options: "A. ..." strings for multiple choice (None for numeric); doc: the source record,
    kept in the per-sample log."""

    id: str
    question_type: str
    prompt: str
    ground_truth: str
    video: str
    options: tuple[str, ...] | None = None
    doc: dict = field(default_factory=dict, compare=False)


def vsibench_prompt(question_type: str, question: str, options: list[str] | None) -> str:
    """VSI-Bench's prompt for one question."""
    if is_numeric(question_type):
        return "\n".join([PRE_PROMPT, question, NUMERIC_POST])
    if not options:
        raise ValueError(f"multiple-choice question ({question_type}) without options")
    return "\n".join([PRE_PROMPT, question, "Options:\n" + "\n".join(options), CHOICE_POST])


def release_prompt(question_type: str, question: str, options: list[str] | None) -> str:
    """The GeoVR release's prompt (eval_vsi.py): numeric when the question has no options."""
    if not options:
        return "\n".join([question, RELEASE_NUMERIC_POST])
    return "\n".join([question, *options, RELEASE_CHOICE_POST])


PROMPTS = {"lmms-eval": vsibench_prompt, "release": release_prompt}


def _load_items(path: str) -> list[tuple[str, object]]:
    """(where, record) for a .jsonl, a .json list, or .parquet file(s)."""
    if path.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ImportError(f"{path}: reading parquet needs pyarrow (pip install -e '.[eval]', or pip install "
                              "pyarrow), or convert "
                              "the questions to jsonl") from exc
        rows = pq.read_table(path).to_pylist()
        return [(f"{path}[{i}]", r) for i, r in enumerate(rows)]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return [(f"{path}[{i}]", r) for i, r in enumerate(json.loads(text))]
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{n}", "<line>", f"is not valid json: {exc}") from exc
    return out


def find_questions_file(data: str) -> str:
    """`data` itself when a file, else the questions file inside the folder (test.jsonl, train.jsonl
    (a synthetic world's questions, not its scenes.jsonl conversations), *.jsonl, *.json, or
    *.parquet, in that order of preference)."""
    if os.path.isfile(data):
        return data
    if not os.path.isdir(data):
        raise FileNotFoundError(f"--data {data}: no such file or folder")
    for pattern in ("test.jsonl", "train.jsonl", "*.jsonl", "test.json", "*.json", "test-*.parquet", "*.parquet",
                    "data/test-*.parquet"):
        hits = sorted(glob.glob(os.path.join(data, pattern)))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"--data {data}: no questions file (test.jsonl, *.json or *.parquet) in the folder")


def read_vsibench(path: str, video_root: str | None = None, prompts: str = "lmms-eval") -> list[Question]:
    """Questions of a VSI-Bench-layout file; video_root defaults to the file's folder; prompts: a
    key of `PROMPTS`."""
    if prompts not in PROMPTS:
        raise ValueError(f"prompts {prompts!r}: choose one of {list(PROMPTS)}")
    root = video_root or os.path.dirname(os.path.abspath(path))
    out = []
    for where, r in _load_items(path):
        if not isinstance(r, dict):
            raise RecordError(where, "<record>", "must be a json object")
        for name in VSIBENCH_FIELDS:
            if r.get(name) is None:
                raise RecordError(where, name, "is missing (VSI-Bench records hold "
                                  + ", ".join(VSIBENCH_FIELDS) + " and options)")
        qtype = str(r["question_type"])
        try:
            numeric = is_numeric(qtype)
        except ValueError as exc:
            raise RecordError(where, "question_type", str(exc)) from None
        options = list(r["options"]) if r.get("options") is not None and len(r["options"]) else None
        if not numeric and not options:
            raise RecordError(where, "options", f"a {qtype} question needs its options list")
        video = os.path.join(root, str(r["dataset"]), f"{r['scene_name']}.mp4")
        out.append(Question(id=str(r["id"]), question_type=qtype,
                            prompt=PROMPTS[prompts](qtype, str(r["question"]), options),
                            ground_truth=str(r["ground_truth"]), video=os.path.normpath(video),
                            options=tuple(options) if options else None,
                            doc={k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()}))
    return out


def read_llava_questions(path: str, media_root: str | None = None) -> list[Question]:
    """Questions of a LLaVA-style file whose records carry `question_type` (e.g. synthetic QA)."""
    from ..data.datasets import read_llava

    res = read_llava(path, media_root, source="eval", strict=True, kinds=("video",))
    out = []
    for rec in res.records:
        qtype = rec.extra.get("question_type")
        if not qtype:
            raise RecordError(rec.id, "question_type", "is missing: evaluation needs each record's task")
        try:
            is_numeric(qtype)
        except ValueError as exc:
            raise RecordError(rec.id, "question_type", str(exc)) from None
        user = next(t for t in rec.turns if t.role == "user")
        truth = rec.extra.get("answer")
        if truth is None:
            truth = next(t.text for t in rec.turns if t.role == "assistant")
        prompt = user.text.replace("<video>", "").strip("\n")
        options = tuple(line.strip() for line in prompt.splitlines() if _OPTION_LINE.match(line)) or None
        doc = {"id": rec.id, "video": rec.media_rel, "question_type": qtype, "prompt": prompt,
               "ground_truth": str(truth), **{k: v for k, v in rec.extra.items() if k != "answer"}}
        out.append(Question(id=rec.id, question_type=qtype, prompt=prompt, ground_truth=str(truth).strip(),
                            video=rec.media, options=options, doc=doc))
    return out


def detect_format(path: str) -> str:
    """"llava" when the file's first record has `conversations`, else "vsibench"."""
    if path.endswith(".parquet"):
        return "vsibench"
    first = _load_items(path)[:1]
    return "llava" if first and isinstance(first[0][1], dict) and "conversations" in first[0][1] else "vsibench"


def read_questions(data: str, fmt: str = "auto", video_root: str | None = None,
                   prompts: str = "lmms-eval") -> list[Question]:
    """fmt: vsibench | llava | auto (llava when the first record has `conversations`). prompts: how
    a VSI-Bench question becomes its prompt (`PROMPTS`); a LLaVA file's prompts are used as written."""
    path = find_questions_file(data)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "vsibench":
        questions = read_vsibench(path, video_root, prompts)
    elif fmt == "llava":
        questions = read_llava_questions(path, video_root)
    else:
        raise ValueError(f"--format must be vsibench, llava or auto, got {fmt!r}")
    if not questions:
        raise ValueError(f"{path} holds no questions")
    dups = [i for i, n in Counter(q.id for q in questions).items() if n > 1]
    if dups:
        dup = dups[0]
        raise RecordError(path, "id", f"{dup!r} occurs more than once; ids must be unique (the results "
                          "file is keyed on them)")
    return questions
