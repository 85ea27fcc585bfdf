"""What real GPUs and shapes bring to the kernels, checked here: every case the doctor runs on a
user's GPU (non-contiguous and stride-0 inputs, odd sizes, masks with NaN targets, two launches in
a row, half types) passes on this device; no kernel that accumulates with atomics is autotuned (a
tuning run would launch it twice into the same buffers); bf16 reads as fp32 below sm_80."""
import pytest
import torch

from geovr.doctor.checks import align_cases, depth_cases, depth_inputs, pose_cases
from geovr.doctor.compare import compare_depth
from geovr.losses._backend import kernel_dtype

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CASES = {f"{op} {name}": case for op, cases in (("depth", depth_cases), ("align", align_cases), ("pose", pose_cases))
         for name, case in cases(DEVICE, quick=False)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_doctor_case(name):
    got = CASES[name]()
    assert got.ok, got.failure


def test_no_atomic_kernel_is_autotuned():
    from triton.runtime.autotuner import Autotuner, Heuristics

    from geovr.kernels.aot import all_specs

    kernels = {spec[1] for spec in all_specs()}
    assert len(kernels) >= 8 and not any(isinstance(k, (Autotuner, Heuristics)) for k in kernels), kernels


def test_bf16_is_read_as_fp32_below_sm80(monkeypatch):
    cuda = torch.device("cuda")
    assert kernel_dtype(cuda, torch.bfloat16, (7, 5)) == torch.float32  # T4
    assert kernel_dtype(cuda, torch.bfloat16, (7, 0)) == torch.float32  # V100
    assert kernel_dtype(cuda, torch.bfloat16, (8, 0)) == torch.bfloat16
    assert kernel_dtype(cuda, torch.float16, (7, 0)) == torch.float16
    assert kernel_dtype(torch.device("cpu"), torch.bfloat16) == torch.bfloat16
    # the launcher's fp32 path on bf16 inputs: values of the reference, gradients in bf16 within an ulp
    import geovr.kernels.depth_loss as kernel

    monkeypatch.setattr(kernel, "kernel_dtype", lambda device, dtype: torch.float32)
    pred, target = depth_inputs([(2, 20, 30)], DEVICE, torch.bfloat16, outliers=0.02, seed=9)
    got = compare_depth(pred, target)
    assert got.ok, got.failure


def test_extents_past_int32_indices_are_refused_before_any_launch():
    from geovr.losses import align_loss, depth_loss

    huge = torch.zeros((), device=DEVICE).expand(1, 2**16, 2**15)  # 2^31 pixels in one sample, no memory
    with pytest.raises(ValueError, match="pred\\[0\\]: 2,147,483,648 pixels in one sample exceed"):
        depth_loss([huge], [huge], backend="triton", checked=False)
    rows = torch.zeros((), device=DEVICE).expand(2**30, 8)  # 3 x 2^30 stats offsets
    with pytest.raises(ValueError, match="student: 3,221,225,472 row statistics"):
        align_loss([[rows]], [[rows]], backend="triton", checked=False)


@pytest.mark.gpu
def test_a_sample_past_2_31_elements_is_addressed_in_int64():
    """Two samples packed back to back (about 56 GB of GPU memory in all), the second starting
    2^31 - 2^20 elements in and ending past 2^31: its addresses pass int32. Its gradient equals the
    reference's on it alone (x 1/2: the mean over the 2 samples)."""
    from geovr.losses import depth_loss

    pred0 = torch.ones(2047, 1024, 1024, device="cuda", requires_grad=True)  # 2^31 - 2^20 pixels
    g = torch.Generator(device="cuda").manual_seed(0)
    pred1 = (torch.rand(2, 512, 1100, device="cuda", generator=g) * 4 + 0.1).requires_grad_()
    target1 = torch.rand(2, 512, 1100, device="cuda", generator=g) * 4 + 0.1
    loss = depth_loss([pred0, pred1], [torch.ones_like(pred0), target1], backend="triton")[0]
    got = torch.autograd.grad(loss, pred1)[0]
    want = torch.autograd.grad(depth_loss([pred1], [target1], backend="reference")[0] / 2, pred1)[0]
    torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5 * float(want.abs().max()))
