// Header-only SE(3) / camera math shared by the CPU (.cpp) and CUDA (.cu) pose-loss code.
// One source of truth: every function is a template on the scalar type and compiles for host and
// device. Conventions: quaternions xyzw; rotation matrices row-major 3x3; extrinsics
// camera-from-world (OpenCV); VGGT's 9-D encoding [t (3) | q xyzw (4) | fov_h, fov_w (rad)].
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define GEOVR_HD __host__ __device__ __forceinline__
#else
#define GEOVR_HD inline
#endif

namespace geovr {
namespace pose {

constexpr double kPi = 3.14159265358979323846;

// ------------------------------------------------------------------ quaternions (xyzw)

// out = a (x) b (Hamilton product); out may not alias a or b.
template <typename T>
GEOVR_HD void quat_mul(const T* a, const T* b, T* out) {
  out[0] = a[3] * b[0] + b[3] * a[0] + a[1] * b[2] - a[2] * b[1];
  out[1] = a[3] * b[1] + b[3] * a[1] + a[2] * b[0] - a[0] * b[2];
  out[2] = a[3] * b[2] + b[3] * a[2] + a[0] * b[1] - a[1] * b[0];
  out[3] = a[3] * b[3] - a[0] * b[0] - a[1] * b[1] - a[2] * b[2];
}

template <typename T>
GEOVR_HD void quat_conj(const T* q, T* out) {
  out[0] = -q[0];
  out[1] = -q[1];
  out[2] = -q[2];
  out[3] = q[3];
}

template <typename T>
GEOVR_HD T quat_norm(const T* q) {
  return sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
}

// out = q / |q|; returns |q| (callers reject |q| == 0 before getting here).
template <typename T>
GEOVR_HD T quat_normalize(const T* q, T* out) {
  const T n = quat_norm(q);
  for (int k = 0; k < 4; ++k) out[k] = q[k] / n;
  return n;
}

// Backward of u = a / |a|: grad_a = (grad_u - u <u, grad_u>) / |a|.
template <typename T>
GEOVR_HD void quat_normalize_backward(const T* u, T n, const T* grad_u, T* grad_a) {
  const T d = u[0] * grad_u[0] + u[1] * grad_u[1] + u[2] * grad_u[2] + u[3] * grad_u[3];
  for (int k = 0; k < 4; ++k) grad_a[k] = (grad_u[k] - u[k] * d) / n;
}

// Sign standardisation: w >= 0 (q and -q are the same rotation).
template <typename T>
GEOVR_HD void quat_standardize(const T* q, T* out) {
  const T s = q[3] < T(0) ? T(-1) : T(1);
  for (int k = 0; k < 4; ++k) out[k] = s * q[k];
}

// Rotation angle of a (not necessarily unit) quaternion, in [0, pi]: 2 atan2(|v|, |w|).
// Scale- and sign-invariant, stable at 0 and at pi. grad (nullable) = d angle / d q, with the
// subgradient 0 for v at the identity (|v| = 0) and for w at pi (w = 0).
template <typename T>
GEOVR_HD T quat_angle(const T* q, T* grad) {
  const T s = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
  const T c = fabs(q[3]);
  const T angle = T(2) * atan2(s, c);
  if (grad != nullptr) {
    const T r2 = s * s + c * c;
    const T gv = (s > T(0) && r2 > T(0)) ? T(2) * c / (r2 * s) : T(0);
    for (int k = 0; k < 3; ++k) grad[k] = gv * q[k];
    const T sw = q[3] > T(0) ? T(1) : (q[3] < T(0) ? T(-1) : T(0));
    grad[3] = r2 > T(0) ? -T(2) * s * sw / r2 : T(0);
  }
  return angle;
}

// ------------------------------------------------------------------ rotation matrices

// R(u) for a unit quaternion u (row-major). The polynomial form; quat_to_rot_backward is its
// exact derivative, so gradients are consistent wherever u is a normalised quaternion.
template <typename T>
GEOVR_HD void quat_to_rot(const T* u, T* R) {
  const T x = u[0], y = u[1], z = u[2], w = u[3];
  R[0] = T(1) - T(2) * (y * y + z * z);
  R[1] = T(2) * (x * y - z * w);
  R[2] = T(2) * (x * z + y * w);
  R[3] = T(2) * (x * y + z * w);
  R[4] = T(1) - T(2) * (x * x + z * z);
  R[5] = T(2) * (y * z - x * w);
  R[6] = T(2) * (x * z - y * w);
  R[7] = T(2) * (y * z + x * w);
  R[8] = T(1) - T(2) * (x * x + y * y);
}

// grad_u += d<G, R(u)>/du for G = dL/dR (row-major).
template <typename T>
GEOVR_HD void quat_to_rot_backward(const T* u, const T* G, T* grad_u) {
  const T x = u[0], y = u[1], z = u[2], w = u[3];
  grad_u[0] += T(2) * (y * (G[1] + G[3]) + z * (G[2] + G[6]) + w * (G[7] - G[5])) -
               T(4) * x * (G[4] + G[8]);
  grad_u[1] += T(2) * (x * (G[1] + G[3]) + w * (G[2] - G[6]) + z * (G[5] + G[7])) -
               T(4) * y * (G[0] + G[8]);
  grad_u[2] += T(2) * (w * (G[3] - G[1]) + x * (G[2] + G[6]) + y * (G[5] + G[7])) -
               T(4) * z * (G[0] + G[4]);
  grad_u[3] += T(2) * (z * (G[3] - G[1]) + y * (G[2] - G[6]) + x * (G[7] - G[5]));
}

// Unit quaternion (w >= 0) of a rotation matrix: Shepperd's method, stable for every angle.
template <typename T>
GEOVR_HD void rot_to_quat(const T* R, T* q) {
  const T tr = R[0] + R[4] + R[8];
  if (tr >= R[0] && tr >= R[4] && tr >= R[8]) {
    const T s = sqrt(T(1) + tr) * T(2);  // 4w
    q[3] = T(0.25) * s;
    q[0] = (R[7] - R[5]) / s;
    q[1] = (R[2] - R[6]) / s;
    q[2] = (R[3] - R[1]) / s;
  } else if (R[0] >= R[4] && R[0] >= R[8]) {
    const T s = sqrt(T(1) + R[0] - R[4] - R[8]) * T(2);  // 4x
    q[0] = T(0.25) * s;
    q[3] = (R[7] - R[5]) / s;
    q[1] = (R[1] + R[3]) / s;
    q[2] = (R[2] + R[6]) / s;
  } else if (R[4] >= R[8]) {
    const T s = sqrt(T(1) + R[4] - R[0] - R[8]) * T(2);  // 4y
    q[1] = T(0.25) * s;
    q[3] = (R[2] - R[6]) / s;
    q[0] = (R[1] + R[3]) / s;
    q[2] = (R[5] + R[7]) / s;
  } else {
    const T s = sqrt(T(1) + R[8] - R[0] - R[4]) * T(2);  // 4z
    q[2] = T(0.25) * s;
    q[3] = (R[3] - R[1]) / s;
    q[0] = (R[2] + R[6]) / s;
    q[1] = (R[5] + R[7]) / s;
  }
  T n = quat_norm(q);
  const T sgn = q[3] < T(0) ? T(-1) : T(1);
  for (int k = 0; k < 4; ++k) q[k] = sgn * q[k] / n;
}

// Geodesic angle of a rotation matrix in [0, pi]: atan2(|axis sin|, cos), stable everywhere.
template <typename T>
GEOVR_HD T rot_angle(const T* R) {
  const T sx = T(0.5) * (R[7] - R[5]);
  const T sy = T(0.5) * (R[2] - R[6]);
  const T sz = T(0.5) * (R[3] - R[1]);
  const T c = T(0.5) * (R[0] + R[4] + R[8] - T(1));
  return atan2(sqrt(sx * sx + sy * sy + sz * sz), c);
}

// SO(3) log: the rotation vector omega (axis x angle) of R. The series of angle/sin(angle) near
// 0; near pi (where sin -> 0) the axis comes from the diagonal of (R + R^T)/2 = cos I + (1-cos) a a^T,
// with its sign taken from the antisymmetric part.
template <typename T>
GEOVR_HD void so3_log(const T* R, T* omega) {
  const T sv[3] = {T(0.5) * (R[7] - R[5]), T(0.5) * (R[2] - R[6]), T(0.5) * (R[3] - R[1])};
  const T c = T(0.5) * (R[0] + R[4] + R[8] - T(1));
  const T s = sqrt(sv[0] * sv[0] + sv[1] * sv[1] + sv[2] * sv[2]);
  const T angle = atan2(s, c);
  if (c > T(-0.5)) {  // angle < 2pi/3: sin is well conditioned relative to the angle
    const T f = angle < T(1e-4) ? T(1) + angle * angle / T(6) : angle / sin(angle);
    for (int k = 0; k < 3; ++k) omega[k] = f * sv[k];
    return;
  }
  // Near pi: a_k^2 = (R_kk - c) / (1 - c); the largest component fixes the others via R + R^T.
  const T one_c = T(1) - c;
  int k = 0;
  if (R[4] > R[k * 4]) k = 1;
  if (R[8] > R[k * 4]) k = 2;
  T a[3];
  const T ak = sqrt(fmax((R[k * 4] - c) / one_c, T(0)));
  a[k] = ak;
  for (int m = 0; m < 3; ++m) {
    if (m == k) continue;
    a[m] = (R[k * 3 + m] + R[m * 3 + k]) / (T(2) * one_c * ak);
  }
  // sign: sin(angle) a = sv, so a . sv >= 0
  const T dot = a[0] * sv[0] + a[1] * sv[1] + a[2] * sv[2];
  const T sgn = dot < T(0) ? T(-1) : T(1);
  const T n = sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]);
  for (int m = 0; m < 3; ++m) omega[m] = sgn * angle * a[m] / n;
}

