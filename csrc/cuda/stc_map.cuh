// The elementwise passes: rescale (y = x*g, or in the residual form relu(x*g + identity))
// and rescale_backward_input (dx = g*dy' + grad_s/(H*W), d_identity = dy').
//
// Memory traffic, one pass: rescale reads X (and the identity) once and writes Y once;
// rescale_backward_input reads dY (and Y, for the ReLU mask) once and writes dX (and
// d_identity) once. g (N*C values) and grad_s (N*C*T) are tiny and served from cache;
// grad_s comes in the layout's order ((N, T, C) for NTHWC) so that a warp reads it
// contiguously in both layouts.
//
// Both layouts are one flat loop over 16-byte packs of kPack elements (grid-stride, each
// thread issuing kUnroll packs' loads before using them). The coordinates are computed once
// per pack with fast 32-bit division. A pack inside one (n,c,t) row (NCTHW) needs one g
// and one grad_s; a pack over kPack channels of one position (NTHWC, C a multiple of
// kPack) reads them as 16-byte runs. A pack that crosses a row (H*W not a multiple of
// kPack) or a position (C not a multiple) walks its elements' coordinates one by one
// (Coefficients), with no per-element division. The tensor's last pack may be partial; it
// is loaded and stored element by element. 16-byte accesses are used when every pointer
// is 16-byte aligned (a run-time flag: the kernel has the scalar path anyway, for the
// partial pack), scalar ones otherwise, with the same indices.
//
// What only a GPU can check: results against float64 for both layouts, H*W and C not
// multiples of kPack, numel not a multiple of kPack, misaligned views
// (tests/ops/test_cuda_gpu.py); out-of-bounds accesses (compute-sanitizer memcheck, not part
// of the test suite). Without a GPU, testing/emulate.cu runs the per-thread code on the CPU.
#pragma once

#include "stc_device.cuh"

namespace stc_ext {
namespace cuda_kernels {
namespace detail {

// rescale: inputs x (, identity in the residual form); output y.
template <bool kResidual>
struct RescaleOp {
  static constexpr int kInputs = kResidual ? 2 : 1;
  static constexpr int kOutputs = 1;
  static constexpr bool kUsesGradS = false;
  template <typename A>
  STC_HD static void apply(const A* in, A g, A /*pooled*/, A* out) {
    A v = in[0] * g;
    if constexpr (kResidual) {
      v += in[1];
      v = v > A(0) ? v : A(0);  // as the CPU kernel: NaN -> 0
    }
    out[0] = v;
  }
};

// rescale_backward_input: inputs grad_y (, y); outputs grad_x (, grad_identity): the
// residual form's extras in parentheses.
template <bool kResidual>
struct RescaleBackwardInputOp {
  static constexpr int kInputs = kResidual ? 2 : 1;
  static constexpr int kOutputs = kResidual ? 2 : 1;
  static constexpr bool kUsesGradS = true;
  template <typename A>
  STC_HD static void apply(const A* in, A g, A pooled, A* out) {
    A dy = in[0];
    if constexpr (kResidual) dy = in[1] > A(0) ? dy : A(0);
    out[0] = g * dy + pooled;
    if constexpr (kResidual) out[1] = dy;
  }
};

template <typename scalar_t>
struct MapArgs {
  using acc = acc_t<scalar_t>;
  const scalar_t* in[2];
  scalar_t* out[2];
  const acc* g;       // (N, C)
  const acc* grad_s;  // (N, C, T) for NCTHW, (N, T, C) for NTHWC; null for rescale
  acc inv_hw;
  uint32_t numel, packs;
  uint32_t C, T, HW;
  FastDivmod div_C, div_T, div_HW;
  bool vectorized;  // every tensor pointer 16-byte aligned: whole packs move in 16-byte accesses
  // NTHWC: C % kPack == 0 and g, grad_s 16-byte aligned, so a whole pack covers kPack
  // channels of one position and reads their coefficients as 16-byte runs.
  bool channel_runs;
};

// kPack accumulation-type values: g or grad_s of one pack's channels (NTHWC).
template <typename scalar_t>
struct alignas(16) AccRun {
  acc_t<scalar_t> v[kPack<scalar_t>];
};

// Each element's coefficients g[n,c] and grad_s[n,c,t]/(H*W) for the pack starting at
// flat index i0 with `count` valid elements. Fast paths: a pack inside one (n,c,t) row
// (NCTHW) or over kPack channels of one position (NTHWC); otherwise element by element.
template <typename scalar_t, bool kPooled, Layout L>
struct Coefficients;

template <typename scalar_t, bool kPooled>
struct Coefficients<scalar_t, kPooled, Layout::kNCTHW> {  // i = row * HW + rem, row = nc*T + t
  using acc = acc_t<scalar_t>;
  acc g[kPack<scalar_t>], pooled[kPack<scalar_t>];

