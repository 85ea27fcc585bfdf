"""Teacher-target cache: run a teacher once over a dataset, read its targets during training.

    python -m geovr.teachers.cache --data train.jsonl --teacher synthetic --out CACHE [--format vsi590k]

Layout of CACHE: `shard_00000.safetensors`, ... (tensors named `<key>/pose_enc`, `<key>/depth`,
`<key>/depth_conf`, `<key>/scale`, `<key>/feat/<layer>`; depth and pose fp32, confidence fp16,
features fp16 or bf16) and `index.json` ({"version", "teacher", "features", "entries": {key:
shard}, "shards": {shard: sha256}}). features: "pooled" (the default: stored 2x2 average pooled,
as the alignment loss reads them, 4x smaller: 66 MB instead of 264 MB per 32-frame sample of four
1024-wide layers at 392x504) or "full" (the teacher's patch grid, for other uses); a cache holds one
kind (an index without the field is "full", as caches were before).
A key is sha1(teacher cache id | media path as the record wrote it | frame indices | teacher frame
size): QA records about the same video and frames share one entry. A shard and then the index
are written to temporary names and renamed, so a killed run loses only its unwritten shard and a
re-run resumes. Checksums are verified when a shard is first read; a corrupt shard is dropped
(readers fall back to the online teacher; the CLI recomputes it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

import torch

from ..cli import at_least, check_inputs, check_output, positive
from ..hashing import sha256_file
from .base import Teacher, TeacherRequest, TeacherTargets

VERSION = 1
logger = logging.getLogger("geovr.teachers")
FEATURE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
FEATURE_LAYOUTS = ("pooled", "full")


def id_difference(saved: str, wanted: str) -> str:
    """The parts of two teacher cache ids that differ ("c1024 in the cache, c64 here")."""
    a, b = saved.split("-"), wanted.split("-")
    if len(a) != len(b) or a[0] != b[0]:
        return "another teacher"
    return ", ".join(f"{x} in the cache, {y} here" for x, y in zip(a, b) if x != y)


def cache_key(teacher_id: str, media: str, frame_indices: list[int], size: tuple[int, int]) -> str:
    text = f"{teacher_id}|{media}|{','.join(map(str, frame_indices))}|{size[0]}x{size[1]}"
    return hashlib.sha1(text.encode()).hexdigest()


class TeacherCache:
    """Read and append targets in `folder`. teacher_id: refuse a cache made by another teacher.
    features: how new entries store the features ("pooled" or "full"; None: the folder's kind,
    "pooled" for a new one); an existing cache of the other kind is refused."""

    def __init__(self, folder: str | os.PathLike, teacher_id: str | None = None, feature_dtype: str = "fp16",
                 shard_size: int = 64, features: str | None = None):
        if feature_dtype not in FEATURE_DTYPES:
            raise ValueError(f"feature_dtype must be one of {sorted(FEATURE_DTYPES)}, got {feature_dtype!r}")
        if features is not None and features not in FEATURE_LAYOUTS:
            raise ValueError(f"features must be one of {list(FEATURE_LAYOUTS)}, got {features!r}")
        self.folder = Path(folder)
        self.feature_dtype = FEATURE_DTYPES[feature_dtype]
        self.shard_size = shard_size
        self.index = {"version": VERSION, "teacher": teacher_id, "features": features or "pooled", "entries": {},
                      "shards": {}}
        path = self.folder / "index.json"
        if path.exists():
            with open(path) as f:
                self.index = json.load(f)
            if self.index.get("version") != VERSION:
                raise ValueError(f"{path}: cache format {self.index.get('version')} != {VERSION}; rebuild it")
            if teacher_id is not None and self.index.get("teacher") not in (None, teacher_id):
                raise ValueError(f"{path} holds targets of teacher '{self.index['teacher']}', not '{teacher_id}' "
                                 f"({id_difference(self.index['teacher'], teacher_id)}): build a cache with the "
                                 "run's teacher settings (--feature-dim, --teacher, --resampled as teacher.feature_dim, "
                                 "teacher.name, teacher.exact) in another folder, and point teacher.cache (or --out) "
                                 "at it")
            self.index.setdefault("features", "full")  # caches written before pooled storage
            if features is not None and self.index["features"] != features:
                raise ValueError(f"{path} stores {self.index['features']} features, not {features}; use another "
                                 f"--out folder or --features {self.index['features']}")
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_keys: list[str] = []
        self._verified: set[str] = set()
        self._bad: set[str] = set()

    # ---------------------------------------------------------------- reading
    @staticmethod
    def found(folder: str | os.PathLike) -> bool:
        """Whether `folder` holds a cache (its index)."""
        return (Path(folder) / "index.json").is_file()

    @property
    def teacher_id(self) -> str | None:
        """The id of the teacher whose targets the cache holds (None: an empty new cache)."""
        return self.index.get("teacher")

    def missing_shards(self) -> list[str]:
        """Shards the index names whose files are gone (a cheap look, no checksum)."""
        return sorted(s for s in self.index["shards"] if not (self.folder / s).is_file())

    def __contains__(self, key: str) -> bool:
        return key in self.index["entries"]

    def __len__(self) -> int:
        return len(self.index["entries"])

    def _check_shard(self, shard: str) -> bool:
        if shard in self._verified:
            return True
        if shard in self._bad:
            return False
        path = self.folder / shard
        ok = path.exists() and sha256_file(path) == self.index["shards"].get(shard)
        if ok:
            self._verified.add(shard)
        else:
            self._bad.add(shard)
            logger.warning("teacher cache shard %s is missing or corrupt (checksum mismatch): its %d samples "
                           "fall back to the online teacher; rebuild with python -m geovr.teachers.cache", path,
                           sum(1 for v in self.index["entries"].values() if v == shard))
        return ok

    def get(self, key: str, device: torch.device | str = "cpu") -> TeacherTargets | None:
        """The cached targets (features back in fp32), or None when absent or corrupt."""
        shard = self.index["entries"].get(key)
        if shard is None or not self._check_shard(shard):
            return None
        from safetensors import safe_open

        with safe_open(str(self.folder / shard), framework="pt", device=str(device)) as f:
            names = [n for n in f.keys() if n.startswith(key + "/")]
            t = {n[len(key) + 1:]: f.get_tensor(n) for n in names}
        feats = {int(n.split("/")[1]): v.float() for n, v in t.items() if n.startswith("feat/")}
        return TeacherTargets(pose_enc=t["pose_enc"], depth=t["depth"], depth_conf=t["depth_conf"].float(),
                              features=feats, scale=t.get("scale"), features_pooled=self.pooled)

    @property
    def pooled(self) -> bool:
        """True when the features are stored 2x2 pooled."""
        return self.index.get("features", "full") == "pooled"

    def verify(self) -> list[str]:
        """Check every shard's checksum; drop corrupt or missing shards (and their entries) from
        the index so they are recomputed. Returns the dropped shards."""
        bad = [s for s in list(self.index["shards"]) if not self._check_shard(s)]
        for shard in bad:
            del self.index["shards"][shard]
            self.index["entries"] = {k: v for k, v in self.index["entries"].items() if v != shard}
        if bad:
            self._write_index()
        return bad

    # ---------------------------------------------------------------- writing
    def add(self, key: str, targets: TeacherTargets) -> None:
        """Queue `targets` under `key`; a full shard is written at once."""
        t = {"pose_enc": targets.pose_enc.float(), "depth": targets.depth.float(),
             "depth_conf": targets.depth_conf.to(torch.float16)}
        if targets.scale is not None:
            t["scale"] = targets.scale.float().reshape(())
        for layer in targets.features:
            if self.pooled:
                f = targets.pooled(layer)  # pooled in fp32, then stored in the feature dtype
            elif targets.features_pooled:
                raise ValueError(f"{self.folder} stores full features, but these targets come pooled")
            else:
                f = targets.features[layer]
            t[f"feat/{layer}"] = f.to(self.feature_dtype)
        for name, v in t.items():
            self._pending[f"{key}/{name}"] = v.detach().cpu().contiguous()
        self._pending_keys.append(key)
        if len(self._pending_keys) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write queued targets as a new shard, then the index (both atomically)."""
        if not self._pending_keys:
            return
        from safetensors.torch import save_file

        self.folder.mkdir(parents=True, exist_ok=True)
        n = 0
        while f"shard_{n:05d}.safetensors" in self.index["shards"] or (self.folder / f"shard_{n:05d}.safetensors").exists():
            n += 1
        shard = f"shard_{n:05d}.safetensors"
        tmp = self.folder / (shard + ".part")
        save_file(self._pending, str(tmp), metadata={"teacher": str(self.index.get("teacher"))})
        digest = sha256_file(tmp)
        os.replace(tmp, self.folder / shard)
        self.index["shards"][shard] = digest
        for key in self._pending_keys:
            self.index["entries"][key] = shard
        self._verified.add(shard)
        self._pending, self._pending_keys = {}, []
        self._write_index()

    def _write_index(self) -> None:
        tmp = self.folder / "index.json.part"
        with open(tmp, "w") as f:
            json.dump(self.index, f)
        os.replace(tmp, self.folder / "index.json")


