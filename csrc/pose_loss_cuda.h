// CUDA implementation of the pose loss over a packed batch. Raw device pointers, sizes and a
// stream (cudaStream_t passed as void*): no torch or CUDA headers here, so nvcc compiles the .cu
// without torch's CUDA headers.
#pragma once

#include <cstdint>

namespace geovr {
namespace cuda {

// parts must be zero-filled [batch, 3] on entry.
template <typename T>
void pose_loss_forward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                       int64_t frames, int mode, T clamp, T huber, T* parts, void* stream);

template <typename T>
void pose_loss_backward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                        int64_t frames, int mode, T clamp, T huber, const T* grad_parts,
                        T* grad_pred, void* stream);

}  // namespace cuda
}  // namespace geovr
