// How many terms each part of the pose loss averages over, per sample of T frames.
#pragma once

#include "pose_loss_terms.h"

namespace geovr {
namespace pose {

// counts[3] = (translation, rotation, fov) terms of a sample with T frames.
template <typename T>
GEOVR_HD void term_counts(int mode, int64_t frames, T* counts) {
  const T f = T(frames);
  const T pairs = T(frames) * T(frames - 1);
  counts[0] = mode == kRelative ? T(3) * pairs : T(3) * f;
  counts[1] = mode == kPaper ? T(4) * f : (mode == kGeodesic ? f : pairs);
  counts[2] = T(2) * f;
}

// coef[k] = upstream[k] / counts[k], 0 where a part has no terms.
template <typename T>
GEOVR_HD void term_coefs(int mode, int64_t frames, const T* upstream, T* coef) {
  T counts[3];
  term_counts(mode, frames, counts);
  for (int k = 0; k < 3; ++k) coef[k] = counts[k] > T(0) ? upstream[k] / counts[k] : T(0);
}

}  // namespace pose
}  // namespace geovr
