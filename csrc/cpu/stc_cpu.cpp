// Fused CPU kernels for the stc_ext kernel ops (schemas and semantics: csrc/stc.cpp).
//
// Memory traffic, in passes over an (N, C, T, H, W) tensor:
//   forward:  pool reads x once; rescale reads x (and, residual form, identity) once and
//             writes y once.
//   backward: rescale_backward_sums reads dy and x (and, residual form, y for the ReLU mask)
//             once; rescale_backward_input reads dy (and y) once and writes dx (and
//             d_identity).
// Everything per (n, c) or (n, c, t) is tiny and kept in the accumulation type. The big
// outputs come from the output cache (output_cache.h), so a loop that frees them reuses
// their pages instead of faulting in fresh ones.
//
// Two traversals serve all four ops, for both layouts:
//   sum rows   out[n,c,t] = scale * sum_hw elem(i)
//   map rows   op(i, a[n,c], b[n,c,t]) for every element offset i
// Work is split with at::parallel_for (the extension is built with OpenMP) into ranges of
// rows; each range runs in a function compiled per instruction set (STC_CPU_CLONES,
// isa.h) with the per-element lambda inlined, so the loops are vectorised (omp simd) with
// the widest vectors the CPU has. Each (n, c, t) sum is taken by one thread, in an order
// fixed by the instruction set, so results do not depend on the thread count.
// -fno-trapping-math lets GCC turn the ReLU mask into a vector select (with trapping math
// it stays a branch: about 10x slower on random data).
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>

#include "../stc_common.h"
#include "isa.h"
#include "output_cache.h"

namespace stc_ext {
namespace {

constexpr int64_t kGrainElements = 32768;  // elements per parallel task, at least
constexpr int64_t kChannelBlock = 256;     // channels per task in the NTHWC H*W sum

inline int64_t grain_for(int64_t elements_per_item) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, elements_per_item));
}

// --- the traversals' inner loops, one range of rows each -------------------------------

// out[row] = scale * sum of elem(row * hw + i) over i < hw, for NCTHW rows (n, c, t).
template <typename acc_t, typename Elem>
STC_CPU_CLONES void sum_rows_ncthw(Elem elem, int64_t hw, acc_t scale, acc_t* out,
                                   int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    const int64_t base = row * hw;
    acc_t sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < hw; ++i) sum += elem(base + i);
    out[row] = sum * scale;
  }
}

// The same sums for NTHWC: item (n*T + t) * blocks + b sweeps the H*W positions,
// accumulating channels [b * kChannelBlock, ...) of (n, t).
template <typename acc_t, typename Elem>
STC_CPU_CLONES void sum_rows_nthwc(Elem elem, Dims d, int64_t blocks, acc_t scale, acc_t* out,
                                   int64_t begin, int64_t end) {
  std::array<acc_t, kChannelBlock> acc;
  for (int64_t item = begin; item < end; ++item) {
    const int64_t nt = item / blocks;
    const int64_t c0 = (item % blocks) * kChannelBlock;
    const int64_t width = std::min(kChannelBlock, d.C - c0);
    for (int64_t c = 0; c < width; ++c) acc[c] = acc_t(0);
    for (int64_t hw = 0; hw < d.HW; ++hw) {
      const int64_t base = (nt * d.HW + hw) * d.C + c0;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) acc[c] += elem(base + c);
    }
    const int64_t n = nt / d.T, t = nt % d.T;
    for (int64_t c = 0; c < width; ++c) out[((n * d.C) + c0 + c) * d.T + t] = acc[c] * scale;
  }
}

// op(i, a[n*C + c], b[row]) for the elements i of NCTHW rows row = (n*C + c)*T + t;
// b may be null (then 0).
template <typename acc_t, typename Op>
STC_CPU_CLONES void map_rows_ncthw(Op op, Dims d, const acc_t* a, const acc_t* b,
                                   int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    const acc_t a_row = a[row / d.T];
    const acc_t b_row = b ? b[row] : acc_t(0);
    const int64_t base = row * d.HW;
#pragma omp simd
    for (int64_t i = base; i < base + d.HW; ++i) op(i, a_row, b_row);
  }
}

