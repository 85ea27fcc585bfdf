// Torch-facing declarations of the geovr extension (implemented in pose_loss.cpp and
// geometry_cpu.cpp, bound in bindings.cpp).
#pragma once

#include <torch/extension.h>

#include <tuple>

namespace geovr {

// pred, target: [N, 9] packed frames of B samples; offsets: int64 [B + 1] on pred's device.
// Returns per-sample parts [B, 3] = (translation, rotation, fov) means; mode 0 paper,
// 1 geodesic, 2 relative. Float64 stays float64; other float types compute in float32.
torch::Tensor pose_loss_forward(const torch::Tensor& pred, const torch::Tensor& target,
                                const torch::Tensor& offsets, int64_t mode, double clamp,
                                double huber);
// grad_parts: [B, 3] upstream gradient of the parts. Returns d/d pred [N, 9] (compute dtype).
torch::Tensor pose_loss_backward(const torch::Tensor& pred, const torch::Tensor& target,
                                 const torch::Tensor& offsets, const torch::Tensor& grad_parts,
                                 int64_t mode, double clamp, double huber);

// The CUDA path alone (what the two above call for CUDA tensors): fails with its own message on
// CPU tensors, or in a module built without CUDA.
torch::Tensor pose_loss_forward_cuda(const torch::Tensor& pred, const torch::Tensor& target,
                                     const torch::Tensor& offsets, int64_t mode, double clamp,
                                     double huber);
torch::Tensor pose_loss_backward_cuda(const torch::Tensor& pred, const torch::Tensor& target,
                                      const torch::Tensor& offsets, const torch::Tensor& grad_parts,
                                      int64_t mode, double clamp, double huber);

// The CPU pose loss's at::parallel_for grain over the samples of `offsets` (int64 [B + 1], CPU):
// B (one thread) for a batch under cpu::kParallelTerms frame and pair terms, else 1.
int64_t pose_cpu_grain(const torch::Tensor& offsets, int64_t mode);

// CPU geometry utilities over [..., k] tensors (float32/float64), from pose_math.h.
torch::Tensor quat_to_rot(const torch::Tensor& q);          // [..., 4] (normalised first) -> [..., 3, 3]
torch::Tensor rot_to_quat(const torch::Tensor& R);          // [..., 3, 3] -> [..., 4], w >= 0
torch::Tensor rot_angle(const torch::Tensor& R);            // [..., 3, 3] -> [...] in [0, pi]
torch::Tensor so3_log(const torch::Tensor& R);              // [..., 3, 3] -> [..., 3]
torch::Tensor quat_angle(const torch::Tensor& q);           // [..., 4] -> [...]
std::tuple<torch::Tensor, torch::Tensor> relative_pose(     // R [..., 3, 3], t [..., 3] of i and j
    const torch::Tensor& Ri, const torch::Tensor& ti, const torch::Tensor& Rj, const torch::Tensor& tj);
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> encoding_to_camera(
    const torch::Tensor& enc, double height, double width);  // -> R, t, K = (fx, fy, cx, cy)
torch::Tensor camera_to_encoding(const torch::Tensor& R, const torch::Tensor& t,
                                 const torch::Tensor& K, double height, double width);

}  // namespace geovr
