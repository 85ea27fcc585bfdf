// Dispatcher of the pose loss on the tensors' device: checks, dtype, then the CPU or CUDA path.
// The CUDA path needs no torch CUDA header or library: the device guard and the current stream
// come through c10's device-generic interface (libc10, present in every torch build), so this file
// and the module link against a CPU torch too, and CI builds the CUDA extension without a GPU.
#include <torch/extension.h>

#include "ops.h"
#include "pose_loss_cpu.h"
#ifdef WITH_CUDA
#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "pose_loss_cuda.h"
#endif

namespace geovr {

namespace {

torch::Tensor compute_dtype(const torch::Tensor& x) {
  return (x.scalar_type() == torch::kDouble ? x : x.to(torch::kFloat)).contiguous();
}

void check_inputs(const torch::Tensor& pred, const torch::Tensor& target, const torch::Tensor& offsets,
                  int64_t mode) {
  TORCH_CHECK(pred.dim() == 2 && pred.size(1) == 9, "pred: expected [N, 9], got ", pred.sizes());
  TORCH_CHECK(target.sizes() == pred.sizes(), "target: shape ", target.sizes(), " differs from pred ",
              pred.sizes());
  TORCH_CHECK(pred.is_floating_point() && target.is_floating_point(),
              "pred/target: expected floating tensors");
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) >= 2 && offsets.scalar_type() == torch::kLong,
              "offsets: expected int64 [B + 1] with B >= 1");
  TORCH_CHECK(pred.device() == target.device() && pred.device() == offsets.device(),
              "pred, target and offsets must be on one device");
  TORCH_CHECK(mode >= 0 && mode <= 2, "mode: expected 0 (paper), 1 (geodesic) or 2 (relative)");
}

#ifdef WITH_CUDA
// The current CUDA stream of `device` as a cudaStream_t (void*), from c10's device-generic guard.
void* current_stream(const c10::Device& device) {
  return c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStream(device).native_handle();
}
#endif

// The CUDA entry points' own checks: a build with CUDA, and every input on one CUDA device.
void check_cuda(const char* op, const torch::Tensor& pred, const torch::Tensor& target,
                const torch::Tensor& offsets) {
#ifndef WITH_CUDA
  TORCH_CHECK(false, op, ": geovr._ext was built without CUDA; rebuild with FORCE_CUDA=1 (see README)");
#endif
  TORCH_CHECK(pred.is_cuda() && target.is_cuda() && offsets.is_cuda(), op,
              ": the CUDA pose loss takes CUDA tensors, got pred on ", pred.device(), ", target on ",
              target.device(), ", offsets on ", offsets.device(),
              "; pose_loss_forward/pose_loss_backward dispatch on the device");
}

// Float64 stays float64; other float types compute in float32 (target and grad_parts alike).
struct Prepared {
  torch::Tensor p, t, off;
  int64_t batch;
};

Prepared prepare(const torch::Tensor& pred, const torch::Tensor& target, const torch::Tensor& offsets,
                 int64_t mode) {
  check_inputs(pred, target, offsets, mode);
  auto p = compute_dtype(pred);
  return {p, target.to(p.scalar_type()).contiguous(), offsets.contiguous(), offsets.size(0) - 1};
}

torch::Tensor grad_of_parts(const torch::Tensor& grad_parts, const Prepared& x) {
  TORCH_CHECK(grad_parts.dim() == 2 && grad_parts.size(0) == x.batch && grad_parts.size(1) == 3,
              "grad_parts: expected [B, 3]");
  return grad_parts.to(x.p.scalar_type()).contiguous();
}

}  // namespace

int64_t pose_cpu_grain(const torch::Tensor& offsets, int64_t mode) {
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) >= 2 && offsets.scalar_type() == torch::kLong &&
                  offsets.device().is_cpu(),
              "offsets: expected int64 [B + 1] on the CPU with B >= 1");
  auto o = offsets.contiguous();
  return cpu::sample_grain(o.data_ptr<int64_t>(), o.size(0) - 1, static_cast<int>(mode));
}

