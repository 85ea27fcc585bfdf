// pybind11 bindings of the geovr extension: the module geovr._ext.
#include <torch/extension.h>

#include "ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "geovr native ops: SE(3) pose loss (CPU and CUDA) and camera geometry utilities";
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  m.def("pose_loss_forward", &geovr::pose_loss_forward, "per-sample pose-loss parts [B, 3]");
  m.def("pose_loss_backward", &geovr::pose_loss_backward, "gradient of the parts wrt pred [N, 9]");
  m.def("pose_loss_forward_cuda", &geovr::pose_loss_forward_cuda, "pose_loss_forward, CUDA tensors only");
  m.def("pose_loss_backward_cuda", &geovr::pose_loss_backward_cuda, "pose_loss_backward, CUDA tensors only");
  m.def("pose_cpu_grain", &geovr::pose_cpu_grain, "the CPU loop's samples per thread task (B: one thread)");
  m.def("quat_to_rot", &geovr::quat_to_rot, "[..., 4] xyzw -> [..., 3, 3]");
  m.def("rot_to_quat", &geovr::rot_to_quat, "[..., 3, 3] -> [..., 4] xyzw, w >= 0");
  m.def("rot_angle", &geovr::rot_angle, "geodesic angle of [..., 3, 3] in [0, pi]");
  m.def("so3_log", &geovr::so3_log, "rotation vector of [..., 3, 3]");
  m.def("quat_angle", &geovr::quat_angle, "rotation angle of [..., 4] in [0, pi]");
  m.def("relative_pose", &geovr::relative_pose, "T_i T_j^-1 of camera-from-world extrinsics");
  m.def("encoding_to_camera", &geovr::encoding_to_camera, "VGGT 9-D encoding -> R, t, K (fx, fy, cx, cy)");
  m.def("camera_to_encoding", &geovr::camera_to_encoding, "R, t, K -> VGGT 9-D encoding");
}
