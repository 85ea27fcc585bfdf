// Per-frame and per-pair pose-loss terms with their analytic gradients, shared by the CPU and
// CUDA implementations. Inputs are 9-D encodings [t | q xyzw | fov_h, fov_w]; the prediction's
// quaternion may be unnormalised (never zero: the Python layer rejects |q| < 1e-8), the target
// is a constant.
#pragma once

#include "pose_math.h"

namespace geovr {
namespace pose {

enum Mode : int { kPaper = 0, kGeodesic = 1, kRelative = 2 };

// Terms of one frame, added to sums = (translation, rotation, fov) sums. With grad != nullptr,
// writes grad[9] = sum_k coef[k] * d sums[k] / d p. In relative mode only the FoV term is
// per frame (translation and rotation come from pair_terms).
template <typename T>
GEOVR_HD void frame_terms(int mode, const T* p, const T* t, T clamp, T huber, T* sums,
                          const T* coef, T* grad) {
  T g;
  if (grad != nullptr)
    for (int k = 0; k < 9; ++k) grad[k] = T(0);
  // FoV: L1 in every mode
  for (int k = 7; k < 9; ++k) {
    const T d = p[k] - t[k];
    sums[2] += fabs(d);
    if (grad != nullptr) grad[k] = coef[2] * (d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0)));
  }
  if (mode == kRelative) return;
  // translation: clamped L1 (paper) or the configured robust penalty (geodesic)
  for (int k = 0; k < 3; ++k) {
    sums[0] += robust(p[k] - t[k], clamp, mode == kPaper ? T(0) : huber, &g);
    if (grad != nullptr) grad[k] = coef[0] * g;
  }
  if (mode == kPaper) {  // L1 against the target quaternion as the teacher gives it (the release)
    for (int k = 0; k < 4; ++k) {
      const T d = p[3 + k] - t[3 + k];
      sums[1] += fabs(d);
      if (grad != nullptr) grad[3 + k] = coef[1] * (d > T(0) ? T(1) : (d < T(0) ? T(-1) : T(0)));
    }
    return;
  }
  // geodesic: angle of conj(q*) (x) q^ (scale- and sign-invariant in q^)
  T qt[4], qtc[4], rel[4], grel[4], gq[4];
  quat_normalize(t + 3, qt);
  quat_conj(qt, qtc);
  quat_mul(qtc, p + 3, rel);
  sums[1] += quat_angle(rel, grad != nullptr ? grel : nullptr);
  if (grad != nullptr) {
    quat_mul(qt, grel, gq);  // d/dq^ of L(conj q*) q^ is L(q*) applied to the upstream gradient
    for (int k = 0; k < 4; ++k) grad[3 + k] = coef[1] * gq[k];
  }
}

// What the pair terms need of one frame, computed once per frame: its unit quaternion u, |q|, R(u),
// t and s = R^T t (so that t_ij = t_i - R_i s_j).
template <typename T>
struct FrameCamera {
  T u[4], n, R[9], t[3], s[3];
};

template <typename T>
GEOVR_HD void frame_camera(const T* enc, FrameCamera<T>& c) {
  c.n = quat_normalize(enc + 3, c.u);
  quat_to_rot(c.u, c.R);
  for (int k = 0; k < 3; ++k) c.t[k] = enc[k];
  mat_t_vec(c.R, c.t, c.s);
}

// Relative camera of frames (i, j): unit q_ij = u_i (x) conj(u_j), t_ij = t_i - R_i R_j^T t_j.
template <typename T>
GEOVR_HD void pair_camera(const FrameCamera<T>& a, const FrameCamera<T>& b, T* q, T* t) {
  T ujc[4], m[3];
  quat_conj(b.u, ujc);
  quat_mul(a.u, ujc, q);
  mat_vec(a.R, b.s, m);
  for (int k = 0; k < 3; ++k) t[k] = a.t[k] - m[k];
}

// Terms of the ordered pair (i, j) of predicted cameras (Pi, Pj) and target cameras (Qi, Qj):
// sums[0] += sum_k rho(t^_ij - t*_ij), sums[1] += angle between q^_ij and q*_ij. With gi/gj !=
// nullptr, writes the gradients of coef[0] sums[0] + coef[1] sums[1] with respect to the
// predicted encodings of frames i and j (9 each; FoV entries 0).
template <typename T>
GEOVR_HD void pair_terms(const FrameCamera<T>& Pi, const FrameCamera<T>& Pj, const FrameCamera<T>& Qi,
                         const FrameCamera<T>& Qj, T clamp, T huber, T* sums, const T* coef, T* gi,
                         T* gj) {
  T pq[4], pt[3], qq[4], qt[3];
  pair_camera(Pi, Pj, pq, pt);
  pair_camera(Qi, Qj, qq, qt);
  T qc[4], rel[4], grel[4];
  quat_conj(qq, qc);
  quat_mul(qc, pq, rel);
  sums[1] += quat_angle(rel, gi != nullptr ? grel : nullptr);
  T gt[3];  // d rho / d t_ij, scaled by coef[0] (only read when gradients are asked for)
  for (int k = 0; k < 3; ++k) sums[0] += robust(pt[k] - qt[k], clamp, huber, &gt[k]);
  if (gi == nullptr) return;
  for (int k = 0; k < 3; ++k) gt[k] *= coef[0];
  for (int k = 0; k < 9; ++k) gi[k] = gj[k] = T(0);
  // rotation: d angle / d q_ij = q*_ij (x) grel; q_ij = u_i (x) conj(u_j)
  T gq[4], gui[4], guj[4], tmp[4], uic[4];
  quat_mul(qq, grel, gq);
  for (int k = 0; k < 4; ++k) gq[k] *= coef[1];
  quat_mul(gq, Pj.u, gui);  // d/du_i = gq (x) u_j
  quat_conj(Pi.u, uic);
  quat_mul(uic, gq, tmp);  // d/d conj(u_j) = conj(u_i) (x) gq
  quat_conj(tmp, guj);
  // translation: t_ij = t_i - R_i s, s = R_j^T t_j
  T gs[3], GRi[9], GRj[9];
  for (int k = 0; k < 3; ++k) gi[k] = gt[k];
  mat_t_vec(Pi.R, gt, gs);  // dL/ds = -R_i^T gt
  for (int k = 0; k < 3; ++k) gs[k] = -gs[k];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      GRi[r * 3 + c] = -gt[r] * Pj.s[c];
      GRj[r * 3 + c] = Pj.t[r] * gs[c];
    }
  mat_vec(Pj.R, gs, gj);  // dL/dt_j = R_j dL/ds
  quat_to_rot_backward(Pi.u, GRi, gui);
  quat_to_rot_backward(Pj.u, GRj, guj);
  quat_normalize_backward(Pi.u, Pi.n, gui, gi + 3);
  quat_normalize_backward(Pj.u, Pj.n, guj, gj + 3);
}

}  // namespace pose
}  // namespace geovr
