"""What real GPUs and shapes bring to the kernels, checked here: every case the doctor runs on a
user's GPU (non-contiguous and stride-0 inputs, a stride-0 upstream gradient, odd sizes, masks with NaN targets, two launches in
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


def test_a_sample_past_int32_pixel_indices_is_refused_before_any_launch():
    from geovr.losses import depth_loss

    huge = torch.zeros((), device=DEVICE).expand(1, 2**16, 2**15 - 255)  # 2^31 - 2^24 + 2^16 pixels, no memory
    with pytest.raises(ValueError, match="pred\\[0\\]: 2,130,771,968 pixels in one sample exceed the fused kernel's "
                                         "2,130,706,432"):
        depth_loss([huge], [huge], backend="triton", checked=False)


@pytest.mark.gpu
def test_a_sample_past_2_31_elements_is_addressed_in_int64():
    """Two samples packed back to back (about 60 GB of GPU memory in all), the second starting
    2^31 - 2^24 elements in (the most one sample may hold) and ending past 2^31: its addresses pass
    int32. Its gradient equals the reference's on it alone (x 1/2: the mean over the 2 samples)."""
    from geovr.losses import depth_loss

    pred0 = torch.ones(2032, 1024, 1024, device="cuda", requires_grad=True)  # 2^31 - 2^24 pixels
    g = torch.Generator(device="cuda").manual_seed(0)
    pred1 = (torch.rand(4, 2048, 2560, device="cuda", generator=g) * 4 + 0.1).requires_grad_()  # 21M
    target1 = torch.rand(4, 2048, 2560, device="cuda", generator=g) * 4 + 0.1
    loss = depth_loss([pred0, pred1], [torch.ones_like(pred0), target1], backend="triton")[0]
    got = torch.autograd.grad(loss, pred1)[0]
    want = torch.autograd.grad(depth_loss([pred1], [target1], backend="reference")[0] / 2, pred1)[0]
    torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5 * float(want.abs().max()))


@pytest.mark.gpu
def test_alignment_rows_past_2_31_statistics_are_addressed_in_int64():
    """800M rows of one channel (about 35 GB in all): their 3 statistics per row pass 2^31 elements
    at 716M rows (int32 offsets there wrote and read elsewhere); loss and gradient as the math says."""
    from geovr.losses import align_loss

    r = 800_000_000
    g = torch.Generator(device="cuda").manual_seed(0)
    student = torch.randn(r, 1, device="cuda", generator=g).requires_grad_()
    teacher = torch.randn(r, 1, device="cuda", generator=g)
    got = align_loss([[student]], [[teacher]], backend="triton", checked=False)
    (grad,) = torch.autograd.grad(got, student)
    # cos of one channel is the sign product: the loss is the mean of 1 - sign(s) sign(t), the
    # gradient 0 (|s| cancels), computed here without the reference's temporaries
    want = (1 - torch.sign(student.detach()) * torch.sign(teacher)).double().mean()
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    assert float(grad[-1000:].abs().max()) < 1e-6 and float(grad[:1000].abs().max()) < 1e-6
