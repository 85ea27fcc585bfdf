// Dispatcher of the pose loss on the tensors' device: checks, dtype, then the CPU or CUDA path.
#include <torch/extension.h>

#include "ops.h"
#include "pose_loss_cpu.h"
#ifdef WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

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

}  // namespace

int64_t pose_cpu_grain(const torch::Tensor& offsets, int64_t mode) {
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) >= 2 && offsets.scalar_type() == torch::kLong &&
                  offsets.device().is_cpu(),
              "offsets: expected int64 [B + 1] on the CPU with B >= 1");
  auto o = offsets.contiguous();
  return cpu::sample_grain(o.data_ptr<int64_t>(), o.size(0) - 1, static_cast<int>(mode));
}

torch::Tensor pose_loss_forward(const torch::Tensor& pred, const torch::Tensor& target,
                                const torch::Tensor& offsets, int64_t mode, double clamp,
                                double huber) {
  check_inputs(pred, target, offsets, mode);
  auto p = compute_dtype(pred);
  auto t = target.to(p.scalar_type()).contiguous();
  auto off = offsets.contiguous();
  const int64_t batch = off.size(0) - 1;
  auto parts = torch::zeros({batch, 3}, p.options());
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "geovr_pose_loss_forward", [&] {
    if (p.is_cuda()) {
#ifdef WITH_CUDA
      cuda::pose_loss_forward<scalar_t>(p.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(),
                                        off.data_ptr<int64_t>(), batch, p.size(0), (int)mode,
                                        (scalar_t)clamp, (scalar_t)huber, parts.data_ptr<scalar_t>(),
                                        at::cuda::getCurrentCUDAStream().stream());
#else
      TORCH_CHECK(false, "geovr._ext was built without CUDA; rebuild with FORCE_CUDA=1 (see README)");
#endif
    } else {
      cpu::pose_loss_forward<scalar_t>(p.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(),
                                       off.data_ptr<int64_t>(), batch, (int)mode, (scalar_t)clamp,
                                       (scalar_t)huber, parts.data_ptr<scalar_t>());
    }
  });
  return parts;
}

torch::Tensor pose_loss_backward(const torch::Tensor& pred, const torch::Tensor& target,
                                 const torch::Tensor& offsets, const torch::Tensor& grad_parts,
                                 int64_t mode, double clamp, double huber) {
  check_inputs(pred, target, offsets, mode);
  auto p = compute_dtype(pred);
  auto t = target.to(p.scalar_type()).contiguous();
  auto off = offsets.contiguous();
  const int64_t batch = off.size(0) - 1;
  TORCH_CHECK(grad_parts.dim() == 2 && grad_parts.size(0) == batch && grad_parts.size(1) == 3,
              "grad_parts: expected [B, 3]");
  auto g = grad_parts.to(p.scalar_type()).contiguous();
  auto grad = torch::zeros_like(p);
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "geovr_pose_loss_backward", [&] {
    if (p.is_cuda()) {
#ifdef WITH_CUDA
      cuda::pose_loss_backward<scalar_t>(p.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(),
                                         off.data_ptr<int64_t>(), batch, p.size(0), (int)mode,
                                         (scalar_t)clamp, (scalar_t)huber, g.data_ptr<scalar_t>(),
                                         grad.data_ptr<scalar_t>(),
                                         at::cuda::getCurrentCUDAStream().stream());
#else
      TORCH_CHECK(false, "geovr._ext was built without CUDA; rebuild with FORCE_CUDA=1 (see README)");
#endif
    } else {
      cpu::pose_loss_backward<scalar_t>(p.data_ptr<scalar_t>(), t.data_ptr<scalar_t>(),
                                        off.data_ptr<int64_t>(), batch, (int)mode, (scalar_t)clamp,
                                        (scalar_t)huber, g.data_ptr<scalar_t>(),
                                        grad.data_ptr<scalar_t>());
    }
  });
  return grad;
}

}  // namespace geovr
