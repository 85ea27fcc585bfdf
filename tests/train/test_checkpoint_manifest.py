"""Checkpoints that prove themselves: every file's size and SHA-256 in a manifest written before
the folder is complete; a resume checks them. Damage (a truncated file, bytes changed in place, a
removed file, a damaged manifest) is detected: --resume auto falls back to the newest whole
checkpoint and its run equals one resumed from that checkpoint undamaged; an explicit folder is an
error naming the file; a full disk stops the run with one message and leaves the earlier
checkpoints whole."""
import errno
import json
import logging

import pytest
import torch

from geovr.parallel.data_parallel import World
from geovr.train.checkpoint import Checkpointer, CheckpointDamaged, CheckpointWriteError
from geovr.train.fsdp_loop import FSDPTrainer
from geovr.train.loop import Trainer
from geovr.train.manifest import MANIFEST, file_digest
from train_helpers import losses, small_config

WORLD = World(0, 1, 0, torch.device("cpu"))


def _data_file(ckpt):
    return max((p for p in ckpt.iterdir() if p.suffix == ".distcp"), key=lambda p: p.stat().st_size)


def _truncate(ckpt):
    f = _data_file(ckpt)
    f.write_bytes(f.read_bytes()[:-100])
    return f.name


def _flip(ckpt):  # a few bytes changed in the middle of the data, the size kept
    f = _data_file(ckpt)
    data = bytearray(f.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 4):
        data[i] ^= 0x5A
    f.write_bytes(bytes(data))
    return f.name


def _remove(ckpt):
    (ckpt / "rank_00000.pt").unlink()
    return "rank_00000.pt"


def _manifest_json(ckpt):
    (ckpt / MANIFEST).write_text((ckpt / MANIFEST).read_text()[:-20])
    return MANIFEST


def _manifest_entry(ckpt):  # valid JSON, one digest changed: the manifest's own digest no longer matches
    data = json.loads((ckpt / MANIFEST).read_text())
    name = sorted(data["files"])[0]
    data["files"][name]["sha256"] = "0" * 64
    (ckpt / MANIFEST).write_text(json.dumps(data))
    return MANIFEST


DAMAGE = {"truncated": _truncate, "changed in place": _flip, "removed": _remove,
          "manifest not json": _manifest_json, "manifest entry": _manifest_entry}


def _tiny_checkpoints(folder):
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 8)).sum().backward()
    opt.step()
    ck = Checkpointer(folder, WORLD, keep=3)
    for step in (2, 4):
        ck.save(step, model, opt, {"note": step})
    return ck


def test_the_manifest_lists_every_file_with_its_sha256(tmp_path):
    ck = _tiny_checkpoints(tmp_path)
    step = ck.latest()
    files = json.loads((step / MANIFEST).read_text())["files"]
    on_disk = sorted(p.name for p in step.iterdir() if p.name != MANIFEST)
    assert sorted(files) == on_disk and "trainer_state.json" in files and ".metadata" in files
    for name, entry in files.items():
        assert entry == {"size": (step / name).stat().st_size, "sha256": file_digest(step / name)}
    assert ck.check(step) == [] and {"write_s", "hash_s", "verify_s"} <= set(ck.timings)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damage_is_found_and_auto_falls_back(tmp_path, kind, caplog):
    ck = _tiny_checkpoints(tmp_path)
    name = DAMAGE[kind](tmp_path / "step_00000004")
    with caplog.at_level(logging.WARNING, logger="geovr"):
        assert ck.resolve("auto") == tmp_path / "step_00000002"
    assert ck.skipped == ["step_00000004"]
    assert f"step_00000004 is damaged and skipped" in caplog.text and name in caplog.text
    assert "trying step_00000002" in caplog.text
    with pytest.raises(CheckpointDamaged, match=f"step_00000004 is damaged: .*{name}.*--resume-unverified"):
        Checkpointer(tmp_path, WORLD).resolve(str(tmp_path / "step_00000004"))
    brave = Checkpointer(tmp_path, WORLD, resume_unverified=True)
    assert brave.resolve(str(tmp_path / "step_00000004")) == tmp_path / "step_00000004"


def test_every_checkpoint_damaged_is_an_error_and_unverified_ones_load_with_a_warning(tmp_path, caplog):
    ck = _tiny_checkpoints(tmp_path)
    _flip(tmp_path / "step_00000004")
    _flip(tmp_path / "step_00000002")
    with pytest.raises(CheckpointDamaged, match="every checkpoint under .* is damaged .*--resume none"):
        ck.resolve("auto")
    assert Checkpointer(tmp_path, WORLD, verify=False).resolve("auto") == tmp_path / "step_00000004"
    (tmp_path / "step_00000004" / MANIFEST).unlink()  # as written before manifests existed
    with caplog.at_level(logging.WARNING, logger="geovr"):
        assert Checkpointer(tmp_path, WORLD).resolve("auto") == tmp_path / "step_00000004"
    assert "has no manifest" in caplog.text