  STC_HD Coefficients(const MapArgs<scalar_t>& a, uint32_t i0, uint32_t count) {
    uint32_t row, rem, nc, t;
    a.div_HW.divmod(i0, row, rem);
    a.div_T.divmod(row, nc, t);
    if (rem + count <= a.HW) {  // one row: one g and one grad_s for the whole pack
      const acc gv = a.g[nc];
      const acc pv = kPooled ? a.grad_s[row] * a.inv_hw : acc(0);
#pragma unroll
      for (uint32_t j = 0; j < kPack<scalar_t>; ++j) {
        g[j] = gv;
        pooled[j] = pv;
      }
      return;
    }
#pragma unroll
    for (uint32_t j = 0; j < kPack<scalar_t>; ++j) {
      if (j < count) {  // never step past the last element: g[N*C] does not exist
        g[j] = a.g[nc];
        pooled[j] = kPooled ? a.grad_s[row] * a.inv_hw : acc(0);
        if (++rem == a.HW) {
          rem = 0;
          ++row;
          if (++t == a.T) {
            t = 0;
            ++nc;
          }
        }
      } else {
        g[j] = pooled[j] = acc(0);
      }
    }
  }
};

template <typename scalar_t, bool kPooled>
struct Coefficients<scalar_t, kPooled, Layout::kNTHWC> {  // i = ((n*T + t)*HW + hw)*C + c
  using acc = acc_t<scalar_t>;
  acc g[kPack<scalar_t>], pooled[kPack<scalar_t>];

