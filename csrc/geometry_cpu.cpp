// CPU geometry utilities over batched tensors, thin loops over pose_math.h (used by tests against
// an independent library, and handy for data preparation).
#include <torch/extension.h>

#include "ops.h"
#include "pose_math.h"

namespace geovr {

namespace {

torch::Tensor prepared(const torch::Tensor& x, int64_t last, const char* name) {
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == last, name, ": expected [..., ", last, "], got ", x.sizes());
  TORCH_CHECK(x.device().is_cpu(), name, ": the geometry utilities run on CPU tensors");
  return (x.scalar_type() == torch::kDouble ? x : x.to(torch::kFloat)).contiguous();
}

torch::Tensor prepared_mat(const torch::Tensor& R, const char* name) {
  TORCH_CHECK(R.dim() >= 2 && R.size(-1) == 3 && R.size(-2) == 3, name, ": expected [..., 3, 3], got ",
              R.sizes());
  return prepared(R.reshape({-1, 9}), 9, name);
}

std::vector<int64_t> batch_shape(const torch::Tensor& x, int64_t trailing) {
  auto s = x.sizes().vec();
  s.resize(s.size() - trailing);
  return s;
}

template <typename F>
void for_each_row(int64_t n, F f) {
  at::parallel_for(0, n, 1024, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i);
  });
}

}  // namespace

torch::Tensor quat_to_rot(const torch::Tensor& q) {
  auto x = prepared(q, 4, "q");
  auto out = torch::empty({x.numel() / 4, 9}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "quat_to_rot", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for_each_row(out.size(0), [&](int64_t i) {
      scalar_t u[4];
      pose::quat_normalize(in + 4 * i, u);
      pose::quat_to_rot(u, o + 9 * i);
    });
  });
  auto shape = batch_shape(q, 1);
  shape.push_back(3);
  shape.push_back(3);
  return out.view(shape);
}

torch::Tensor rot_to_quat(const torch::Tensor& R) {
  auto x = prepared_mat(R, "R");
  auto out = torch::empty({x.size(0), 4}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rot_to_quat", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for_each_row(x.size(0), [&](int64_t i) { pose::rot_to_quat(in + 9 * i, o + 4 * i); });
  });
  auto shape = batch_shape(R, 2);
  shape.push_back(4);
  return out.view(shape);
}

torch::Tensor rot_angle(const torch::Tensor& R) {
  auto x = prepared_mat(R, "R");
  auto out = torch::empty({x.size(0)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rot_angle", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for_each_row(x.size(0), [&](int64_t i) { o[i] = pose::rot_angle(in + 9 * i); });
  });
  return out.view(batch_shape(R, 2));
}

torch::Tensor so3_log(const torch::Tensor& R) {
  auto x = prepared_mat(R, "R");
  auto out = torch::empty({x.size(0), 3}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "so3_log", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for_each_row(x.size(0), [&](int64_t i) { pose::so3_log(in + 9 * i, o + 3 * i); });
  });
  auto shape = batch_shape(R, 2);
  shape.push_back(3);
  return out.view(shape);
}

torch::Tensor quat_angle(const torch::Tensor& q) {
  auto x = prepared(q, 4, "q");
  auto out = torch::empty({x.numel() / 4}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "quat_angle", [&] {
    const scalar_t* in = x.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    for_each_row(out.size(0), [&](int64_t i) { o[i] = pose::quat_angle<scalar_t>(in + 4 * i, nullptr); });
  });
  return out.view(batch_shape(q, 1));
}

std::tuple<torch::Tensor, torch::Tensor> relative_pose(const torch::Tensor& Ri, const torch::Tensor& ti,
                                                      const torch::Tensor& Rj, const torch::Tensor& tj) {
  auto a = prepared_mat(Ri, "Ri"), b = prepared_mat(Rj, "Rj");
  auto u = prepared(ti, 3, "ti").reshape({-1, 3}), v = prepared(tj, 3, "tj").reshape({-1, 3});
  TORCH_CHECK(a.size(0) == b.size(0) && a.size(0) == u.size(0) && a.size(0) == v.size(0),
              "Ri, ti, Rj, tj: batch shapes differ");
  b = b.to(a.scalar_type());
  u = u.to(a.scalar_type());
  v = v.to(a.scalar_type());
  auto R = torch::empty_like(a), t = torch::empty_like(u);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "relative_pose", [&] {
    for_each_row(a.size(0), [&](int64_t i) {
      pose::relative_pose(a.data_ptr<scalar_t>() + 9 * i, u.data_ptr<scalar_t>() + 3 * i,
                          b.data_ptr<scalar_t>() + 9 * i, v.data_ptr<scalar_t>() + 3 * i,
                          R.data_ptr<scalar_t>() + 9 * i, t.data_ptr<scalar_t>() + 3 * i);
    });
  });
  return {R.view(Ri.sizes()), t.view(ti.sizes())};
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> encoding_to_camera(const torch::Tensor& enc,
                                                                           double height, double width) {
  auto x = prepared(enc, 9, "enc").reshape({-1, 9});
  const int64_t n = x.size(0);
  auto R = torch::empty({n, 9}, x.options()), t = torch::empty({n, 3}, x.options());
  auto K = torch::empty({n, 4}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "encoding_to_camera", [&] {
    for_each_row(n, [&](int64_t i) {
      pose::encoding_to_camera(x.data_ptr<scalar_t>() + 9 * i, (scalar_t)height, (scalar_t)width,
                               R.data_ptr<scalar_t>() + 9 * i, t.data_ptr<scalar_t>() + 3 * i,
                               K.data_ptr<scalar_t>() + 4 * i);
    });
  });
  auto shape = batch_shape(enc, 1);
  auto sR = shape, st = shape, sK = shape;
  sR.push_back(3);
  sR.push_back(3);
  st.push_back(3);
  sK.push_back(4);
  return {R.view(sR), t.view(st), K.view(sK)};
}

torch::Tensor camera_to_encoding(const torch::Tensor& R, const torch::Tensor& t, const torch::Tensor& K,
                                 double height, double width) {
  auto a = prepared_mat(R, "R");
  auto u = prepared(t, 3, "t").reshape({-1, 3}).to(a.scalar_type());
  auto k = prepared(K, 4, "K").reshape({-1, 4}).to(a.scalar_type());
  TORCH_CHECK(a.size(0) == u.size(0) && a.size(0) == k.size(0), "R, t, K: batch shapes differ");
  auto out = torch::empty({a.size(0), 9}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "camera_to_encoding", [&] {
    for_each_row(a.size(0), [&](int64_t i) {
      pose::camera_to_encoding(a.data_ptr<scalar_t>() + 9 * i, u.data_ptr<scalar_t>() + 3 * i,
                               k.data_ptr<scalar_t>() + 4 * i, (scalar_t)height, (scalar_t)width,
                               out.data_ptr<scalar_t>() + 9 * i);
    });
  });
  auto shape = batch_shape(t, 1);
  shape.push_back(9);
  return out.view(shape);
}

}  // namespace geovr