torch::Tensor pose_loss_forward_cuda(const torch::Tensor& pred, const torch::Tensor& target,
                                     const torch::Tensor& offsets, int64_t mode, double clamp,
                                     double huber) {
  check_cuda("pose_loss_forward_cuda", pred, target, offsets);
  auto x = prepare(pred, target, offsets, mode);
  auto parts = torch::zeros({x.batch, 3}, x.p.options());
#ifdef WITH_CUDA
  const c10::DeviceGuard guard(x.p.device());
  AT_DISPATCH_FLOATING_TYPES(x.p.scalar_type(), "geovr_pose_loss_forward_cuda", [&] {
    cuda::pose_loss_forward<scalar_t>(x.p.data_ptr<scalar_t>(), x.t.data_ptr<scalar_t>(),
                                      x.off.data_ptr<int64_t>(), x.batch, x.p.size(0), (int)mode,
                                      (scalar_t)clamp, (scalar_t)huber, parts.data_ptr<scalar_t>(),
                                      current_stream(x.p.device()));
  });
#endif
  return parts;
}

torch::Tensor pose_loss_backward_cuda(const torch::Tensor& pred, const torch::Tensor& target,
                                      const torch::Tensor& offsets, const torch::Tensor& grad_parts,
                                      int64_t mode, double clamp, double huber) {
  check_cuda("pose_loss_backward_cuda", pred, target, offsets);
  auto x = prepare(pred, target, offsets, mode);
  auto g = grad_of_parts(grad_parts, x);
  auto grad = torch::zeros_like(x.p);
#ifdef WITH_CUDA
  const c10::DeviceGuard guard(x.p.device());
  AT_DISPATCH_FLOATING_TYPES(x.p.scalar_type(), "geovr_pose_loss_backward_cuda", [&] {
    cuda::pose_loss_backward<scalar_t>(x.p.data_ptr<scalar_t>(), x.t.data_ptr<scalar_t>(),
                                       x.off.data_ptr<int64_t>(), x.batch, x.p.size(0), (int)mode,
                                       (scalar_t)clamp, (scalar_t)huber, g.data_ptr<scalar_t>(),
                                       grad.data_ptr<scalar_t>(), current_stream(x.p.device()));
  });
#endif
  return grad;
}

torch::Tensor pose_loss_forward(const torch::Tensor& pred, const torch::Tensor& target,
                                const torch::Tensor& offsets, int64_t mode, double clamp,
                                double huber) {
  if (pred.is_cuda()) return pose_loss_forward_cuda(pred, target, offsets, mode, clamp, huber);
  auto x = prepare(pred, target, offsets, mode);
  auto parts = torch::zeros({x.batch, 3}, x.p.options());
  AT_DISPATCH_FLOATING_TYPES(x.p.scalar_type(), "geovr_pose_loss_forward", [&] {
    cpu::pose_loss_forward<scalar_t>(x.p.data_ptr<scalar_t>(), x.t.data_ptr<scalar_t>(),
                                     x.off.data_ptr<int64_t>(), x.batch, (int)mode, (scalar_t)clamp,
                                     (scalar_t)huber, parts.data_ptr<scalar_t>());
  });
  return parts;
}

torch::Tensor pose_loss_backward(const torch::Tensor& pred, const torch::Tensor& target,
                                 const torch::Tensor& offsets, const torch::Tensor& grad_parts,
                                 int64_t mode, double clamp, double huber) {
  if (pred.is_cuda()) return pose_loss_backward_cuda(pred, target, offsets, grad_parts, mode, clamp, huber);
  auto x = prepare(pred, target, offsets, mode);
  auto g = grad_of_parts(grad_parts, x);
  auto grad = torch::zeros_like(x.p);
  AT_DISPATCH_FLOATING_TYPES(x.p.scalar_type(), "geovr_pose_loss_backward", [&] {
    cpu::pose_loss_backward<scalar_t>(x.p.data_ptr<scalar_t>(), x.t.data_ptr<scalar_t>(),
                                      x.off.data_ptr<int64_t>(), x.batch, (int)mode, (scalar_t)clamp,
                                      (scalar_t)huber, g.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>());
  });
  return grad;
}

}  // namespace geovr
