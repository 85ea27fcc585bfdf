"""Bad input raises a ValueError that names the argument and what was expected."""
import pytest
import torch

from geovr.losses import align_loss, depth_loss, pose_loss, scale_loss, scale_target


def _d(*shape):
    return torch.rand(*shape) + 0.1


@pytest.mark.parametrize("call, match", [
    (lambda: depth_loss([], []), r"pred: the batch is empty"),
    (lambda: depth_loss(_d(2, 3, 4), _d(2, 3, 4)), r"pred: expected a list"),
    (lambda: depth_loss([_d(2, 3, 4)], [_d(2, 3, 5)]), r"target\[0\]: shape \(2, 3, 5\) differs"),
    (lambda: depth_loss([_d(2, 3, 4)], [_d(2, 3, 4), _d(2, 3, 4)]), r"target: 2 samples, but pred has 1"),
    (lambda: depth_loss([_d(3, 4)], [_d(3, 4)]), r"pred\[0\]: expected shape \[T, H, W\]"),
    (lambda: depth_loss([torch.ones(1, 2, 2, dtype=torch.int64)], [_d(1, 2, 2)]), r"pred\[0\]: expected a floating dtype"),
    (lambda: depth_loss([_d(1, 2, 2)], [torch.full((1, 2, 2), float("nan"))]), r"target\[0\]: contains NaN or inf; pass valid_mask"),
    (lambda: depth_loss([torch.full((1, 2, 2), float("inf"))], [_d(1, 2, 2)], [torch.ones(1, 2, 2, dtype=torch.bool)]), r"pred\[0\]: contains NaN"),
    (lambda: depth_loss([_d(1, 2, 2)], [_d(1, 2, 2)], [torch.ones(1, 2, 2)]), r"valid_mask\[0\]: expected a bool tensor"),
    (lambda: depth_loss([_d(1, 2, 2)], [_d(1, 2, 2)], backend="cuda"), r"backend: expected one of"),
    (lambda: align_loss([[_d(3, 4)]], [[_d(3, 5)]]), r"teacher\[0\]\[0\]: shape \(3, 5\) differs"),
    (lambda: align_loss([[_d(3, 4)], [_d(2, 4)]], [[_d(3, 4)], [_d(2, 4)]]), r"student\[1\]: per-sample shapes"),
    (lambda: align_loss([[_d(3, 4)]], [[_d(3, 4)], [_d(3, 4)]]), r"teacher: 2 layers, but student has 1"),
    (lambda: align_loss([], []), r"student: expected a non-empty list"),
    (lambda: pose_loss([_d(3, 9)], [_d(4, 9)]), r"target\[0\]: shape \(4, 9\) differs"),
    (lambda: scale_loss(_d(3), _d(2)), r"target: shape \(2,\) differs"),
    (lambda: scale_loss(_d(3, 1), _d(3, 1)), r"pred: expected a floating Tensor\[B\]"),
    (lambda: scale_target([_d(1, 2, 2)], [_d(1, 2, 3)], [_d(1, 2, 3)]), r"metric_depth\[0\]: shape"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_triton_backend_on_cpu_needs_the_interpreter(monkeypatch):
    from geovr.losses import _backend

    # as if the interpreter were off (not by the environment: Triton reads TRITON_INTERPRET once and
    # keeps it, which broke every later kernel test of the session)
    monkeypatch.setattr(_backend, "interpreting", lambda: False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        _backend.use_kernel("triton", torch.device("cpu"), torch.float32)
    monkeypatch.setenv("GEOVR_LOSS_BACKEND", "reference")
    assert not _backend.use_kernel(None, torch.device("cuda"), torch.float32)
    monkeypatch.setenv("GEOVR_LOSS_BACKEND", "auto")
    assert _backend.use_kernel(None, torch.device("cuda"), torch.float32) == _backend.triton_available()
    assert not _backend.use_kernel(None, torch.device("cuda"), torch.float64)
    assert not _backend.use_kernel(None, torch.device("cpu"), torch.float32)
