// Helpers shared by the stc_ext CUDA kernels: element conversion, 16-byte packs, fast
// 32-bit division, batch chunking. CUDA toolkit only.
//
// The per-thread work of every kernel is written as __host__ __device__ functions of the
// thread's coordinates, so csrc/cuda/testing/emulate.cu can run the same index arithmetic
// on the CPU (tests/ops/test_cuda_sources.py builds and runs it where nvcc exists); the
// __global__ wrappers add only the warp shuffles and shared memory that combine threads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "stc_kernels.cuh"

#define STC_HD __host__ __device__ __forceinline__

namespace stc_ext {
namespace cuda_kernels {
namespace detail {

constexpr int kThreads = 256;  // threads per block, every kernel
constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 4;  // independent 16-byte loads per input a thread issues before using them
constexpr int kBlocksPerSM = 8;  // kThreads * kBlocksPerSM = 2048, a full Ampere/Hopper SM

template <typename scalar_t>
constexpr uint32_t kPack = 16 / sizeof(scalar_t);  // elements per 16-byte access

STC_HD uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }
STC_HD uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }
STC_HD uint32_t round_up(uint32_t a, uint32_t m) { return (a + m - 1) / m * m; }
inline uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
// The smallest power of two >= v, at most cap (a power of two).
inline uint32_t pow2_at_least(uint64_t v, uint32_t cap) {
  uint32_t p = 1;
  while (p < v && p < cap) p <<= 1;
  return p;
}
inline uint32_t log2_exact(uint32_t pow2) {
  uint32_t s = 0;
  while ((1u << s) < pow2) ++s;
  return s;
}

// Loads/stores between memory and the accumulation type. Explicit intrinsics: torch builds
// .cu files with __CUDA_NO_HALF_CONVERSIONS__ / __CUDA_NO_BFLOAT16_CONVERSIONS__.
template <typename scalar_t>
struct Convert {  // float, double
  static STC_HD acc_t<scalar_t> to_acc(scalar_t v) { return v; }
  static STC_HD scalar_t from_acc(acc_t<scalar_t> v) { return v; }
};
template <>
struct Convert<__half> {
  static STC_HD float to_acc(__half v) { return __half2float(v); }
  static STC_HD __half from_acc(float v) { return __float2half_rn(v); }
};
template <>
struct Convert<__nv_bfloat16> {
  static STC_HD float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
  static STC_HD __nv_bfloat16 from_acc(float v) { return __float2bfloat16_rn(v); }
};

// kPack consecutive elements: one 16-byte access when the address is 16-byte aligned.
template <typename scalar_t>
struct alignas(16) Pack {
  scalar_t v[kPack<scalar_t>];
};

// Pack at p. kAligned: p is 16-byte aligned and all kPack elements exist (one 16-byte
// load); otherwise the first `count` elements are loaded one by one and the rest zeroed.
template <typename scalar_t, bool kAligned>
STC_HD Pack<scalar_t> load_pack(const scalar_t* p, uint32_t count) {
  if constexpr (kAligned) {
    return *reinterpret_cast<const Pack<scalar_t>*>(p);
  } else {
    Pack<scalar_t> out;
#pragma unroll
    for (uint32_t j = 0; j < kPack<scalar_t>; ++j)
      out.v[j] = j < count ? p[j] : Convert<scalar_t>::from_acc(acc_t<scalar_t>(0));
    return out;
  }
}

template <typename scalar_t, bool kAligned>
STC_HD void store_pack(scalar_t* p, const Pack<scalar_t>& pack, uint32_t count) {
  if constexpr (kAligned) {
    *reinterpret_cast<Pack<scalar_t>*>(p) = pack;
  } else {
#pragma unroll
    for (uint32_t j = 0; j < kPack<scalar_t>; ++j)
      if (j < count) p[j] = pack.v[j];
  }
}

inline bool is_aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// n / d and n % d for a fixed divisor 1 <= d < 2^31 and dividends n < 2^31, by a multiply
// and a shift (Granlund & Montgomery; the same construction as PyTorch's IntDivider).
struct FastDivmod {
  uint32_t divisor = 1, multiplier = 1, shift = 0;

  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {
    shift = 0;
    while (shift < 32 && (uint64_t{1} << shift) < d) ++shift;
    const uint64_t one = 1;
    multiplier = static_cast<uint32_t>(((one << 32) * ((one << shift) - d)) / d + 1);
  }
  STC_HD uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t t = __umulhi(n, multiplier);
#else
    const uint32_t t = static_cast<uint32_t>((uint64_t{n} * multiplier) >> 32);
#endif
    return (t + n) >> shift;
  }
  STC_HD void divmod(uint32_t n, uint32_t& q, uint32_t& r) const {
    q = div(n);
    r = n - q * divisor;
  }
};

// Calls fn(n0, nb) for consecutive batch ranges [n0, n0 + nb) holding at most
// max_elements elements each (at least one sample), so each launch indexes with 32 bits.
template <typename Fn>
void for_each_batch_chunk(const Problem& p, int64_t max_elements, Fn&& fn) {
  const int64_t per_sample = p.C * p.T * p.HW;
  int64_t nb = max_elements / per_sample;
  if (nb < 1) nb = 1;
  for (int64_t n0 = 0; n0 < p.N; n0 += nb) fn(n0, p.N - n0 < nb ? p.N - n0 : nb);
}

}  // namespace detail
}  // namespace cuda_kernels
}  // namespace stc_ext
