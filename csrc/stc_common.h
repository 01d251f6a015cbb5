// Argument checks and layout handling shared by the CPU and CUDA implementations of the
// stc_ext ops (torch-facing glue only; the kernels themselves take raw pointers).
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

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

inline Dims check_feature_map(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() == 5, "stc_ext: ", name, " must be 5-D (N, C, T, H, W), got ", x.dim(),
              "-D tensor of shape ", x.sizes());
  TORCH_CHECK(x.numel() > 0, "stc_ext: ", name, " must not be empty, got shape ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "stc_ext: ", name,
              " must be float16, bfloat16, float32 or float64, got ", x.scalar_type());
  return Dims{x.size(0), x.size(1), x.size(2), x.size(3) * x.size(4)};
}

// `other` must match `x` in shape, dtype and device.
inline void check_same_as(const at::Tensor& other, const char* name, const at::Tensor& x) {
  TORCH_CHECK(other.sizes() == x.sizes(), "stc_ext: ", name, " must have shape ", x.sizes(),
              ", got ", other.sizes());
  TORCH_CHECK(other.scalar_type() == x.scalar_type(), "stc_ext: ", name, " must have dtype ",
              x.scalar_type(), ", got ", other.scalar_type());
  TORCH_CHECK(other.device() == x.device(), "stc_ext: ", name, " must be on ", x.device(),
              ", got ", other.device());
}

// A per-(n, c) or per-(n, c, t) statistic: accumulation dtype, given shape, x's device.
inline void check_statistic(const at::Tensor& s, const char* name, at::IntArrayRef shape,
                            const at::Tensor& x) {
  TORCH_CHECK(s.sizes() == shape, "stc_ext: ", name, " must have shape ", shape, ", got ",
              s.sizes());
  TORCH_CHECK(s.scalar_type() == accumulate_type(x.scalar_type()), "stc_ext: ", name,
              " must have dtype ", accumulate_type(x.scalar_type()), " for ", x.scalar_type(),
              " inputs, got ", s.scalar_type());
  TORCH_CHECK(s.device() == x.device(), "stc_ext: ", name, " must be on ", x.device(), ", got ",
              s.device());
}

}  // namespace stc_ext
