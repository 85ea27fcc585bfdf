// CPU pose loss: samples in parallel (at::parallel_for), frames and pairs serially within one.
#include "pose_loss_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "pose_counts.h"

namespace geovr {
namespace cpu {

using namespace geovr::pose;

namespace {

// Cameras of frames [f0, f0 + n) of pred and target.
template <typename T>
void frame_cameras(const T* pred, const T* target, int64_t f0, int64_t n,
                   std::vector<FrameCamera<T>>& P, std::vector<FrameCamera<T>>& Q) {
  P.resize(n);
  Q.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    frame_camera(pred + 9 * (f0 + i), P[i]);
    frame_camera(target + 9 * (f0 + i), Q[i]);
  }
}

}  // namespace

int64_t sample_grain(const int64_t* offsets, int64_t batch, int mode) {
  int64_t terms = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = offsets[b + 1] - offsets[b];
    terms += n + (mode == kRelative ? n * (n - 1) : 0);
  }
  return terms < kParallelTerms ? std::max<int64_t>(batch, 1) : 1;
}

template <typename T>
void pose_loss_forward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                       int mode, T clamp, T huber, T* parts) {
  at::parallel_for(0, batch, sample_grain(offsets, batch, mode), [&](int64_t begin, int64_t end) {
    std::vector<FrameCamera<T>> P, Q;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t f0 = offsets[b], n = offsets[b + 1] - offsets[b];
      T sums[3] = {T(0), T(0), T(0)};
      for (int64_t i = f0; i < f0 + n; ++i)
        frame_terms<T>(mode, pred + 9 * i, target + 9 * i, clamp, huber, sums, nullptr, nullptr);
      if (mode == kRelative) {
        frame_cameras(pred, target, f0, n, P, Q);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < n; ++j)
            if (i != j) pair_terms<T>(P[i], P[j], Q[i], Q[j], clamp, huber, sums, nullptr, nullptr, nullptr);
      }
      T counts[3];
      term_counts(mode, n, counts);
      for (int k = 0; k < 3; ++k) parts[3 * b + k] = counts[k] > T(0) ? sums[k] / counts[k] : T(0);
    }
  });
}

template <typename T>
void pose_loss_backward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                        int mode, T clamp, T huber, const T* grad_parts, T* grad_pred) {
  at::parallel_for(0, batch, sample_grain(offsets, batch, mode), [&](int64_t begin, int64_t end) {
    std::vector<FrameCamera<T>> P, Q;
    for (int64_t b = begin; b < end; ++b) {
      const int64_t f0 = offsets[b], n = offsets[b + 1] - offsets[b];
      T coef[3], sums[3] = {T(0), T(0), T(0)};
      term_coefs(mode, n, grad_parts + 3 * b, coef);
      for (int64_t i = f0; i < f0 + n; ++i)
        frame_terms<T>(mode, pred + 9 * i, target + 9 * i, clamp, huber, sums, coef, grad_pred + 9 * i);
      if (mode != kRelative) continue;
      frame_cameras(pred, target, f0, n, P, Q);
      T gi[9], gj[9];
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
          if (i == j) continue;
          pair_terms<T>(P[i], P[j], Q[i], Q[j], clamp, huber, sums, coef, gi, gj);
          for (int k = 0; k < 9; ++k) {
            grad_pred[9 * (f0 + i) + k] += gi[k];
            grad_pred[9 * (f0 + j) + k] += gj[k];
          }
        }
    }
  });
}

template void pose_loss_forward<float>(const float*, const float*, const int64_t*, int64_t, int,
                                       float, float, float*);
template void pose_loss_forward<double>(const double*, const double*, const int64_t*, int64_t,
                                        int, double, double, double*);
template void pose_loss_backward<float>(const float*, const float*, const int64_t*, int64_t, int,
                                        float, float, const float*, float*);
template void pose_loss_backward<double>(const double*, const double*, const int64_t*, int64_t,
                                         int, double, double, const double*, double*);

}  // namespace cpu
}  // namespace geovr