class CachedTeacher(Teacher):
    """Targets from `cache` when present, else from the online `teacher` (the training loader's
    teacher)."""

    def __init__(self, teacher: Teacher, cache: TeacherCache):
        self.teacher, self.cache = teacher, cache
        for attr in ("name", "layers", "depth", "patch_size", "feature_dim"):
            setattr(self, attr, getattr(teacher, attr))
        self.hits = self.misses = 0

    @property
    def cache_id(self) -> str:
        return self.teacher.cache_id

    def __call__(self, request: TeacherRequest) -> TeacherTargets:
        key = cache_key(self.cache_id, request.media, request.frame_indices, tuple(request.frames.shape[-2:]))
        out = self.cache.get(key, request.frames.device)
        if out is not None:
            self.hits += 1
            return out
        self.misses += 1
        return self.teacher(request)


# -------------------------------------------------------------------- the CLI

def build_teacher(name: str, args: argparse.Namespace) -> Teacher:
    from .factory import make_teacher

    root = args.teacher_root or os.path.dirname(os.path.abspath(args.data.split(",")[0]))
    return make_teacher(name, root=root, vggt_weights=args.vggt_weights, metric_weights=args.metric_weights,
                        feature_dim=args.feature_dim, exact=not args.resampled)


def build_cache(args: argparse.Namespace) -> dict:
    """Fill the cache for every (video, frames) of the dataset. Returns counts.

    Each entry's key is computed before anything is decoded: a video is probed once (a demux) and
    its frame indices and teacher frame size follow from the sampling rule, so the many records
    about one video cost one probe, and a video is decoded only when its entry is missing
    (`decoded` counts those)."""
    from ..data.dataset import VideoQADataset
    from ..data.datasets import read_dataset
    from ..data.decode import decode_frames, probe_video
    from ..data.errors import VideoDecodeError
    from ..data.qwen_pixels import to_teacher_frames
    from ..data.sampling import FrameSampling, teacher_plan

    teacher = build_teacher(args.teacher, args)
    res = read_dataset(args.format, args.data, args.media_root)
    sampling = FrameSampling(fps=args.fps, min_frames=args.min_frames, max_frames=args.max_frames)
    ds = VideoQADataset(res.records, sampling=sampling, backend=args.backend) if res.records else None
    cache = TeacherCache(args.out, teacher.cache_id, args.feature_dtype, args.shard_size, features=args.features)
    dropped = cache.verify()
    counts = {"records": len(res.records), "invalid": len(res.errors), "computed": 0, "cached": 0,
              "skipped": 0, "decoded": 0, "recomputed_shards": len(dropped)}
    seen: set[str] = set()
    probes: dict[str, object] = {}  # media path -> VideoInfo, or the VideoDecodeError of its probe

    def planned(rec) -> tuple[str, object, list[int]]:
        """(the entry's key, the probe, the frame indices) without decoding; raises VideoDecodeError."""
        if rec.media not in probes:
            try:
                probes[rec.media] = probe_video(rec.media)
            except VideoDecodeError as err:
                probes[rec.media] = err
        info = probes[rec.media]
        if isinstance(info, VideoDecodeError):
            raise info
        indices, size = teacher_plan(rec.kind, info.num_frames, info.fps, info.height, info.width, sampling,
                                     args.teacher_longest)
        return cache_key(teacher.cache_id, rec.media_rel, indices, size), info, indices

    from ..progress import progress as progress_display

    bar = progress_display(range(len(res.records)), enabled=not args.quiet, desc=f"teacher {teacher.cache_id}",
                           unit="rec")
    for i in bar:
        rec = res.records[i]
        try:
            key, info, indices = planned(rec)
            if key in seen or key in cache:
                counts["cached"] += key not in seen
                seen.add(key)
                continue
            frames = ds.load(i) if rec.kind == "image" else decode_frames(info, indices, backend=args.backend)
        except VideoDecodeError as err:
            counts["skipped"] += 1
            logger.warning("skipping %s: %s", rec.id, err)
            continue
        counts["decoded"] += 1
        teacher_frames = to_teacher_frames(frames.data, longest=args.teacher_longest)
        actual = cache_key(teacher.cache_id, rec.media_rel, frames.indices, tuple(teacher_frames.shape[-2:]))
        if actual != key:  # the decoded frames differ from the probe (a rotated stream): key what was decoded
            logger.warning("%s: the decoded frames (%s) differ from the probe's size or indices; keyed as decoded",
                           rec.media, tuple(teacher_frames.shape[-2:]))
            key = actual
        seen.add(key)
        req = TeacherRequest(rec.id, teacher_frames, list(frames.indices), rec.extra, rec.media_rel)
        cache.add(key, teacher(req))
        counts["computed"] += 1
    cache.flush()
    counts.update(getattr(teacher, "counts", {}))  # e.g. frames / samples without a scale target
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m geovr.teachers.cache", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="annotation file (jsonl or json), or several comma-separated")
    p.add_argument("--format", default="vsi590k",
                   help="vsi590k, vlm3r or llava: one for every --data file, or one per file (comma-separated)")
    p.add_argument("--media-root", default=None, help="folder the records' video paths are relative to")
    p.add_argument("--teacher", default="synthetic", choices=["synthetic", "vggt"])
    p.add_argument("--vggt-weights", default=None, help="vggt: local VGGT-1B checkpoint (file or folder)")
    p.add_argument("--metric-weights", default=None, help="vggt: local DA3 metric folder, for the scale target")
    p.add_argument("--teacher-root", default=None, help="synthetic: the dataset folder (default: --data's)")
    p.add_argument("--feature-dim", type=at_least(1), default=1024,
                   help="feature channels: the synthetic teacher's, or VGGT's frame-attention half (default 1024)")
    p.add_argument("--resampled", action="store_true", help="synthetic: resample stored depth, no re-render")
    p.add_argument("--out", required=True, help="cache folder (created; re-running resumes)")
    p.add_argument("--feature-dtype", default="fp16", choices=sorted(FEATURE_DTYPES))
    p.add_argument("--features", default="pooled", choices=FEATURE_LAYOUTS,
                   help="store the features 2x2 pooled, as the alignment loss reads them (default; 4x smaller), "
                        "or at the teacher's full patch grid")
    p.add_argument("--shard-size", type=at_least(1), default=64, help="samples per shard (default 64)")
    p.add_argument("--fps", type=positive, default=2.0, help="frames sampled per second (as data.fps; default 2)")
    p.add_argument("--min-frames", type=at_least(1), default=4, help="as data.min_frames (default 4)")
    p.add_argument("--max-frames", type=at_least(1), default=32, help="as data.max_frames (default 32)")
    p.add_argument("--teacher-longest", type=at_least(28), default=504,
                   help="teacher frames' longest edge, a multiple of 28 (as data.teacher_longest; default 504)")
    p.add_argument("--backend", default="auto", help="video decoder (auto, pyav, dali-gpu, dali-cpu)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    check_inputs(p, "--data", args.data)
    check_output(p, "--out", args.out)
    if args.teacher_longest % 28:
        p.error(f"argument --teacher-longest: must be a multiple of 28 (the teacher's patch), got "
                f"{args.teacher_longest}")
    if args.min_frames > args.max_frames:
        p.error(f"argument --min-frames: {args.min_frames} exceeds --max-frames {args.max_frames}")
    from ..data.datasets import READERS

    bad = [f for f in args.format.split(",") if f not in READERS]
    if bad or len(args.format.split(",")) not in (1, len(args.data.split(","))):
        p.error(f"--format {args.format!r}: one of {sorted(READERS)} for every --data file, or one per file")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    counts = build_cache(args)
    print("teacher cache " + args.out + ": " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