// y = R x, y = R^T x
template <typename T>
GEOVR_HD void mat_vec(const T* R, const T* x, T* y) {
  for (int r = 0; r < 3; ++r) y[r] = R[r * 3] * x[0] + R[r * 3 + 1] * x[1] + R[r * 3 + 2] * x[2];
}
template <typename T>
GEOVR_HD void mat_t_vec(const T* R, const T* x, T* y) {
  for (int c = 0; c < 3; ++c) y[c] = R[c] * x[0] + R[3 + c] * x[1] + R[6 + c] * x[2];
}

// Relative pose T_ij = T_i T_j^-1 of camera-from-world extrinsics (maps camera j to camera i):
// R_ij = R_i R_j^T, t_ij = t_i - R_ij t_j.
template <typename T>
GEOVR_HD void relative_pose(const T* Ri, const T* ti, const T* Rj, const T* tj, T* Rij, T* tij) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      Rij[r * 3 + c] = Ri[r * 3] * Rj[c * 3] + Ri[r * 3 + 1] * Rj[c * 3 + 1] + Ri[r * 3 + 2] * Rj[c * 3 + 2];
  T m[3];
  mat_vec(Rij, tj, m);
  for (int k = 0; k < 3; ++k) tij[k] = ti[k] - m[k];
}