// The same for NTHWC positions pos = (n*T + t)*HW + hw, each a row of C channels;
// b is laid out (N, T, C) here, so that it is read in order.
template <typename acc_t, typename Op>
STC_CPU_CLONES void map_rows_nthwc(Op op, Dims d, const acc_t* a, const acc_t* b,
                                   int64_t begin, int64_t end) {
  for (int64_t pos = begin; pos < end; ++pos) {
    const int64_t nt = pos / d.HW, n = nt / d.T;
    const acc_t* a_row = a + n * d.C;
    const int64_t base = pos * d.C;
    if (b) {
      const acc_t* b_row = b + nt * d.C;
#pragma omp simd
      for (int64_t c = 0; c < d.C; ++c) op(base + c, a_row[c], b_row[c]);
    } else {
#pragma omp simd
      for (int64_t c = 0; c < d.C; ++c) op(base + c, a_row[c], acc_t(0));
    }
  }
}

// --- the traversals ---------------------------------------------------------------------

template <typename acc_t, typename Elem>
void sum_hw_to_nct(Layout layout, const Dims& d, Elem elem, acc_t scale, acc_t* out) {
  if (layout == Layout::kNCTHW) {
    at::parallel_for(0, d.N * d.C * d.T, grain_for(d.HW), [&](int64_t begin, int64_t end) {
      sum_rows_ncthw<acc_t>(elem, d.HW, scale, out, begin, end);
    });
    return;
  }
  const int64_t blocks = (d.C + kChannelBlock - 1) / kChannelBlock;
  at::parallel_for(0, d.N * d.T * blocks, grain_for(d.HW * std::min(d.C, kChannelBlock)),
                   [&](int64_t begin, int64_t end) {
                     sum_rows_nthwc<acc_t>(elem, d, blocks, scale, out, begin, end);
                   });
}

// op(i, a[n, c], b[n, c, t]) for every element; a is (N, C), b is (N, C, T) or null (0).
template <typename acc_t, typename Op>
void for_each_element(Layout layout, const Dims& d, const acc_t* a, const at::Tensor& b, Op op) {
  if (layout == Layout::kNCTHW) {
    const acc_t* bp = b.defined() ? b.const_data_ptr<acc_t>() : nullptr;
    at::parallel_for(0, d.N * d.C * d.T, grain_for(d.HW), [&](int64_t begin, int64_t end) {
      map_rows_ncthw<acc_t>(op, d, a, bp, begin, end);
    });
    return;
  }
  const at::Tensor b_ntc = b.defined() ? b.transpose(1, 2).contiguous() : at::Tensor();
  const acc_t* bp = b.defined() ? b_ntc.const_data_ptr<acc_t>() : nullptr;
  at::parallel_for(0, d.N * d.T * d.HW, grain_for(d.C), [&](int64_t begin, int64_t end) {
    map_rows_nthwc<acc_t>(op, d, a, bp, begin, end);
  });
}

template <typename acc_t>
inline acc_t relu(acc_t v) {
  return v > acc_t(0) ? v : acc_t(0);
}

// 1 where the residual form's ReLU passed its input (y > 0), else 0. A multiply instead
// of a branch keeps the loops vectorised.
template <typename acc_t, typename scalar_t>
inline acc_t relu_mask(scalar_t y) {
  return static_cast<acc_t>(load_as<acc_t>(y) > acc_t(0));
}

// --- the ops ----------------------------------------------------------------------------

at::Tensor pool_cpu(const at::Tensor& x_in) {
  const FeatureMapArgs a = prepare_pool(x_in);
  const Dims& d = a.d;
  const at::Tensor& x = a.x;
  at::Tensor s = empty_statistic(x, d);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "stc_pool_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    sum_hw_to_nct<acc_t>(a.layout, d, [=](int64_t i) { return load_as<acc_t>(xp[i]); },
                         acc_t(1) / acc_t(d.HW), s.mutable_data_ptr<acc_t>());
  });
  return s;
}

