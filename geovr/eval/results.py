"""The harness's output folder, laid out as lmms-eval users know it.

  <output>/samples_<task>.jsonl   one line per question, appended as answers come (the resume
                                  point): doc_id, doc, target, arguments (prompt, generation
                                  settings), resps [[raw answer]], filtered_resps [parsed], the
                                  task metric ("MRA:.5:.95:.05" or "accuracy") and the scoring
                                  it was computed with, skipped (reason or null)
  <output>/run_config.json        what produced the answers (model, data, frames, generation):
                                  a resume must match it
  <output>/results.json           {"results": {<task>: scores}, "config": ..., "n_samples": ...}
  <output>/results.md             the table: per task, overall, counts, MRA per threshold
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .scoring import MRA_THRESHOLDS, TASKS, Report, is_numeric, score_answer

# run_config.json entries added since the first release of the harness, as the runs written before
# them were made: such a run resumes under the same settings
RUN_CONFIG_ADDED = {"protocol": "lmms-eval"}
MRA_METRIC = "MRA:.5:.95:.05"
CHOICE_METRIC = "accuracy"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class SampleLog:
    """The per-sample jsonl: appended and flushed per batch; read back on resume (a torn last line
    from a kill is dropped and rewritten)."""

    def __init__(self, output: Path, task: str, run_config: dict, overwrite: bool = False):
        self.output = Path(output)
        self.output.mkdir(parents=True, exist_ok=True)
        self.path = self.output / f"samples_{task}.jsonl"
        cfg_path = self.output / "run_config.json"
        if overwrite:
            for p in (self.path, cfg_path):
                p.unlink(missing_ok=True)
        if self.path.exists() and cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            old = {**{k: v for k, v in RUN_CONFIG_ADDED.items() if k in run_config}, **old}
            if old != run_config:
                diff = sorted(k for k in set(old) | set(run_config) if old.get(k) != run_config.get(k))
                raise ValueError(f"{self.output} holds answers from another run (differs in {diff}); "
                                 "pass --overwrite to start again, or another --output")
        _atomic_write(cfg_path, json.dumps(run_config, indent=1))
        self.rows: list[dict] = self._read()

    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        rows, good = [], 0
        with open(self.path, "rb") as f:
            for raw in f:
                try:
                    rows.append(json.loads(raw))
                    good += len(raw)
                except json.JSONDecodeError:
                    break  # a torn line from a kill: everything after it is rewritten
        with open(self.path, "r+b") as f:
            f.truncate(good)
        return rows

    @property
    def done(self) -> set[str]:
        return {str(r["doc"]["id"]) for r in self.rows}

    def append(self, rows: list[dict]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.rows.extend(rows)


def sample_row(doc_id: int, doc: dict, prompt: str, settings: dict, answer: str | None, scored, target: str,
               skipped: str | None = None, scoring: str = "lmms-eval") -> dict:
    metric = MRA_METRIC if is_numeric(doc["question_type"]) else CHOICE_METRIC
    return {
        "doc_id": doc_id, "doc": doc, "target": target,
        "arguments": {"prompt": prompt, "gen_kwargs": settings},
        "resps": [[answer if answer is not None else ""]],
        "filtered_resps": [scored.parsed],
        metric: scored.score,
        "mra_hits": scored.hits or None,
        "scoring": scoring,
        "skipped": skipped,
    }


def score_rows(rows: list[dict], scoring: str) -> list[dict]:
    """Rows of the sample log -> rows for `scoring.aggregate`, every stored reply scored with
    `scoring` (a question skipped for its video scores 0)."""
    out = []
    for r in rows:
        qtype = r["doc"]["question_type"]
        if r.get("skipped") is not None:
            out.append({"question_type": qtype, "score": 0.0, "parsed": None, "hits": [False] * len(MRA_THRESHOLDS)})
            continue
        s = score_answer(qtype, r["resps"][0][0], r["target"], list(r["doc"].get("options") or []) or None, scoring)
        out.append({"question_type": qtype, "score": s.score, "parsed": s.parsed,
                    "hits": s.hits or [False] * len(MRA_THRESHOLDS)})
    return out


def markdown_table(report: Report, title: str) -> str:
    rows = [f"# {title}", "", "| task | score | n | unparsable |", "|---|---:|---:|---:|"]
    for t in TASKS:
        if t in report.scores:
            rows.append(f"| {t} | {report.scores[t]:.1f} | {report.counts[t]} | {report.unparsable[t]} |")
    for lv in sorted(k for k in report.scores if k not in TASKS):
        rows.append(f"| &nbsp;&nbsp;{lv} | {report.scores[lv]:.1f} | {report.counts[lv]} | {report.unparsable[lv]} |")
    how = ("sum of the 8 task scores / 8" if report.scoring == "release"
           else f"mean of {sum(t in report.scores for t in TASKS)} tasks")
    rows.append(f"| **overall** ({how}) | **{report.overall:.1f}** | "
                f"{sum(report.counts[t] for t in TASKS if t in report.counts)} | |")
    if report.mra_by_threshold:
        rule = "<=" if report.scoring == "lmms-eval" else "<"
        rows += ["", f"MRA hit rate (%) per threshold theta (|y^ - y| / y {rule} 1 - theta):", "",
                 "| task | " + " | ".join(f"{t:.2f}" for t in MRA_THRESHOLDS) + " |",
                 "|---|" + "---:|" * len(MRA_THRESHOLDS)]
        for t, by in report.mra_by_threshold.items():
            rows.append(f"| {t} | " + " | ".join(f"{v:.0f}" for v in by.values()) + " |")
    return "\n".join(rows) + "\n"


def write_results(output: Path, task: str, report: Report, run_config: dict, n_samples: int, n_skipped: int,
                  n_empty: int = 0, extra: dict | None = None) -> dict:
    """results.json and results.md. n_empty: answered questions whose reply was empty (the model
    ended its turn at once: they score 0, and are said so). extra: more top-level entries of
    results.json (how this run answered)."""
    result = {"results": {task: report.to_dict()}, "config": run_config, "n_samples": n_samples,
              "n_skipped": n_skipped, "n_empty_answers": n_empty, **(extra or {})}
    _atomic_write(Path(output) / "results.json", json.dumps(result, indent=1))
    title = f"{task}: {run_config.get('model', '')}"
    note_scoring = f"\nScored with `--scoring {report.scoring}` ({report.source}).\n"
    if "protocol" in run_config:
        note_scoring = f"\nProtocol: `--protocol {run_config['protocol']}`." + note_scoring
    note = f"\n{n_skipped} question(s) whose video could not be read score 0 (see `skipped` in the samples file).\n" \
        if n_skipped else ""
    if n_empty:
        note += (f"\n{n_empty} of {n_samples - n_skipped} answers were empty (the model ended its turn at once): they "
                 "score 0. A model trained briefly from random weights (the tiny default job) does this.\n")
    _atomic_write(Path(output) / "results.md", markdown_table(report, title) + note_scoring + note)
    return result
