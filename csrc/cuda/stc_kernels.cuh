// The stc_ext CUDA kernels' host interface: raw pointers, sizes and a stream, nothing of
// torch. Both the torch glue (stc_cuda.cpp, a host compiler) and the kernel files
// (stc_sum.cu, stc_map.cu, nvcc) include it, so the kernels build and are checked with
// plain `nvcc -c` on machines whose torch has no CUDA (see tests/ops/test_cuda_sources.py).
//
// The ops (semantics: csrc/stc.cpp); optional inputs (identity, y) are given in the residual
// form only:
//   pool                      s[n,c,t]    = mean_hw x
//   rescale_backward_sums     sums[n,c,t] = sum_hw dy' * x,   dy' = dy (residual: dy * (y > 0))
//   rescale                   y = x * g[n,c]  (residual: relu(x * g[n,c] + identity))
//   rescale_backward_input    dx = g[n,c] * dy' + grad_s[n,c,t] / (H*W),  d_identity = dy'
// Feature maps are NCTHW-contiguous or NTHWC (channels_last_3d); statistics are contiguous
// arrays of the accumulation type: s, sums (N, C, T), g (N, C), grad_s (see below).
//
// Every function launches on `device.stream` only (no synchronisation, no allocation), so
// all of them can be captured in a CUDA graph. A launch that fails stops the remaining
// launches of the call; the error is left for the caller's cudaGetLastError (the glue's
// C10_CUDA_KERNEL_LAUNCH_CHECK).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace stc_ext {
namespace cuda_kernels {

enum class Layout : int { kNCTHW = 0, kNTHWC = 1 };

// One (N, C, T, H, W) feature map, H*W flattened.
struct Problem {
  int64_t N, C, T, HW;
  Layout layout;
};

struct Device {
  cudaStream_t stream;
  int num_sms;  // multiprocessors, for sizing grids
};

// The kernels index with 32 bits; larger tensors are processed in batch chunks, which
// works as long as one sample is smaller than this.
constexpr int64_t kMaxElementsPerLaunch = (int64_t{1} << 31) - 1;

// Accumulation type: float for __half, __nv_bfloat16 and float; double for double.
template <typename scalar_t>
struct Accumulate {
  using type = float;
};
template <>
struct Accumulate<double> {
  using type = double;
};
template <typename scalar_t>
using acc_t = typename Accumulate<scalar_t>::type;

// Bytes of scratch that pool / rescale_backward_sums need for the partial sums of split H*W
// sums (0 when no sum is split). Pass at least this much as `workspace`.
size_t sum_workspace_bytes(const Problem& problem, size_t element_size, int num_sms);

// The four ops. scalar_t is float, double, __half or __nv_bfloat16 (explicitly
// instantiated in stc_sum.cu and stc_map.cu). Optional inputs are nullptr when absent.
template <typename scalar_t>
void pool(const Problem& problem, const scalar_t* x, acc_t<scalar_t>* s, void* workspace,
          const Device& device);

template <typename scalar_t>
void rescale_backward_sums(const Problem& problem, const scalar_t* grad_y, const scalar_t* x,
                           const scalar_t* y, acc_t<scalar_t>* sums, void* workspace,
                           const Device& device);

template <typename scalar_t>
void rescale(const Problem& problem, const scalar_t* x, const acc_t<scalar_t>* g,
             const scalar_t* identity, scalar_t* y, const Device& device);

// grad_s is (N, C, T) for NCTHW and (N, T, C) (contiguous) for NTHWC: the order in which
// the layout visits it. grad_identity is written only in the residual form (y given).
template <typename scalar_t>
void rescale_backward_input(const Problem& problem, const scalar_t* grad_y,
                            const acc_t<scalar_t>* g, const acc_t<scalar_t>* grad_s,
                            const scalar_t* y, scalar_t* grad_x, scalar_t* grad_identity,
                            const Device& device);

}  // namespace cuda_kernels
}  // namespace stc_ext
