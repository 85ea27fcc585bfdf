// CPU implementation of the pose loss over a packed batch (threaded over samples).
#pragma once

#include <cstdint>

namespace geovr {
namespace cpu {

template <typename T>
void pose_loss_forward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                       int mode, T clamp, T huber, T* parts);

template <typename T>
void pose_loss_backward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                        int mode, T clamp, T huber, const T* grad_parts, T* grad_pred);

}  // namespace cpu
}  // namespace geovr
