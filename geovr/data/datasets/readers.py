"""Dataset readers: VSI-590K (jsonl, video items), VLM-3R (json list), generic LLaVA (json/jsonl).

Each reader returns a `ReadResult`: the valid records, and the bad ones as `RecordError`s (file,
line/item, field). `strict=True` raises the first error instead. Unreadable json lines are bad
records, not crashes.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from ..errors import RecordError
from .records import VideoQA, parse_record


@dataclass
class ReadResult:
    records: list[VideoQA] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    filtered: int = 0  # valid records left out by the reader's rule (e.g. image items of VSI-590K)
    files: list[tuple[str, str, int, int]] = field(default_factory=list)  # (path, format, records, invalid) each

    def file_lines(self) -> list[str]:
        """One line per annotation file read: "path (format): N records[, M invalid]"."""
        return [f"{path} ({kind}): {n:,} records" + (f", {bad:,} invalid" if bad else "")
                for path, kind, n, bad in self.files]

    def summary(self, name: str) -> str:
        return (f"{name}: {len(self.records)} records, {len(self.errors)} invalid, "
                f"{self.filtered} filtered")


def iter_json_items(path: str):
    """(where, obj or RecordError) for each item of a .json list or each line of a .jsonl file."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(b"["):
        try:
            with open(path, encoding="utf-8") as f:
                items = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordError(path, "<file>", f"is not valid json ({exc}); use a json list or jsonl") from exc
        for i, obj in enumerate(items):
            yield f"{path}[{i}]", obj
        return
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            if not raw.strip():
                continue
            try:
                yield where, json.loads(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield where, RecordError(where, "<line>", f"is not valid json: {exc}")


def _media_root(path: str, media_root: str | None) -> str:
    return media_root if media_root is not None else os.path.dirname(os.path.abspath(path))


def read_llava(path: str, media_root: str | None = None, source: str = "llava", strict: bool = False,
               kinds: tuple[str, ...] = ("video", "image"), media_of=None) -> ReadResult:
    """Generic LLaVA-style json list or jsonl. media_root defaults to the file's folder.
    kinds: media kinds to keep; others (and text-only records) are counted as filtered.
    media_of: obj -> the video path to use instead of its `video` field, or None to keep it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{source} annotation file not found: {path}")
    root = _media_root(path, media_root)
    out = ReadResult()
    for where, obj in iter_json_items(path):
        try:
            if isinstance(obj, RecordError):
                raise obj
            if media_of is not None and isinstance(obj, dict) and media_of(obj) is not None:
                obj = {**obj, "video": media_of(obj)}
            rec = parse_record(obj, where, root, source)
        except RecordError as err:
            if strict:
                raise
            out.errors.append(err)
            continue
        if rec is None or rec.kind not in kinds:
            out.filtered += 1
        else:
            out.records.append(rec)
    return out


def read_vsi590k(path: str, media_root: str | None = None, strict: bool = False) -> ReadResult:
    """VSI-590K jsonl: the release trains on its video items only (image items are filtered)."""
    return read_llava(path, media_root, source="vsi590k", strict=strict, kinds=("video",))


# VLM-3R names its scenes' sources as their datasets do; the VSI-590K tree it reads names ScanNet++'s folder
VLM3R_SOURCE_DIRS = {"scannetpp": "scannetppv2"}


def vlm3r_media(obj: dict) -> str | None:
    """The release's path of a VLM-3R record's video in the VSI-590K tree,
    `<data_source>/<scene_name>.mp4` (scannetpp -> scannetppv2); None without both fields."""
    source, scene = obj.get("data_source"), obj.get("scene_name")
    if not isinstance(source, str) or not isinstance(scene, str) or not source or not scene:
        return None
    return f"{VLM3R_SOURCE_DIRS.get(source, source)}/{scene}.mp4"


def read_vlm3r(path: str, media_root: str | None = None, strict: bool = False) -> ReadResult:
    """VLM-3R (`vlm3r_vsi_205k.json`): a json list of video QA records with `conversations` (plus
    fields such as `question_type`, kept in `extra`). The video is read as the release reads it,
    from the VSI-590K tree (`vlm3r_media`: `<media_root>/<data_source>/<scene_name>.mp4`), so that
    both datasets' questions about a scene share one video, one cache entry and one prefix; a
    record without those two fields uses its `video`."""
    return read_llava(path, media_root, source="vlm3r", strict=strict, kinds=("video",), media_of=vlm3r_media)


READERS = {"vsi590k": read_vsi590k, "vlm3r": read_vlm3r, "llava": read_llava}


def read_dataset(kind: str, path: str, media_root: str | None = None, strict: bool = False) -> ReadResult:
    """One annotation file, or several: `path` and `kind` may list them comma-separated (one
    format for every file, or one per file), read in order into one result (`read_datasets`)."""
    if "," in path or "," in kind:
        return read_datasets(kind.split(","), path.split(","), media_root, strict)
    if kind not in READERS:
        raise ValueError(f"dataset format must be one of {sorted(READERS)}, got {kind!r}")
    res = READERS[kind](path, media_root, strict=strict)
    res.files = [(path, kind, len(res.records), len(res.errors))]
    return res


def read_datasets(kinds: list[str], paths: list[str], media_root: str | None = None,
                  strict: bool = False) -> ReadResult:
    """Several annotation files (each with its format; one format applies to all) in one result.
    A record id already taken by an earlier file becomes `<id>@<file name>`, so ids stay unique."""
    if len(kinds) not in (1, len(paths)):
        raise ValueError(f"{len(kinds)} formats for {len(paths)} files: give one format, or one per file")
    out, seen = ReadResult(), set()
    for i, path in enumerate(paths):
        res = read_dataset(kinds[0] if len(kinds) == 1 else kinds[i], path, media_root, strict)
        for rec in res.records:
            if rec.id in seen:
                rec = dataclasses.replace(rec, id=f"{rec.id}@{os.path.basename(path)}")
            seen.add(rec.id)
            out.records.append(rec)
        out.errors += res.errors
        out.filtered += res.filtered
        out.files += res.files
    return out
