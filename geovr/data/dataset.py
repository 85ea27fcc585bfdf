"""`VideoQADataset`: records -> decoded, sampled frames (+ an optional transform), dropping bad
media without stopping the epoch.

A record whose video is missing, truncated, corrupt, frameless or audio-only (or that the
transform rejects: too long, unsupported media) is dropped: its key yields `Dropped` (the skip and
the key's position) instead of a sample, one per bad record and epoch. No other record stands in
for it, so no sample is delivered twice; the collate leaves it out of the micro-batch (which is
then smaller; the losses normalise by the samples and tokens actually there), and the skip travels
in the batch to the training loop's `SkipLog`, which counts it once and raises only when
`max_in_a_row` items in a row were dropped: a wrong media root or a broken disk, not a bad file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch.utils.data import Dataset

from ..progress import progress as progress_display
from .chat import SampleRejected
from .datasets.records import VideoQA
from .decode import Frames, decode_frames, probe_video
from .errors import VideoDecodeError
from .health import Skip
from .sampling import FrameSampling, sample_indices


def load_video(path: str, sampling: FrameSampling = FrameSampling(), backend: str = "auto") -> Frames:
    """Probe `path` and decode the frames `sampling` picks (raises VideoDecodeError)."""
    info = probe_video(path)
    return decode_frames(info, sample_indices(info.num_frames, info.fps, sampling), backend=backend)


@dataclass
class Sample:
    """record: the QA record; frames: uint8 [T, 3, H, W] at the sampled indices; position:
    (epoch, index in the epoch's order) when read through `ResumableSampler`."""

    record: VideoQA
    frames: Frames
    position: tuple[int, int] = (0, 0)


@dataclass
class GroupSample:
    """records: QA records about the same media (one video group of `VideoGroupSampler`);
    frames: decoded once, at the sampled indices; position: as for `Sample`."""

    records: list[VideoQA]
    frames: Frames
    position: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Dropped:
    """What a bad record's key yields: why it was dropped, and the key's (epoch, position), so the
    resume point moves past it."""

    skip: Skip
    position: tuple[int, int] = (0, 0)


class VideoQADataset(Dataset):
    """records: from `geovr.data.datasets` readers. backend: decoder ("auto", "pyav",
    "dali-gpu", "dali-cpu"; images always use PyAV). transform: Sample -> model inputs."""

    def __init__(self, records: list[VideoQA], sampling: FrameSampling = FrameSampling(),
                 backend: str = "auto", transform: Callable[[Sample], object] | None = None):
        if not records:
            raise ValueError("no records: the annotation files held no valid video items")
        self.records = records
        self.sampling = sampling
        self.backend = backend
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> Frames:
        """Decode record `index`'s sampled frames (raises VideoDecodeError)."""
        rec = self.records[index]
        if rec.kind == "image":  # PyAV reads png/jpeg/webp as one-frame streams
            return decode_frames(probe_video(rec.media), [0], backend="pyav")
        return load_video(rec.media, self.sampling, self.backend)

    def frame_counts(self, progress: bool = False) -> list[int]:
        """Frames each record's sampling yields (images: 1; an unreadable video: 0, it is skipped
        when loaded anyway): the lengths for `ResumableSampler`'s grouping. Probes each video
        once (a demux, no decoding); records about the same video share the probe."""
        seen: dict[str, int] = {}
        items = progress_display(self.records, enabled=progress, desc="video lengths", unit="rec")
        out = []
        for rec in items:
            if rec.kind == "image":
                out.append(1)
                continue
            if rec.media not in seen:
                try:
                    info = probe_video(rec.media)
                    seen[rec.media] = len(sample_indices(info.num_frames, info.fps, self.sampling))
                except VideoDecodeError:
                    seen[rec.media] = 0
            out.append(seen[rec.media])
        return out

    def __getitem__(self, key) -> object:
        """key: an index, or `ResumableSampler`'s (index, epoch, position), or
        `VideoGroupSampler`'s (indices tuple, epoch, position). Returns the sample (or the
        transform's output), or `Dropped` when the record's media cannot be used; for a group,
        a list: the transform's packed sequences (`QwenTransform.pack`) and a `Dropped` per record
        that could not be used (every record of the group when its video cannot be read)."""
        index, epoch, position = key if isinstance(key, tuple) else (key, 0, key)
        if isinstance(index, (tuple, list)):
            return self._group(list(index), (epoch, position))
        rec = self.records[index]
        try:
            sample = Sample(rec, self.load(index), (epoch, position))
            return self.transform(sample) if self.transform is not None else sample
        except (VideoDecodeError, SampleRejected) as err:
            return Dropped(Skip(rec.id, rec.media, err.kind, err.reason), (epoch, position))

    def _group(self, indices: list[int], position: tuple[int, int]) -> list:
        records = [self.records[i] for i in indices]
        if len({(r.media, r.kind) for r in records}) != 1:
            raise ValueError(f"a video group must share one media file, got {sorted({r.media for r in records})}")
        try:
            group = GroupSample(records, self.load(indices[0]), position)
            if self.transform is None:
                return [group]
            packed, stats = self.transform.pack(group)
        except (VideoDecodeError, SampleRejected) as err:
            return [Dropped(Skip(r.id, r.media, err.kind, err.reason), position) for r in records]
        if packed:
            packed[0] = {**packed[0], "unshared": stats.unshared}
        return packed + [Dropped(Skip(r.id, r.media, e.kind, e.reason), position) for r, e in stats.rejected]
