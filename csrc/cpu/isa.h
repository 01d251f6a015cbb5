// Instruction-set dispatch and vector helpers for the CPU kernels' hot loops.
//
// The extension is built without -march flags, so that one build runs on any x86-64 CPU;
// its loops would then be vectorised for SSE2 only, which leaves bf16/fp16 conversions
// and the gate's dot products compute-bound. A function marked STC_CPU_CLONES is compiled
// three times (x86-64-v4: AVX-512; x86-64-v3: AVX2 + FMA; baseline), and the dynamic
// loader picks the best one the CPU supports when the extension is loaded (GCC's
// target_clones, an ELF ifunc). Everything a clone calls inline is compiled with its
// instruction set, so the functions that run the loops are the ones marked, and the
// per-element lambdas and vector helpers they call are inlined into them. Elsewhere
// (other compilers or targets) the macro is empty and the baseline build is used.
//
// Vec<T, W> is W lanes of T as a GCC vector (W = 1: T itself, for loop tails); loads and
// stores convert between a storage type and the accumulation type lane by lane, with
// bf16 handled as integer arithmetic (it is the top half of a float32; rounding is to
// nearest even, NaN stays NaN) so that it stays vector code.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    __GNUC__ >= 12
#define STC_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define STC_CPU_CLONES
#endif

#define STC_INLINE inline __attribute__((always_inline))

// Vectors are passed between always-inlined helpers only, never across a call boundary.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace stc_ext {

// --- scalars ------------------------------------------------------------------------------

template <typename acc_t, typename scalar_t>
STC_INLINE acc_t load_as(scalar_t v) {
  return static_cast<acc_t>(v);
}

template <>
STC_INLINE float load_as<float, c10::BFloat16>(c10::BFloat16 v) {
  const uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

template <typename scalar_t, typename acc_t>
STC_INLINE scalar_t store_as(acc_t v) {
  return static_cast<scalar_t>(v);
}

template <>
STC_INLINE c10::BFloat16 store_as<c10::BFloat16, float>(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  const uint16_t out = v != v ? uint16_t(0x7FC0) : static_cast<uint16_t>(rounded);
  return c10::BFloat16(out, c10::BFloat16::from_bits());
}

// --- vectors ------------------------------------------------------------------------------

template <typename T, int W>
struct VecType {
  typedef T type __attribute__((vector_size(W * sizeof(T))));
};
template <typename T>
struct VecType<T, 1> {
  using type = T;
};
template <typename T, int W>
using Vec = typename VecType<T, W>::type;

// Lanes per 64-byte vector (an AVX-512 register; two AVX2 or four SSE registers).
template <typename acc_t>
constexpr int kVecLanes = 64 / sizeof(acc_t);

template <int W, typename acc_t, typename scalar_t>
STC_INLINE Vec<acc_t, W> load_vec(const scalar_t* p) {
  if constexpr (W == 1) {
    return load_as<acc_t>(*p);
  } else if constexpr (std::is_same_v<acc_t, scalar_t>) {
    Vec<acc_t, W> v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  } else if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<scalar_t, c10::BFloat16>) {
    Vec<uint16_t, W> half;
    std::memcpy(&half, p, sizeof(half));
    return (Vec<float, W>)(__builtin_convertvector(half, Vec<uint32_t, W>) << 16);
  } else {
    Vec<acc_t, W> v;
    for (int l = 0; l < W; ++l) v[l] = load_as<acc_t>(p[l]);
    return v;
  }
}

template <int W, typename acc_t, typename scalar_t>
STC_INLINE void store_vec(scalar_t* p, Vec<acc_t, W> v) {
  if constexpr (W == 1) {
    *p = store_as<scalar_t>(v);
  } else if constexpr (std::is_same_v<acc_t, scalar_t>) {
    std::memcpy(p, &v, sizeof(v));
  } else if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<scalar_t, c10::BFloat16>) {
    using Bits = Vec<uint32_t, W>;
    const Bits bits = (Bits)v;
    Bits rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    rounded = v != v ? Bits{} + 0x7FC0u : rounded;
    const Vec<uint16_t, W> half = __builtin_convertvector(rounded, Vec<uint16_t, W>);
    std::memcpy(p, &half, sizeof(half));
  } else {
    for (int l = 0; l < W; ++l) p[l] = store_as<scalar_t>(v[l]);
  }
}

// The sum of a vector's lanes as a tree: the two halves added lane by lane, until one
// lane is left (log2(W) vector adds instead of W - 1 scalar ones; the order is the same
// for every instruction set).
template <int W, typename acc_t>
STC_INLINE acc_t sum_lanes(Vec<acc_t, W> v) {
  if constexpr (W == 1) {
    return v;
  } else {
    Vec<acc_t, W / 2> low, high;
    std::memcpy(&low, &v, sizeof(low));
    std::memcpy(&high, reinterpret_cast<const char*>(&v) + sizeof(low), sizeof(high));
    return sum_lanes<W / 2, acc_t>(low + high);
  }
}

}  // namespace stc_ext