at::Tensor rescale_cpu(const at::Tensor& x_in, const at::Tensor& g_in,
                       const std::optional<at::Tensor>& identity_in) {
  const RescaleArgs a = prepare_rescale(x_in, g_in, identity_in);
  const at::Tensor &x = a.x, &identity = a.identity;
  at::Tensor y = empty_like_cached(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "stc_rescale_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    const acc_t* gp = a.g.const_data_ptr<acc_t>();
    if (identity.defined()) {
      const scalar_t* ip = identity.const_data_ptr<scalar_t>();
      for_each_element<acc_t>(a.layout, a.d, gp, {}, [=](int64_t i, acc_t gv, acc_t) {
        yp[i] = store_as<scalar_t>(relu(load_as<acc_t>(xp[i]) * gv + load_as<acc_t>(ip[i])));
      });
    } else {
      for_each_element<acc_t>(a.layout, a.d, gp, {}, [=](int64_t i, acc_t gv, acc_t) {
        yp[i] = store_as<scalar_t>(load_as<acc_t>(xp[i]) * gv);
      });
    }
  });
  return y;
}

at::Tensor rescale_backward_sums_cpu(const at::Tensor& grad_y_in, const at::Tensor& x_in,
                                     const std::optional<at::Tensor>& y_in) {
  const RescaleBackwardSumsArgs a = prepare_rescale_backward_sums(grad_y_in, x_in, y_in);
  const at::Tensor &grad_y = a.grad_y, &x = a.x, &y = a.y;
  at::Tensor sums = empty_statistic(x, a.d);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "stc_rescale_backward_sums_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* dyp = grad_y.const_data_ptr<scalar_t>();
    acc_t* sp = sums.mutable_data_ptr<acc_t>();
    if (y.defined()) {
      const scalar_t* yp = y.const_data_ptr<scalar_t>();
      sum_hw_to_nct<acc_t>(a.layout, a.d, [=](int64_t i) {
        return load_as<acc_t>(dyp[i]) * load_as<acc_t>(xp[i]) * relu_mask<acc_t>(yp[i]);
      }, acc_t(1), sp);
    } else {
      sum_hw_to_nct<acc_t>(a.layout, a.d, [=](int64_t i) {
        return load_as<acc_t>(dyp[i]) * load_as<acc_t>(xp[i]);
      }, acc_t(1), sp);
    }
  });
  return sums;
}

std::tuple<at::Tensor, at::Tensor> rescale_backward_input_cpu(
    const at::Tensor& grad_y_in, const at::Tensor& g_in, const at::Tensor& grad_s,
    const std::optional<at::Tensor>& y_in) {
  const RescaleBackwardInputArgs a = prepare_rescale_backward_input(grad_y_in, g_in, grad_s, y_in);
  const at::Tensor &grad_y = a.grad_y, &y = a.y;
  // The pooled-gradient term of every element, ds/(H*W).
  const at::Tensor pooled_term = grad_s.contiguous() / static_cast<double>(a.d.HW);
  at::Tensor grad_x = empty_like_cached(grad_y);
  at::Tensor grad_identity =
      y.defined() ? empty_like_cached(grad_y) : at::empty({0}, grad_y.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_y.scalar_type(), "stc_rescale_backward_input_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* dyp = grad_y.const_data_ptr<scalar_t>();
    scalar_t* dxp = grad_x.mutable_data_ptr<scalar_t>();
    const acc_t* gp = a.g.const_data_ptr<acc_t>();
    if (y.defined()) {
      const scalar_t* yp = y.const_data_ptr<scalar_t>();
      scalar_t* dip = grad_identity.mutable_data_ptr<scalar_t>();
      for_each_element<acc_t>(a.layout, a.d, gp, pooled_term, [=](int64_t i, acc_t gv, acc_t pv) {
        const acc_t dy = load_as<acc_t>(dyp[i]) * relu_mask<acc_t>(yp[i]);
        dxp[i] = store_as<scalar_t>(gv * dy + pv);
        dip[i] = store_as<scalar_t>(dy);
      });
    } else {
      for_each_element<acc_t>(a.layout, a.d, gp, pooled_term, [=](int64_t i, acc_t gv, acc_t pv) {
        dxp[i] = store_as<scalar_t>(gv * load_as<acc_t>(dyp[i]) + pv);
      });
    }
  });
  return {grad_x, grad_identity};
}

}  // namespace

TORCH_LIBRARY_IMPL(stc_ext, CPU, m) {
  m.impl("pool", &pool_cpu);
  m.impl("rescale", &rescale_cpu);
  m.impl("rescale_backward_sums", &rescale_backward_sums_cpu);
  m.impl("rescale_backward_input", &rescale_backward_input_cpu);
}

}  // namespace stc_ext