@pytest.mark.parametrize("trainer_cls, kind", [(Trainer, k) for k in sorted(DAMAGE)] + [(FSDPTrainer, "changed in place")],
                         ids=[f"ddp-{k}" for k in sorted(DAMAGE)] + ["fsdp-changed in place"])
def test_a_run_resumed_past_a_damaged_checkpoint_equals_one_resumed_from_the_earlier(synthetic_root, tmp_path,
                                                                                   trainer_cls, kind):
    def run(out, steps, resume="none"):
        cfg = small_config(synthetic_root, out, steps=steps, global_batch=2, micro_batch=2)
        cfg.checkpoint.every, cfg.checkpoint.resume = 2, resume
        trainer = trainer_cls(cfg)
        try:
            return trainer.train(), trainer
        finally:
            trainer.close()

    run(tmp_path / "a", 4)
    clean = tmp_path / "b" / "checkpoints"
    clean.mkdir(parents=True)
    import shutil

    shutil.copytree(tmp_path / "a" / "checkpoints" / "step_00000002", clean / "step_00000002")
    DAMAGE[kind](tmp_path / "a" / "checkpoints" / "step_00000004")
    summary, trainer = run(tmp_path / "a", 6, resume="auto")
    assert trainer.resumed_at == 2 and summary["checkpoint/skipped_damaged"] == 1
    run(tmp_path / "b", 6, resume=str(clean / "step_00000002"))
    got, want = losses(tmp_path / "a"), losses(tmp_path / "b")
    for step in (3, 4, 5, 6):
        assert got[step]["loss"] == want[step]["loss"], step


def test_a_full_disk_stops_the_run_with_one_message(synthetic_root, tmp_path, monkeypatch):
    cfg = small_config(synthetic_root, tmp_path / "run", steps=4, global_batch=2, micro_batch=2)
    cfg.checkpoint.every = 2
    real = Checkpointer._write
    calls = []

    def fill_up(self, folder, model, optimizer):
        calls.append(folder)
        if len(calls) == 2:
            (folder / "partial.distcp").write_bytes(b"x" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, folder, model, optimizer)

    monkeypatch.setattr(Checkpointer, "_write", fill_up)
    trainer = Trainer(cfg)
    with pytest.raises(CheckpointWriteError) as err:
        trainer.train()
    trainer.close()
    msg = str(err.value)
    assert "checkpoint step_00000004 could not be written" in msg and "No space left on device" in msg
    assert "GB free there" in msg and "the last checkpoint took" in msg and "step_00000002" in msg
    assert "--resume auto" in msg
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_00000002"]  # the partial folder removed
    assert Checkpointer(folder, WORLD).check(folder / "step_00000002") == []


def test_export_checks_the_checkpoint(synthetic_root, tmp_path, capsys, caplog):
    from geovr.export import main as export_main

    cfg = small_config(synthetic_root, tmp_path / "run", steps=2, global_batch=2, micro_batch=2)
    trainer = Trainer(cfg)
    trainer.train()
    trainer.close()
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000002"
    name = _flip(ckpt)
    assert export_main(["--ckpt", str(ckpt), "--out", str(tmp_path / "out")]) == 2
    assert f"{name}: its sha256 differs" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING, logger="geovr"):
        export_main(["--ckpt", str(ckpt), "--out", str(tmp_path / "out"), "--unverified"])  # the flip may break the load
    assert f"--unverified: using {ckpt} despite" in caplog.text and "is damaged" not in capsys.readouterr().err


def test_a_failure_in_any_part_of_a_save_is_one_error_and_no_partial_folder(tmp_path, monkeypatch):
    import geovr.train.checkpoint as checkpoint

    ck = _tiny_checkpoints(tmp_path)
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.AdamW(model.parameters())

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "write_manifest", full)
    with pytest.raises(CheckpointWriteError, match="step_00000006 could not be written.*No space left.*step_00000004"):
        ck.save(6, model, opt, {})
    monkeypatch.undo()
    monkeypatch.setattr(checkpoint.os, "replace", full)
    with pytest.raises(CheckpointWriteError, match="step_00000008 could not be written"):
        ck.save(8, model, opt, {})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000002", "step_00000004"]
