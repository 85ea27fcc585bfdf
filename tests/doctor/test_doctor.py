"""`python -m geovr.doctor` on this CPU machine: the checks in subprocesses (Triton kernels in the
interpreter), the table and exit status, the verdict per environment fingerprint, and the routing
of a failed path to its fallback, with kernels broken on purpose (tests/doctor/fault_site)."""
import json

import pytest
import torch

from geovr.doctor import verdict
from geovr.doctor.__main__ import main
from geovr.doctor.select import VerificationFailed, select
from geovr.losses import _backend, depth_loss, pose_loss


def test_cli_table_verdict_and_exit_status(doctor_env, capsys):
    fault, _ = doctor_env
    assert main(["--only", "align_loss", "pose_loss", "nccl", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "torch: " in out and "extension CPU only" in out and "gpu: none visible" in out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.split()[:1] in
            (["align_loss"], ["pose_loss"], ["nccl"])}
    assert rows == {"align_loss": "ok", "pose_loss": "ok", "nccl": "skipped"}
    assert "needs 2+ GPUs (0 visible)" in out
    saved = json.loads(verdict.path_for(verdict.fingerprint()).read_text())
    assert saved["fingerprint"]["kernels"] == "interpreter"
    assert {n: r["status"] for n, r in saved["checks"].items()} == rows

    fault("align", "wrong")
    assert main(["--only", "align_loss", "--quick", "--no-save"]) == 1
    out = capsys.readouterr().out
    assert "align_loss  mismatch" in out and "failed: align_loss" in out


@pytest.mark.parametrize("kind, status, why", [
    ("raise", "crashed", "RuntimeError: simulated kernel failure"),
    ("abort", "crashed", "killed by SIGABRT"),
    ("wrong", "mismatch", "trainer fp32: loss: outside rtol"),
])
def test_a_broken_kernel_is_routed_to_the_reference(doctor_env, kind, status, why, monkeypatch):
    fault, _ = doctor_env
    fault("depth", kind)
    with pytest.raises(VerificationFailed, match="Triton depth loss \\(depth_loss\\) " + status):
        select(["depth_loss"], "cpu", mode="strict")
    assert _backend.routed("depth") is None  # strict refuses; it routes nothing
    sel = select(["depth_loss"], "cpu", mode="auto")  # the recorded verdict, not a second run
    assert sel.reused and sel.results["depth_loss"].status == status and why in sel.results["depth_loss"].why
    if kind == "raise":  # a crash keeps its traceback for the report
        assert "simulated kernel failure" in sel.results["depth_loss"].log and "Traceback" in sel.results["depth_loss"].log
    assert _backend.implementation("depth", torch.device("cpu")) == "reference (fallback)"
    # forced to the kernel by the environment, the routed loss still runs its reference
    monkeypatch.setenv("GEOVR_LOSS_BACKEND", "triton")
    calls = []
    import geovr.kernels.depth_loss as kernel

    monkeypatch.setattr(kernel, "fused_depth_loss", lambda *a, **k: calls.append(1))
    pred = [torch.rand(1, 6, 7, requires_grad=True)]
    depth_loss(pred, [torch.rand(1, 6, 7)])
    assert not calls


def test_a_broken_pose_extension_is_routed_to_the_reference(doctor_env):
    fault, _ = doctor_env
    fault("pose", "wrong")
    sel = select(["pose_loss"], "cpu")
    assert sel.failed("pose_loss") and "loss vs reference" in sel.fallbacks["pose_loss"]
    assert _backend.implementation("pose", torch.device("cpu")) == "reference (fallback)"
    pred = [torch.randn(3, 9, dtype=torch.float64, requires_grad=True)]
    target = [torch.randn(3, 9, dtype=torch.float64)]
    want = pose_loss(pred, target, backend="reference")
    got = pose_loss(pred, target)  # routed: the reference, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_a_passing_verdict_is_reused_and_redone_when_the_environment_changes(doctor_env, monkeypatch):
    fault, starts = doctor_env
    fault("align", "count")  # each check process appends a line
    first = select(["align_loss"], "cpu")
    assert not first.reused and first.results["align_loss"].passed and starts() == 1
    assert select(["align_loss"], "cpu").reused and starts() == 1
    real = verdict.fingerprint()
    for part, value in (("driver", "999.1"), ("extension", "0" * 16), ("sources", "f" * 16), ("torch", "9.9")):
        monkeypatch.setattr(verdict, "fingerprint", lambda part=part, value=value: {**real, part: value})
        assert not select(["align_loss"], "cpu").reused, part
    assert starts() == 5
    assert select(["align_loss"], "cpu", mode="off").results == {}
    assert starts() == 5


def test_a_corrupt_or_foreign_verdict_is_not_trusted(doctor_env):
    fp = verdict.fingerprint()
    path = verdict.path_for(fp)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert verdict.load(fp) == {}
    path.write_text(json.dumps({"fingerprint": {**fp, "torch": "other"}, "checks": {
        "align_loss": {"name": "align_loss", "status": "ok"}}}))
    assert verdict.load(fp) == {}


def test_the_collective_checks_logic_over_gloo():
    """The nccl / fsdp checks' workers, on 2 CPU processes over gloo: the all-reduce is exact and one
    FSDP2 step equals DDP's (on GPUs the doctor runs them over NCCL on every GPU)."""
    from geovr.doctor.checks import FSDP_TOL, collectives

    reduce_err, fsdp_err = collectives("cpu", 2)
    assert reduce_err == 0 and fsdp_err <= FSDP_TOL
