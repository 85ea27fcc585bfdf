// CPU implementation of the pose loss over a packed batch (threaded over samples).
#pragma once

#include <cstdint>

namespace geovr {
namespace cpu {

// Samples go to separate threads only when the batch holds at least this many frame and pair
// terms (B = 8 x T = 32 in relative mode is 8k): below it one thread finishes before a pool of
// busy cores would wake (measured 0.5 ms serial against 17-48 ms threaded on 2 loaded cores).
constexpr int64_t kParallelTerms = int64_t(1) << 16;

// The at::parallel_for grain over samples: the whole batch (one thread) below kParallelTerms,
// else one sample.
int64_t sample_grain(const int64_t* offsets, int64_t batch, int mode);

template <typename T>
void pose_loss_forward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                       int mode, T clamp, T huber, T* parts);

template <typename T>
void pose_loss_backward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                        int mode, T clamp, T huber, const T* grad_parts, T* grad_pred);

}  // namespace cpu
}  // namespace geovr