// ------------------------------------------------------------------ VGGT camera encoding

// enc [t | q | fov_h, fov_w] -> R (3x3), t (3), K = (fx, fy, cx, cy) for an image H x W (pixels).
template <typename T>
GEOVR_HD void encoding_to_camera(const T* enc, T height, T width, T* R, T* t, T* K) {
  T u[4];
  quat_normalize(enc + 3, u);
  quat_to_rot(u, R);
  for (int k = 0; k < 3; ++k) t[k] = enc[k];
  K[0] = (width / T(2)) / tan(enc[8] / T(2));
  K[1] = (height / T(2)) / tan(enc[7] / T(2));
  K[2] = width / T(2);
  K[3] = height / T(2);
}

// R, t, K = (fx, fy, ...) -> enc [t | q (w >= 0) | fov_h, fov_w].
template <typename T>
GEOVR_HD void camera_to_encoding(const T* R, const T* t, const T* K, T height, T width, T* enc) {
  for (int k = 0; k < 3; ++k) enc[k] = t[k];
  rot_to_quat(R, enc + 3);
  enc[7] = T(2) * atan(height / (T(2) * K[1]));
  enc[8] = T(2) * atan(width / (T(2) * K[0]));
}

// ------------------------------------------------------------------ robust penalties

// rho(x): clamped L1 min(|x|, clamp) when huber_delta <= 0 (gradient passes at |x| == clamp, as
// torch.clamp), else Huber with threshold huber_delta. *grad = rho'(x), sign(0) = 0.
template <typename T>
GEOVR_HD T robust(T x, T clamp, T huber_delta, T* grad) {
  const T a = fabs(x);
  const T sgn = x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
  if (huber_delta > T(0)) {
    if (a <= huber_delta) {
      *grad = x / huber_delta;
      return T(0.5) * x * x / huber_delta;
    }
    *grad = sgn;
    return a - T(0.5) * huber_delta;
  }
  *grad = a <= clamp ? sgn : T(0);
  return a <= clamp ? a : clamp;
}

}  // namespace pose
}  // namespace geovr
