"""`VideoQA`: one validated training record, and `parse_conversations` for LLaVA-style turns.

A LLaVA-style record holds `conversations`: a list of {"from": "human"|"gpt"|"system" (or
"user"|"assistant"), "value": str}. The media placeholder is `<video>` (also `<|video|>`, and
`<image>` in a record that names a video) or `<image>`. Validation names the bad field and the fix.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import RecordError

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
VIDEO_TAGS = ("<video>", "<|video|>")
IMAGE_TAG = "<image>"
VIDEO_PLACEHOLDER = "<video>"


@dataclass(frozen=True)
class Turn:
    role: str  # "system" | "user" | "assistant"
    text: str  # the media placeholder, if any, is `<video>` or `<image>`


@dataclass(frozen=True)
class VideoQA:
    """One record: media (a video, or an image) and its conversation.

    id: the record's id (or file:line when it has none). media: absolute path; media_rel: the
    path as the record wrote it (machine-independent: caches key on it). kind: "video" or
    "image". extra: the record's other fields (question_type, answer, geometry...). where: the
    file and line (or list item) it came from."""

    id: str
    media: str
    kind: str
    turns: tuple[Turn, ...]
    source: str
    media_rel: str = ""
    extra: dict = field(default_factory=dict, compare=False)
    where: str = field(default="", compare=False)  # file:line or file[i] it was read from


def _media_path(root: str | None, rel: str) -> str:
    return os.path.normpath(rel if os.path.isabs(rel) or root is None else os.path.join(root, rel))


def parse_conversations(value, where: str, kind: str) -> tuple[Turn, ...]:
    """Validate LLaVA-style turns and normalise roles and placeholders.

    Rules: a non-empty list of {"from", "value"} dicts; an optional system turn first, then user
    and assistant turns alternating from a user turn; at least one assistant turn; exactly one
    media placeholder, in a user turn (none: one is put at the start of the first user turn).
    """
    if not isinstance(value, list) or not value:
        raise RecordError(where, "conversations", "must be a non-empty list of {'from', 'value'} turns")
    turns: list[Turn] = []
    for j, t in enumerate(value):
        if not isinstance(t, dict):
            raise RecordError(where, f"conversations[{j}]", f"must be a dict, got {type(t).__name__}")
        role = ROLES.get(t.get("from", t.get("role")))
        if role is None:
            raise RecordError(where, f"conversations[{j}].from",
                              f"must be one of {sorted(ROLES)}, got {t.get('from', t.get('role'))!r}")
        text = t.get("value", t.get("content"))
        if not isinstance(text, str):
            raise RecordError(where, f"conversations[{j}].value", f"must be a string, got {type(text).__name__}")
        if role == "system" and j != 0:
            raise RecordError(where, f"conversations[{j}].from", "a system turn may only come first")
        turns.append(Turn(role, text))
    body = turns[1:] if turns[0].role == "system" else turns
    for j, t in enumerate(body):
        want = "user" if j % 2 == 0 else "assistant"
        if t.role != want:
            raise RecordError(where, "conversations", f"turn {j} is from {t.role}, expected {want}: "
                                                      "user and assistant must alternate, user first")
    if not any(t.role == "assistant" for t in body):
        raise RecordError(where, "conversations", "has no assistant (gpt) turn: nothing to learn")
    return _normalise_placeholder(turns, where, kind)


def _normalise_placeholder(turns: list[Turn], where: str, kind: str) -> tuple[Turn, ...]:
    tags = VIDEO_TAGS + (IMAGE_TAG,)
    counts = [sum(t.text.count(tag) for tag in tags) for t in turns]
    total = sum(counts)
    if total > 1:
        raise RecordError(where, "conversations", f"has {total} media placeholders; one video or image "
                                                  "per record is supported")
    if total == 1 and turns[counts.index(1)].role != "user":
        raise RecordError(where, "conversations", "the media placeholder must be in a user turn")
    out = []
    first_user = next(i for i, t in enumerate(turns) if t.role == "user")
    tag = VIDEO_PLACEHOLDER if kind == "video" else IMAGE_TAG
    for i, t in enumerate(turns):
        text = t.text
        if total == 1 and counts[i] == 1:
            for old in tags:
                text = text.replace(old, tag)
        elif total == 0 and i == first_user:
            text = f"{tag}\n{text}"
        out.append(Turn(t.role, text))
    return tuple(out)


def parse_record(obj, where: str, root: str | None, source: str, media_keys=("video", "image")) -> VideoQA | None:
    """One LLaVA-style record -> `VideoQA`. Returns None for a text-only record (no media key).
    Raises `RecordError` for anything malformed."""
    if not isinstance(obj, dict):
        raise RecordError(where, "<record>", f"must be a json object, got {type(obj).__name__}")
    kind = next((k for k in media_keys if k in obj), None)
    if kind is None:
        return None
    rel = obj[kind]
    if isinstance(rel, list) and len(rel) == 1:
        rel = rel[0]
    if not isinstance(rel, str) or not rel.strip():
        raise RecordError(where, kind, "must be a non-empty path string (relative to the media root)")
    turns = parse_conversations(obj.get("conversations"), where, kind)
    rid = obj.get("id", where)
    extra = {k: v for k, v in obj.items() if k not in ("conversations", kind, "id")}
    return VideoQA(id=str(rid), media=_media_path(root, rel), kind=kind, turns=turns, source=source,
                   media_rel=rel, extra=extra, where=where)
