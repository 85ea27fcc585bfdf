"""`python -m geovr.data.check`: a dataset checked before a run, not an hour into it.

    python -m geovr.data.check --data vsi590k.jsonl --format vsi590k --media-root /data/vsi590k \
        --workers 16 --state check.state --out report.json --clean clean.jsonl [data.max_frames=32]

Reads every record as the trainer does (--data/--format/--media-root, comma-separated for several
files; a run's own config, its teacher cache included: `python -m geovr.train.check_run`), probes
every distinct media file once (exists, opens, has a video stream, its frames and fps, and the first
and last of the frames the sampling rule takes decode; not a full decode), in parallel, with a
progress bar. Prints per source (the record's `data_source`, else its media's top folder) and in
total: records, invalid records (the first errors), media by problem (missing, no video stream,
truncated, corrupt, too short: fewer frames than data.min_frames), rows the readers filter (image
items), and questions per video (mean, median, max: what data.group_by_video and the planner need).
--state FILE keeps every probe, so a stopped check goes on where it stopped. --out writes the report
as JSON; --clean FILE the records that will train, as they were written (the trainer reads it with
the same format and media root). Exit status 1 when no record is usable or more than --max-missing
of them lose their media.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..cli import at_least, check_output, fraction
from ..progress import progress as progress_display
from .datasets import read_dataset
from .datasets.readers import iter_json_items
from .datasets.records import VideoQA
from .errors import RecordError, VideoDecodeError
from .sampling import FrameSampling, sample_indices

PROBLEMS = (*VideoDecodeError.KINDS, "too_short")  # what a media file can have wrong
FIRST_ERRORS = 5  # invalid records quoted per source


@dataclass
class MediaCheck:
    """One media file's verdict: status "ok" or one of PROBLEMS; its frames, fps, seconds and
    frame size (pixels) when it opens; reason: what was wrong."""

    path: str
    status: str
    frames: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    reason: str = ""
    height: int = 0
    width: int = 0


def check_media(path: str, kind: str, sampling: FrameSampling, decode: bool = True) -> MediaCheck:
    """Probe one media file (a demux, no decoding) and decode the first and last frames the
    sampling rule takes (PyAV), as the trainer would read them."""
    from .decode import decode_frames, probe_video

    try:
        info = probe_video(path)
        if kind == "image":
            picks = [0]
        else:
            picks = sample_indices(info.num_frames, info.fps, sampling)
            if info.num_frames < sampling.min_frames:
                return MediaCheck(path, "too_short", info.num_frames, info.fps, info.duration_s,
                                  f"{info.num_frames} frames, fewer than data.min_frames={sampling.min_frames}")
        if decode:
            decode_frames(info, sorted({picks[0], picks[-1]}), backend="pyav")
    except VideoDecodeError as e:
        return MediaCheck(path, e.kind, reason=e.reason)
    except (OSError, ValueError) as e:  # a folder named like a video, an unreadable file
        return MediaCheck(path, "corrupt", reason=f"{type(e).__name__}: {e}")
    return MediaCheck(path, "ok", info.num_frames, info.fps, info.duration_s, height=info.height, width=info.width)


def source_of(rec: VideoQA) -> str:
    """The record's source: its `data_source` field (VLM-3R), else its media path's top folder
    (VSI-590K's tree: scannet/, arkitscenes/, ...), else the reader's name."""
    ds = rec.extra.get("data_source")
    if isinstance(ds, str) and ds:
        return ds
    parts = Path(rec.media_rel).parts
    return parts[0] if len(parts) > 1 else rec.source


def _load_state(path: Path | None) -> dict[str, MediaCheck]:
    if path is None or not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        try:
            m = MediaCheck(**json.loads(line))
        except (ValueError, TypeError):
            continue  # a line cut by a kill: probed again
        if m.status == "ok" and not m.height:
            continue  # written before the frame size was kept: probed again
        out[m.path] = m
    return out


def probe_all(media: dict[str, str], sampling: FrameSampling, workers: int = 8, state: Path | None = None,
              progress: bool = True, decode: bool = True) -> dict[str, MediaCheck]:
    """check_media for every {path: kind}, `workers` at a time; results kept in `state` (one JSON
    line each, appended as they finish) and read back from it first."""
    done = _load_state(state)
    todo = [(p, k) for p, k in media.items() if p not in done]
    bar = progress_display(enabled=progress, total=len(media), initial=len(media) - len(todo), desc="media",
                           unit="files")
    sink = open(state, "a") if state is not None else None
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:  # PyAV releases the GIL while it demuxes
            futures = [pool.submit(check_media, p, k, sampling, decode) for p, k in todo]
            for fut in as_completed(futures):
                m = fut.result()
                done[m.path] = m
                if sink is not None:
                    sink.write(json.dumps(asdict(m)) + "\n")
                    sink.flush()
                bar.update()
    finally:
        if sink is not None:
            sink.close()
        bar.close()
    return {p: done[p] for p in media}


@dataclass
class SourceReport:
    records: int = 0
    usable: int = 0
    videos: int = 0
    media: Counter = field(default_factory=Counter)  # problem -> distinct media files
    records_lost: Counter = field(default_factory=Counter)  # problem -> records whose media has it
    examples: dict = field(default_factory=dict)  # problem -> one file with it and why
    questions: list = field(default_factory=list)  # questions per usable video

    def row(self) -> dict:
        q = self.questions
        return {"records": self.records, "usable": self.usable, "videos": self.videos,
                "media_problems": dict(self.media), "records_lost": dict(self.records_lost),
                "examples": self.examples,
                "questions_per_video": {"mean": round(statistics.mean(q), 2) if q else 0.0,
                                        "median": statistics.median(q) if q else 0, "max": max(q) if q else 0}}


def build_report(records: list[VideoQA], checks: dict[str, MediaCheck], errors: list[RecordError],
                 filtered: int) -> dict:
    """The report: per source and in total (see the module docstring)."""
    per: dict[str, SourceReport] = defaultdict(SourceReport)
    total = SourceReport()
    per_video: dict[tuple[str, str], int] = Counter()
    for rec in records:
        src = source_of(rec)
        m = checks[rec.media]
        for rep in (per[src], total):
            rep.records += 1
            if m.status == "ok":
                rep.usable += 1
            else:
                rep.records_lost[m.status] += 1
        if m.status == "ok":
            per_video[(src, rec.media)] += 1
    seen: set[tuple[str, str]] = set()
    for rec in records:
        src, m = source_of(rec), checks[rec.media]
        if (src, rec.media) in seen or m.status == "ok":
            continue
        seen.add((src, rec.media))
        for rep in (per[src], total):
            rep.media[m.status] += 1
            rep.examples.setdefault(m.status, f"{m.path}: {m.reason}")
    for (src, _), n in per_video.items():
        for rep in (per[src], total):
            rep.videos += 1
            rep.questions.append(n)
    first = [str(e) for e in errors[:FIRST_ERRORS]]
    return {"sources": {s: r.row() for s, r in sorted(per.items())},
            "total": {**total.row(), "invalid_records": len(errors), "first_invalid": first, "filtered": filtered}}


def format_report(report: dict, seconds: float) -> str:
    cols = ("records", "usable", "videos", *PROBLEMS)
    rows = [("source", *cols, "q/video mean", "median", "max")]
    for name, r in [*report["sources"].items(), ("total", report["total"])]:
        q = r["questions_per_video"]
        rows.append((name, *(str(r[c]) for c in cols[:3]), *(str(r["media_problems"].get(p, 0)) for p in PROBLEMS),
                     f"{q['mean']:.1f}", str(q["median"]), str(q["max"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    t = report["total"]
    lines.append(f"media columns count distinct files; {sum(t['records_lost'].values())} records lose their media, "
                 f"{t['invalid_records']} records are invalid, {t['filtered']} filtered by the readers (image items, "
                 f"text-only); checked in {seconds:.0f} s")
    for problem, example in t["examples"].items():
        lines.append(f"  {problem}: e.g. {example}")
    for err in t["first_invalid"]:
        lines.append(f"  invalid: {err}")
    return "\n".join(lines)


def write_clean(path: Path, records: list[VideoQA], checks: dict[str, MediaCheck], files: list[str]) -> int:
    """The usable records as their files wrote them, one JSON object a line (whole: temporary
    file, then rename). Returns how many."""
    keep = {rec.where for rec in records if checks[rec.media].status == "ok"}
    tmp = path.with_name(path.name + ".part")
    n = 0
    with open(tmp, "w") as f:
        for file in files:
            for where, obj in iter_json_items(file):
                if where in keep:
                    f.write(json.dumps(obj) + "\n")
                    n += 1
    os.replace(tmp, path)
    return n


def data_overrides(overrides: list[str]) -> dict:
    """`data.field=value` overrides (values parsed as YAML) as {field: value}."""
    import yaml

    d: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("data."):
            raise ValueError(f"override {item!r}: only data.field=value is read by the check (a run's whole config: "
                             "python -m geovr.train.check_run)")
        d[key[len("data."):]] = yaml.safe_load(value)
    return d


def add_check_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of a check (shared by this command and `python -m geovr.train.check_run`)."""
    ap.add_argument("--workers", type=at_least(1), default=8, help="media probed at once (default 8)")
    ap.add_argument("--state", type=Path, default=None, help="keep every probe here; a rerun goes on from it")
    ap.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    ap.add_argument("--clean", type=Path, default=None, help="write the usable records (jsonl) here")
    ap.add_argument("--max-missing", type=fraction, default=0.05,
                    help="exit 1 when more than this share of the records lose their media (default 0.05)")
    ap.add_argument("--no-decode", action="store_true", help="probe only (no frame decoded): faster, misses "
                                                              "files whose frames are damaged")
    ap.add_argument("--no-progress", action="store_true")


def check_output_files(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--state, --out and --clean can be written (a usage error before any probing)."""
    for option in ("state", "out", "clean"):
        check_output(ap, f"--{option}", getattr(args, option), kind="file")


# A further part of the report: (records, their media checks) -> (its JSON, lines to print, an
# error that fails the check or None). `geovr.train.check_run` adds the teacher cache's coverage.
Section = Callable[[list[VideoQA], dict[str, MediaCheck]], tuple[dict, list[str], "str | None"]]


def run_check(args: argparse.Namespace, path: str, fmt: str, root: str | None, sampling: FrameSampling,
              sections: dict[str, Section] | None = None) -> int:
    """Check the dataset `path` (comma-separated files) in format(s) `fmt` with the options of
    `add_check_arguments`; print the report, write --out/--clean. Returns the exit status (2:
    unusable arguments or files)."""
    files = [p for p in path.split(",") if p]
    if args.clean and len(set(fmt.split(","))) > 1:
        return _usage(f"--clean writes one file in one format; the files have {fmt}: check them one format at a time")
    if args.clean and root is None and len({os.path.dirname(os.path.abspath(f)) for f in files}) > 1:
        return _usage("--clean: the files lie in different folders and no media root is given, so their relative "
                      "media paths have different roots; give the media root")
    t0 = time.perf_counter()
    try:
        res = read_dataset(fmt, path, root)
    except (FileNotFoundError, ValueError) as err:
        return _usage(str(err))
    media = {rec.media: rec.kind for rec in res.records}
    checks = probe_all(media, sampling, args.workers, args.state, not args.no_progress, not args.no_decode)
    report = build_report(res.records, checks, res.errors, res.filtered)
    extra_lines, failures = [], []
    for name, section in (sections or {}).items():
        report[name], lines, failure = section(res.records, checks)
        extra_lines += lines
        if failure:
            failures.append(failure)
    seconds = time.perf_counter() - t0
    report["seconds"] = round(seconds, 1)
    report["inputs"] = {"data": path, "format": fmt, "media_root": root, "sampling": sampling.to_dict()}
    print(format_report(report, seconds))
    for line in extra_lines:
        print(line)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"report: {args.out}")
    total = report["total"]
    if args.clean:
        n = write_clean(args.clean, res.records, checks, files)
        roots = root or os.path.dirname(os.path.abspath(files[0]))
        print(f"clean: {n} records in {args.clean}; train on them with data.path={args.clean} "
              f"data.format={fmt.split(',')[0]} data.media_root={roots}")
    lost = sum(total["records_lost"].values())
    if total["usable"] == 0:
        failures.append("no record is usable")
    elif lost > args.max_missing * total["records"]:
        failures.append(f"{lost} of {total['records']} records ({lost / total['records']:.1%}) lose their media, "
                        f"more than --max-missing={args.max_missing:g}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m geovr.data.check", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data", help="annotation file(s), comma-separated")
    ap.add_argument("--format", default="vsi590k", help="vsi590k | vlm3r | llava (one, or one per file)")
    ap.add_argument("--media-root", default=None, help="the media folder (default: each file's own folder)")
    ap.add_argument("--config", help=argparse.SUPPRESS)  # moved: a run's config is checked by geovr.train.check_run
    ap.add_argument("overrides", nargs="*", help="data.field=value: the sampling rule (data.fps, data.min_frames, "
                                                 "data.max_frames; default the trainer's 2, 4, 32)")
    add_check_arguments(ap)
    args = ap.parse_intermixed_args(argv)
    check_output_files(ap, args)
    if args.config:
        ap.error("--config: a run's config (its preset, defaults and overrides) is resolved by the trainer; check it "
                 "with python -m geovr.train.check_run --config RUN.yaml (also checks its teacher cache)")
    if not args.data:
        ap.error("give --data FILE[,FILE] (with --format and --media-root); for a run's own config use "
                 "python -m geovr.train.check_run --config RUN.yaml")
    try:
        d = data_overrides(args.overrides)
        sampling = FrameSampling(**{k: d.pop(k) for k in ("fps", "min_frames", "max_frames") if k in d})
    except (TypeError, ValueError) as err:
        ap.error(str(err))
    if d:
        ap.error(f"{', '.join('data.' + k for k in d)}: not read by the check (it takes data.fps, data.min_frames, "
                 "data.max_frames)")
    return run_check(args, args.data, args.format, args.media_root, sampling)


if __name__ == "__main__":
    sys.exit(main())