  STC_HD Coefficients(const MapArgs<scalar_t>& a, uint32_t i0, uint32_t count) {
    uint32_t position, c, nt, hw, n, t;
    a.div_C.divmod(i0, position, c);
    a.div_HW.divmod(position, nt, hw);
    a.div_T.divmod(nt, n, t);
    if (a.channel_runs && count == kPack<scalar_t>) {  // channels c .. c+kPack-1 of one position
      const AccRun<scalar_t> gs = *reinterpret_cast<const AccRun<scalar_t>*>(a.g + n * a.C + c);
      AccRun<scalar_t> ps{};
      if (kPooled) ps = *reinterpret_cast<const AccRun<scalar_t>*>(a.grad_s + nt * a.C + c);
#pragma unroll
      for (uint32_t j = 0; j < kPack<scalar_t>; ++j) {
        g[j] = gs.v[j];
        pooled[j] = kPooled ? ps.v[j] * a.inv_hw : acc(0);
      }
      return;
    }
#pragma unroll
    for (uint32_t j = 0; j < kPack<scalar_t>; ++j) {
      if (j < count) {
        g[j] = a.g[n * a.C + c];
        pooled[j] = kPooled ? a.grad_s[(n * a.T + t) * a.C + c] * a.inv_hw : acc(0);
        if (++c == a.C) {
          c = 0;
          if (++hw == a.HW) {
            hw = 0;
            if (++t == a.T) {
              t = 0;
              ++n;
            }
          }
        }
      } else {
        g[j] = pooled[j] = acc(0);
      }
    }
  }
};

template <typename scalar_t, typename Op>
STC_HD void map_load(const MapArgs<scalar_t>& a, uint32_t p,
                     Pack<scalar_t> (&in)[Op::kInputs]) {
  constexpr uint32_t P = kPack<scalar_t>;
  const uint32_t count = min_u32(P, a.numel - p * P);
#pragma unroll
  for (int s = 0; s < Op::kInputs; ++s)
    in[s] = a.vectorized && count == P ? load_pack<scalar_t, true>(a.in[s] + p * P, P)
                                       : load_pack<scalar_t, false>(a.in[s] + p * P, count);
}

template <typename scalar_t, typename Op, Layout L>
STC_HD void map_compute_store(const MapArgs<scalar_t>& a, uint32_t p,
                              const Pack<scalar_t> (&in)[Op::kInputs]) {
  using acc = acc_t<scalar_t>;
  constexpr uint32_t P = kPack<scalar_t>;
  const uint32_t count = min_u32(P, a.numel - p * P);
  const Coefficients<scalar_t, Op::kUsesGradS, L> coef(a, p * P, count);
  Pack<scalar_t> out[Op::kOutputs];
#pragma unroll
  for (uint32_t j = 0; j < P; ++j) {
    acc v[Op::kInputs], o[Op::kOutputs];
#pragma unroll
    for (int s = 0; s < Op::kInputs; ++s) v[s] = Convert<scalar_t>::to_acc(in[s].v[j]);
    Op::apply(v, coef.g[j], coef.pooled[j], o);  // j >= count: zeros, never stored
#pragma unroll
    for (int s = 0; s < Op::kOutputs; ++s) out[s].v[j] = Convert<scalar_t>::from_acc(o[s]);
  }
#pragma unroll
  for (int s = 0; s < Op::kOutputs; ++s) {
    if (a.vectorized && count == P)
      store_pack<scalar_t, true>(a.out[s] + p * P, out[s], P);
    else
      store_pack<scalar_t, false>(a.out[s] + p * P, out[s], count);
  }
}

// Thread `thread` of block `block` in a grid of `grid` blocks: packs
// block*kThreads*kUnroll + u*kThreads + thread (u < kUnroll), then the next grid stride.
template <typename scalar_t, typename Op, Layout L>
STC_HD void map_thread(const MapArgs<scalar_t>& a, uint32_t block, uint32_t thread,
                       uint32_t grid) {
  const uint32_t stride = grid * kThreads * kUnroll;
  for (uint32_t first = block * kThreads * kUnroll + thread; first < a.packs; first += stride) {
    Pack<scalar_t> in[kUnroll][Op::kInputs];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (first + u * kThreads < a.packs)
        map_load<scalar_t, Op>(a, first + u * kThreads, in[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (first + u * kThreads < a.packs)
        map_compute_store<scalar_t, Op, L>(a, first + u * kThreads, in[u]);
  }
}

#ifdef __CUDACC__
template <typename scalar_t, typename Op, Layout L>
__global__ void __launch_bounds__(kThreads) map_kernel(const MapArgs<scalar_t> a) {
  map_thread<scalar_t, Op, L>(a, blockIdx.x, threadIdx.x, gridDim.x);
}
#endif  // __CUDACC__

// Grid of the map kernel: enough blocks for every pack, at most one full wave (the
// grid-stride loop covers the rest).
inline uint32_t map_blocks(uint32_t packs, int num_sms) {
  const uint64_t needed = ceil_div(packs, uint64_t{kThreads} * kUnroll);
  const uint64_t wave = static_cast<uint64_t>(num_sms > 0 ? num_sms : 1) * kBlocksPerSM;
  return static_cast<uint32_t>(needed < wave ? needed : wave);
}

// One op's elementwise pass over all batch chunks; `exec` runs the launches.
template <typename scalar_t, typename Op, typename Exec>
void run_map(const Problem& p, const scalar_t* const (&in)[2], scalar_t* const (&out)[2],
             const acc_t<scalar_t>* g, const acc_t<scalar_t>* grad_s, int num_sms, Exec& exec) {
  constexpr uint32_t P = kPack<scalar_t>;
  const int64_t sample = p.C * p.T * p.HW;
  for_each_batch_chunk(p, exec.max_elements(), [&](int64_t n0, int64_t nb) {
    if (!exec.ok()) return;
    MapArgs<scalar_t> a;
    a.vectorized = true;
    for (int s = 0; s < 2; ++s) {
      a.in[s] = s < Op::kInputs ? in[s] + n0 * sample : nullptr;
      a.out[s] = s < Op::kOutputs ? out[s] + n0 * sample : nullptr;
      if (a.in[s] != nullptr) a.vectorized = a.vectorized && is_aligned16(a.in[s]);
      if (a.out[s] != nullptr) a.vectorized = a.vectorized && is_aligned16(a.out[s]);
    }
    a.g = g + n0 * p.C;
    a.grad_s = Op::kUsesGradS ? grad_s + n0 * p.C * p.T : nullptr;
    a.inv_hw = acc_t<scalar_t>(1) / static_cast<acc_t<scalar_t>>(p.HW);
    a.numel = static_cast<uint32_t>(nb * sample);
    a.packs = static_cast<uint32_t>(ceil_div(a.numel, P));
    a.C = static_cast<uint32_t>(p.C);
    a.T = static_cast<uint32_t>(p.T);
    a.HW = static_cast<uint32_t>(p.HW);
    a.div_C = FastDivmod(a.C);
    a.div_T = FastDivmod(a.T);
    a.div_HW = FastDivmod(a.HW);
    a.channel_runs = p.C % P == 0 && is_aligned16(a.g) &&
                     (a.grad_s == nullptr || is_aligned16(a.grad_s));
    const uint32_t blocks = map_blocks(a.packs, num_sms);
    if (p.layout == Layout::kNCTHW)
      exec.template map<scalar_t, Op, Layout::kNCTHW>(a, blocks);
    else
      exec.template map<scalar_t, Op, Layout::kNTHWC>(a, blocks);
  });
}

}  // namespace detail
}  // namespace cuda_kernels
}  // namespace stc_ext
