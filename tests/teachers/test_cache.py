"""The teacher-target cache: exact round trip, one entry per (video, frames), resume after a real
kill, corrupt shards detected (readers fall back to the online teacher; the CLI recomputes)."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from geovr.data.datasets import read_vsi590k
from geovr.data.sampling import sample_indices
from geovr.data.synthetic import WorldConfig, generate
from geovr.teachers import SyntheticTeacher, TeacherRequest
from geovr.teachers.base import pool_features
from geovr.teachers.cache import CachedTeacher, TeacherCache, cache_key, main

CFG = WorldConfig(height=96, width=128, fps=4.0, seconds=2.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn_cache")
    generate(out, scenes=3, seed=2, cfg=CFG, progress=False)
    return out


def args(data, out, *extra):
    return ["--data", str(data / "train.jsonl"), "--out", str(out), "--feature-dim", "16", "--resampled",
            "--backend", "pyav", "--quiet", *extra]


def test_round_trip_and_dedup(data, tmp_path, capsys):
    out = tmp_path / "cache"
    assert main(args(data, out, "--shard-size", "2")) == 0
    assert "records" in capsys.readouterr().out
    recs = read_vsi590k(str(data / "train.jsonl")).records
    cache = TeacherCache(out)
    assert len(cache) == 3  # three videos, many questions each: one entry per (video, frames)
    teacher = SyntheticTeacher(data, feature_dim=16, exact=False)
    from geovr.data.dataset import VideoQADataset
    from geovr.data.qwen_pixels import to_teacher_frames

    ds = VideoQADataset(recs, backend="pyav")
    frames = ds.load(0)
    tf = to_teacher_frames(frames.data)
    req = TeacherRequest(recs[0].id, tf, frames.indices, recs[0].extra, recs[0].media_rel)
    online = teacher(req)
    cached = cache.get(cache_key(teacher.cache_id, recs[0].media_rel, frames.indices, tuple(tf.shape[-2:])))
    assert cached is not None
    assert torch.equal(cached.pose_enc, online.pose_enc) and torch.equal(cached.depth, online.depth)
    assert torch.equal(cached.scale, online.scale)
    assert cached.features_pooled and not online.features_pooled
    for layer, f in online.features.items():
        assert torch.equal(cached.features[layer], pool_features(f).half().float())  # pooled in fp32, stored fp16
        assert cached.features[layer].shape[1:3] == (f.shape[1] // 2, f.shape[2] // 2)
        torch.testing.assert_close(cached.pooled(layer), online.pooled(layer), rtol=1e-3, atol=1e-3)
    wrapped = CachedTeacher(teacher, cache)
    assert torch.equal(wrapped(req).depth, online.depth) and (wrapped.hits, wrapped.misses) == (1, 0)
    with pytest.raises(ValueError, match=r"holds targets of teacher .*\(another teacher\)"):
        TeacherCache(out, teacher_id="vggt-1b")
    other = teacher.cache_id.replace(f"-c{teacher.feature_dim}-", "-c64-")
    with pytest.raises(ValueError, match=rf"c{teacher.feature_dim} in the cache, c64 here\): .*--feature-dim"):
        TeacherCache(out, teacher_id=other)  # the tiny job's teacher against a cache of another width


def test_resume_after_kill(data, tmp_path):
    out = tmp_path / "cache"
    cmd = [sys.executable, "-m", "geovr.teachers.cache", *args(data, out, "--shard-size", "1")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first, index = out / "shard_00000.safetensors", out / "index.json"

    def entries() -> int:  # the index is replaced atomically: it is whole or absent
        return len(json.loads(index.read_text())["entries"]) if index.exists() else 0

    deadline = time.time() + 120
    while entries() < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard_*.safetensors")}
    done = len(json.loads((out / "index.json").read_text())["entries"])
    assert 1 <= done <= 3
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"computed {3 - done}, cached {done}" in rerun.stdout
    assert len(TeacherCache(out)) == 3 and not list(out.glob("*.part"))
    for name, mtime in before.items():
        assert (out / name).stat().st_mtime_ns == mtime  # finished shards were not redone


def test_corrupt_shard_is_detected_and_recomputed(data, tmp_path, caplog):
    out = tmp_path / "cache"
    main(args(data, out, "--shard-size", "1"))
    shard = out / "shard_00001.safetensors"
    blob = bytearray(shard.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    shard.write_bytes(bytes(blob))
    cache = TeacherCache(out)
    key = next(k for k, s in cache.index["entries"].items() if s == shard.name)
    with caplog.at_level("WARNING", logger="geovr.teachers"):
        assert cache.get(key) is None
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    recs = read_vsi590k(str(data / "train.jsonl")).records
    teacher = SyntheticTeacher(data, feature_dim=16, exact=False)
    wrapped = CachedTeacher(teacher, cache)
    idx = sample_indices(CFG.n_frames, CFG.fps)
    rec = next(r for r in recs if cache_key(teacher.cache_id, r.media_rel, idx, (392, 504)) == key)
    req = TeacherRequest(rec.id, torch.rand(len(idx), 3, 392, 504), idx, rec.extra, rec.media_rel)
    assert wrapped(req).depth.shape == (len(idx), 392, 504) and wrapped.misses == 1  # fell back to the teacher
    assert main(args(data, out, "--shard-size", "1")) == 0
    fixed = TeacherCache(out)
    assert len(fixed) == 3 and fixed.get(key) is not None and not fixed.verify()


def test_full_features_on_request_and_one_kind_per_folder(data, tmp_path):
    full, pooled = tmp_path / "full", tmp_path / "pooled"
    assert main(args(data, full, "--features", "full")) == 0
    assert main(args(data, pooled)) == 0
    recs = read_vsi590k(str(data / "train.jsonl")).records
    teacher = SyntheticTeacher(data, feature_dim=16, exact=False)
    from geovr.data.dataset import VideoQADataset
    from geovr.data.qwen_pixels import to_teacher_frames

    frames = VideoQADataset(recs, backend="pyav").load(0)
    tf = to_teacher_frames(frames.data)
    key = cache_key(teacher.cache_id, recs[0].media_rel, frames.indices, tuple(tf.shape[-2:]))
    online = teacher(TeacherRequest(recs[0].id, tf, frames.indices, recs[0].extra, recs[0].media_rel))
    got = TeacherCache(full).get(key)
    assert not got.features_pooled
    for layer, f in online.features.items():
        assert torch.equal(got.features[layer], f.half().float())
        assert torch.equal(got.pooled(layer), pool_features(f.half().float()))
    feature_bytes = lambda folder: sum(  # noqa: E731
        t.numel() * t.element_size() for layer in online.features
        for t in [TeacherCache(folder).get(key).features[layer]])
    assert feature_bytes(full) == 4 * feature_bytes(pooled)
    with pytest.raises(ValueError, match="stores full features"):
        TeacherCache(full, features="pooled")
    with pytest.raises(ValueError, match="features must be one of"):
        TeacherCache(tmp_path / "x", features="half")
    legacy = json.loads((full / "index.json").read_text())
    del legacy["features"]  # a cache written before the field: full features
    (full / "index.json").write_text(json.dumps(legacy))
    assert not TeacherCache(full).pooled



def test_each_video_is_decoded_once_and_a_full_cache_decodes_nothing(data, tmp_path, monkeypatch, capsys):
    """The key of an entry comes from the video's probe and the sampling rule: the many records
    about a video cost one decode, and a re-run over a full cache decodes nothing."""
    import geovr.data.decode as decode

    calls = []
    real = decode.decode_frames
    monkeypatch.setattr(decode, "decode_frames", lambda info, *a, **k: calls.append(info.path) or real(info, *a, **k))
    out = tmp_path / "cache"
    assert main(args(data, out)) == 0
    printed = capsys.readouterr().out
    records = len(read_vsi590k(str(data / "train.jsonl")).records)
    assert records > 3 and f"records {records}," in printed
    assert "computed 3," in printed and "decoded 3," in printed and sorted(set(calls)) == sorted(calls)
    assert len(calls) == 3
    calls.clear()
    assert main(args(data, out)) == 0
    printed = capsys.readouterr().out
    assert calls == [] and "decoded 0," in printed and "cached 3," in printed


@pytest.mark.parametrize("feature_dim,exact", [(64, False), (1024, True)])
def test_the_id_from_settings_is_the_built_teachers(data, feature_dim, exact):
    """`teacher_cache_id` (what `python -m geovr.train.check_run` compares a cache with, no teacher
    built) equals the id of the teacher `make_teacher` builds from the same settings."""
    from geovr.teachers.factory import make_teacher, teacher_cache_id

    built = make_teacher("synthetic", root=str(data), feature_dim=feature_dim, exact=exact)
    assert teacher_cache_id("synthetic", feature_dim=feature_dim, exact=exact) == built.cache_id
    with pytest.raises(ValueError, match="vggt_weights"):
        teacher_cache_id("vggt")
