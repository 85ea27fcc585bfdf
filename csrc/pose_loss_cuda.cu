// CUDA pose loss: one thread per frame. Forward adds the frame's (and its pairs') terms, divided
// by the sample's term counts, into parts[b] with atomics. Backward writes each frame's gradient
// directly: its own terms plus, in relative mode, both roles it plays in pairs (i, f) and (f, j),
// so no atomics are needed.
#include <cuda_runtime.h>

#include "pose_counts.h"
#include "pose_loss_cuda.h"

namespace geovr {
namespace cuda {

using namespace geovr::pose;

namespace {

__device__ __forceinline__ int64_t sample_of(const int64_t* offsets, int64_t batch, int64_t f) {
  int64_t lo = 0, hi = batch - 1;  // last b with offsets[b] <= f
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (offsets[mid] <= f) lo = mid; else hi = mid - 1;
  }
  return lo;
}

template <typename T>
__device__ __forceinline__ void cameras_of(const T* pred, const T* target, int64_t f,
                                           FrameCamera<T>& P, FrameCamera<T>& Q) {
  frame_camera(pred + 9 * f, P);
  frame_camera(target + 9 * f, Q);
}

template <typename T>
__global__ void forward_kernel(const T* pred, const T* target, const int64_t* offsets,
                               int64_t batch, int64_t frames, int mode, T clamp, T huber,
                               T* parts) {
  const int64_t f = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (f >= frames) return;
  const int64_t b = sample_of(offsets, batch, f);
  const int64_t f0 = offsets[b], n = offsets[b + 1] - f0;
  T sums[3] = {T(0), T(0), T(0)};
  frame_terms<T>(mode, pred + 9 * f, target + 9 * f, clamp, huber, sums, nullptr, nullptr);
  if (mode == kRelative) {
    FrameCamera<T> Pf, Qf, Pj, Qj;
    cameras_of(pred, target, f, Pf, Qf);
    for (int64_t j = f0; j < f0 + n; ++j) {
      if (j == f) continue;
      cameras_of(pred, target, j, Pj, Qj);
      pair_terms<T>(Pf, Pj, Qf, Qj, clamp, huber, sums, nullptr, nullptr, nullptr);
    }
  }
  T counts[3];
  term_counts(mode, n, counts);
  for (int k = 0; k < 3; ++k)
    if (counts[k] > T(0)) atomicAdd(parts + 3 * b + k, sums[k] / counts[k]);
}

template <typename T>
__global__ void backward_kernel(const T* pred, const T* target, const int64_t* offsets,
                                int64_t batch, int64_t frames, int mode, T clamp, T huber,
                                const T* grad_parts, T* grad_pred) {
  const int64_t f = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (f >= frames) return;
  const int64_t b = sample_of(offsets, batch, f);
  const int64_t f0 = offsets[b], n = offsets[b + 1] - f0;
  T coef[3], sums[3] = {T(0), T(0), T(0)}, g[9];
  term_coefs(mode, n, grad_parts + 3 * b, coef);
  frame_terms<T>(mode, pred + 9 * f, target + 9 * f, clamp, huber, sums, coef, g);
  if (mode == kRelative) {
    T gi[9], gj[9];
    FrameCamera<T> Pf, Qf, Pj, Qj;
    cameras_of(pred, target, f, Pf, Qf);
    for (int64_t j = f0; j < f0 + n; ++j) {
      if (j == f) continue;
      cameras_of(pred, target, j, Pj, Qj);
      pair_terms<T>(Pf, Pj, Qf, Qj, clamp, huber, sums, coef, gi, gj);  // f as the first frame
      for (int k = 0; k < 9; ++k) g[k] += gi[k];
      pair_terms<T>(Pj, Pf, Qj, Qf, clamp, huber, sums, coef, gi, gj);  // f as the second frame
      for (int k = 0; k < 9; ++k) g[k] += gj[k];
    }
  }
  for (int k = 0; k < 9; ++k) grad_pred[9 * f + k] = g[k];
}

constexpr int kThreads = 128;

}  // namespace

template <typename T>
void pose_loss_forward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                       int64_t frames, int mode, T clamp, T huber, T* parts, void* stream) {
  if (frames == 0) return;
  const int blocks = (int)((frames + kThreads - 1) / kThreads);
  forward_kernel<T><<<blocks, kThreads, 0, (cudaStream_t)stream>>>(
      pred, target, offsets, batch, frames, mode, clamp, huber, parts);
}

template <typename T>
void pose_loss_backward(const T* pred, const T* target, const int64_t* offsets, int64_t batch,
                        int64_t frames, int mode, T clamp, T huber, const T* grad_parts,
                        T* grad_pred, void* stream) {
  if (frames == 0) return;
  const int blocks = (int)((frames + kThreads - 1) / kThreads);
  backward_kernel<T><<<blocks, kThreads, 0, (cudaStream_t)stream>>>(
      pred, target, offsets, batch, frames, mode, clamp, huber, grad_parts, grad_pred);
}

template void pose_loss_forward<float>(const float*, const float*, const int64_t*, int64_t,
                                       int64_t, int, float, float, float*, void*);
template void pose_loss_forward<double>(const double*, const double*, const int64_t*, int64_t,
                                        int64_t, int, double, double, double*, void*);
template void pose_loss_backward<float>(const float*, const float*, const int64_t*, int64_t,
                                        int64_t, int, float, float, const float*, float*, void*);
template void pose_loss_backward<double>(const double*, const double*, const int64_t*, int64_t,
                                         int64_t, int, double, double, const double*, double*,
                                         void*);

}  // namespace cuda
}  // namespace geovr
