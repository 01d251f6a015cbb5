// Internal assertions and layout handling shared by the CPU and CUDA implementations of the
// stc_ext kernel ops (torch-facing glue only; the kernels themselves take raw pointers).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <optional>
#include <tuple>

namespace stc_ext {

// Memory layouts the kernels index directly. Anything else is made NCTHW-contiguous.
enum class Layout { kNCTHW, kNTHWC };

struct Dims {
  int64_t N, C, T, HW;
  int64_t numel() const { return N * C * T * HW; }
};

inline Layout layout_of(const at::Tensor& x) {
  if (x.is_contiguous()) return Layout::kNCTHW;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast3d)) return Layout::kNTHWC;
  return Layout::kNCTHW;
}

// `t` with the memory layout `layout` (a no-op when it already has it).
inline at::Tensor in_layout(const at::Tensor& t, Layout layout) {
  return layout == Layout::kNCTHW ? t.contiguous()
                                  : t.contiguous(at::MemoryFormat::ChannelsLast3d);
}

inline at::ScalarType accumulate_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// Internal assertions, not argument checking: stc_ext.stc checks the user's arguments and
// names them (stc_ext/ops/checks.py, the contract). Asserted here is only what the kernels'
// raw-pointer accesses rely on, so that calling torch.ops.stc_ext.* directly cannot read or
// write out of bounds. A dtype the kernels are not built for is refused by AT_DISPATCH.
#define STC_ASSERT(cond, ...) TORCH_CHECK(cond, "stc_ext internal op: ", __VA_ARGS__)

// A non-empty 5-D (N, C, T, H, W) feature map.
inline Dims check_feature_map(const at::Tensor& x, const char* name) {
  STC_ASSERT(x.dim() == 5 && x.numel() > 0, name,
             " must be 5-D (N, C, T, H, W) and non-empty, got shape ", x.sizes());
  return Dims{x.size(0), x.size(1), x.size(2), x.size(3) * x.size(4)};
}

// `other` has x's shape, dtype and device.
inline void check_same_as(const at::Tensor& other, const char* name, const at::Tensor& x) {
  STC_ASSERT(other.sizes() == x.sizes() && other.scalar_type() == x.scalar_type() &&
                 other.device() == x.device(),
             name, " must have shape ", x.sizes(), ", dtype ", x.scalar_type(), " and device ",
             x.device(), ", got ", other.sizes(), ", ", other.scalar_type(), ", ", other.device());
}

// A per-(n, c) or per-(n, c, t) statistic: given shape, x's accumulation dtype and device.
inline void check_statistic(const at::Tensor& s, const char* name, at::IntArrayRef shape,
                            const at::Tensor& x) {
  const at::ScalarType dtype = accumulate_type(x.scalar_type());
  STC_ASSERT(s.sizes() == shape && s.device() == x.device(), name, " must have shape ", shape,
             " on ", x.device(), ", got ", s.sizes(), " on ", s.device());
  STC_ASSERT(s.scalar_type() == dtype, name, " must have dtype ", dtype, " for ",
             x.scalar_type(), " inputs, got ", s.scalar_type());
}

// The arguments of each op, asserted and in the layout the kernels index (shared by the
// CPU and CUDA glue; on CUDA call these inside the device guard, they may copy).
struct FeatureMapArgs {  // pool
  Dims d;
  Layout layout;
  at::Tensor x;
};

inline FeatureMapArgs prepare_pool(const at::Tensor& x) {
  const Dims d = check_feature_map(x, "x");
  const Layout layout = layout_of(x);
  return {d, layout, in_layout(x, layout)};
}

struct RescaleArgs {
  Dims d;
  Layout layout;
  at::Tensor x, g, identity;  // identity undefined when absent
};

inline RescaleArgs prepare_rescale(const at::Tensor& x, const at::Tensor& g,
                                   const std::optional<at::Tensor>& identity) {
  const Dims d = check_feature_map(x, "x");
  check_statistic(g, "g", {d.N, d.C}, x);
  const Layout layout = layout_of(x);
  RescaleArgs args{d, layout, in_layout(x, layout), g.contiguous(), {}};
  if (identity) {
    check_same_as(*identity, "identity", x);
    args.identity = in_layout(*identity, layout);
  }
  return args;
}

struct RescaleBackwardSumsArgs {
  Dims d;
  Layout layout;
  at::Tensor grad_y, x, y;  // y undefined in the plain form
};

inline RescaleBackwardSumsArgs prepare_rescale_backward_sums(
    const at::Tensor& grad_y, const at::Tensor& x, const std::optional<at::Tensor>& y) {
  const Dims d = check_feature_map(x, "x");
  check_same_as(grad_y, "grad_y", x);
  const Layout layout = layout_of(x);
  RescaleBackwardSumsArgs args{d, layout, in_layout(grad_y, layout), in_layout(x, layout), {}};
  if (y) {
    check_same_as(*y, "y", x);
    args.y = in_layout(*y, layout);
  }
  return args;
}

struct RescaleBackwardInputArgs {
  Dims d;
  Layout layout;
  at::Tensor grad_y, g, y;  // y undefined in the plain form; grad_s is left to the caller
};

inline RescaleBackwardInputArgs prepare_rescale_backward_input(
    const at::Tensor& grad_y, const at::Tensor& g, const at::Tensor& grad_s,
    const std::optional<at::Tensor>& y) {
  const Dims d = check_feature_map(grad_y, "grad_y");
  check_statistic(g, "g", {d.N, d.C}, grad_y);
  check_statistic(grad_s, "grad_s", {d.N, d.C, d.T}, grad_y);
  const Layout layout = layout_of(grad_y);
  RescaleBackwardInputArgs args{d, layout, in_layout(grad_y, layout), g.contiguous(), {}};
  if (y) {
    check_same_as(*y, "y", grad_y);
    args.y = in_layout(*y, layout);
  }
  return args;
}

// Outputs of rescale_backward_input: grad_x and grad_identity (empty in the plain form).
inline std::tuple<at::Tensor, at::Tensor> empty_input_grads(const RescaleBackwardInputArgs& a) {
  return {at::empty_like(a.grad_y),
          a.y.defined() ? at::empty_like(a.grad_y) : at::empty({0}, a.grad_y.options())};
}

inline at::Tensor empty_statistic(const at::Tensor& x, const Dims& d) {
  return at::empty({d.N, d.C, d.T}, x.options().dtype(accumulate_type(x.scalar_type())));
}

}  // namespace stc_ext
