// The H*W sums: out[n,c,t] = scale * sum_hw term(inputs at (n,c,t,hw)), for pool
// (term = x, scale = 1/(H*W)) and rescale_backward_sums (term = dy*x, or in the residual
// form dy*x*(y>0)).
//
// Memory traffic: each input is read exactly once (one pass over X for pool; one over dY,
// X and, in the residual form, Y for the sums); N*C*T accumulation-type values are
// written. When a sum is split (few (n,c,t) rows, long H*W), each block writes one
// partial sum per output to the workspace and a second, tiny kernel adds them in a fixed
// order: splits*N*C*T extra values written and read, and no atomics, so the results are
// bitwise reproducible run to run.
//
// NCTHW: each (n,c,t) row of H*W elements is contiguous. A group of `group` lanes (a power
//   of two, 1..32, chosen so each lane has about kUnroll 16-byte packs to load) sums one
//   segment: the whole row, or a chunk of it when split. Packs are 16-byte aligned in the
//   flat tensor, so a row that does not start on a pack boundary has a scalar head and
//   tail of fewer than kPack elements. The group combines its lanes with xor shuffles.
// NTHWC: the H*W positions of one (n,t) are strided by C. A block covers one (n,t), a tile
//   of group*kPack channels and a range of positions: thread (tx, ty) owns the kPack
//   channels starting at (tile*group + tx)*kPack and positions ty, ty + 256/group, ...
//   It accumulates one sum per channel; xor shuffles combine the ty within a warp and
//   shared memory the warps, in a fixed order.
// 16-byte loads are used when every input is 16-byte aligned (and, for NTHWC, C is a
// multiple of kPack); otherwise the same index arithmetic runs with scalar loads.
//
// What only a GPU can check: results against float64 for both layouts, split and unsplit
// plans, misaligned inputs (tests/ops/test_cuda_gpu.py); races and out-of-bounds accesses
// (compute-sanitizer memcheck/racecheck, not part of the test suite); the achieved bandwidth
// of the split plan at small N (bench/bench_stc.py). Without a GPU, testing/emulate.cu runs
// the per-thread code on the CPU.
#pragma once

#include "stc_device.cuh"

namespace stc_ext {
namespace cuda_kernels {
namespace detail {

// What one element contributes; `v` holds the op's inputs at that element, in order.
struct PoolTerm {  // x
  static constexpr int kInputs = 1;
  template <typename A>
  STC_HD static A term(const A* v) { return v[0]; }
};
struct SumsTerm {  // grad_y, x
  static constexpr int kInputs = 2;
  template <typename A>
  STC_HD static A term(const A* v) { return v[0] * v[1]; }
};
struct ResidualSumsTerm {  // grad_y, x, y: the residual form's ReLU mask, read back from y
  static constexpr int kInputs = 3;
  template <typename A>
  STC_HD static A term(const A* v) { return v[2] > A(0) ? v[0] * v[1] : A(0); }
};

struct SumPlan {
  uint32_t group = 1;  // NCTHW: lanes per segment; NTHWC: threads along C (power of two <= 32)
  uint32_t log2_group = 0;
  uint32_t splits = 1;  // segments (NCTHW) or blocks (NTHWC) per output; > 1: partials + finalize
  uint32_t chunk = 1;   // NCTHW: elements per segment; NTHWC: H*W positions per block
  uint32_t ctiles = 1;  // NTHWC: channel tiles per (n, t)
  uint32_t rows = 1;    // outputs: N*C*T
  uint32_t blocks = 1;  // grid of the first-stage kernel
};

// Grid and work split for one launch over an (N, C, T, HW) batch chunk. A sum is
// split only when the unsplit grid would leave the device less than a full wave
// (num_sms * kBlocksPerSM blocks) and every thread still gets >= kUnroll loads per input.
inline SumPlan plan_sum(Layout layout, uint64_t N, uint64_t C, uint64_t T, uint64_t HW,
                        uint32_t pack, int num_sms) {
  SumPlan plan;
  plan.rows = static_cast<uint32_t>(N * C * T);
  const uint64_t target_blocks = static_cast<uint64_t>(num_sms > 0 ? num_sms : 1) * kBlocksPerSM;
  uint64_t splits = 1;
  if (layout == Layout::kNCTHW) {
    const uint64_t row_packs = ceil_div(HW, pack);
    plan.group = pow2_at_least(ceil_div(row_packs, kUnroll), 32);
    const uint64_t unsplit_blocks = ceil_div(uint64_t{plan.rows} * plan.group, kThreads);
    if (plan.group == 32 && unsplit_blocks < target_blocks) {
      const uint64_t max_splits = row_packs / (32 * kUnroll);
      splits = ceil_div(target_blocks, unsplit_blocks);
      if (splits > max_splits) splits = max_splits > 0 ? max_splits : 1;
    }
    plan.chunk = round_up(static_cast<uint32_t>(ceil_div(HW, splits)), pack);
    plan.splits = static_cast<uint32_t>(ceil_div(HW, plan.chunk));
    plan.blocks =
        static_cast<uint32_t>(ceil_div(uint64_t{plan.rows} * plan.splits * plan.group, kThreads));
  } else {
    const uint64_t channel_packs = ceil_div(C, pack);
    plan.group = pow2_at_least(channel_packs, 32);
    plan.ctiles = static_cast<uint32_t>(ceil_div(channel_packs, plan.group));
    const uint64_t positions_per_step = kThreads / plan.group;
    const uint64_t unsplit_blocks = N * T * plan.ctiles;
    if (unsplit_blocks < target_blocks) {
      const uint64_t max_splits = HW / (positions_per_step * kUnroll);
      splits = ceil_div(target_blocks, unsplit_blocks);
      if (splits > max_splits) splits = max_splits > 0 ? max_splits : 1;
    }
    plan.chunk = static_cast<uint32_t>(ceil_div(HW, splits));
    plan.splits = static_cast<uint32_t>(ceil_div(HW, plan.chunk));
    plan.blocks = static_cast<uint32_t>(unsplit_blocks * plan.splits);
  }
  plan.log2_group = log2_exact(plan.group);
  return plan;
}

// Partial sums the plan needs (0 when not split).
inline uint64_t workspace_values(const SumPlan& plan) {
  return plan.splits > 1 ? uint64_t{plan.rows} * plan.splits : 0;
}

template <typename scalar_t>
struct SumArgs {
  using acc = acc_t<scalar_t>;
  const scalar_t* in[3];  // the term's inputs; unused ones null
  acc* out;               // (rows,) in (n, c, t) order
  acc* partial;           // (rows, splits) when split
  acc scale;
  uint32_t C, T, HW;
  SumPlan plan;
  FastDivmod div_splits, div_ctiles, div_T;
};

// The result for output `index` (n*C + c)*T + t from split k.
template <typename scalar_t>
STC_HD void store_result(const SumArgs<scalar_t>& a, uint32_t index, uint32_t k,
                         acc_t<scalar_t> value) {
  if (a.plan.splits == 1)
    a.out[index] = value * a.scale;
  else
    a.partial[index * a.plan.splits + k] = value;
}

template <typename scalar_t, typename Term>
STC_HD acc_t<scalar_t> element_term(const SumArgs<scalar_t>& a, uint32_t i) {
  acc_t<scalar_t> v[Term::kInputs];
#pragma unroll
  for (int s = 0; s < Term::kInputs; ++s) v[s] = Convert<scalar_t>::to_acc(a.in[s][i]);
  return Term::term(v);
}

// NCTHW: lane `lane` (of plan.group) of segment `segment` = row * splits + k. Its sum
// over the segment's elements lane, lane + group, ... (in packs for the aligned body).
template <typename scalar_t, typename Term, bool kAligned>
STC_HD acc_t<scalar_t> ncthw_lane_sum(const SumArgs<scalar_t>& a, uint32_t segment,
                                      uint32_t lane) {
  using acc = acc_t<scalar_t>;
  constexpr uint32_t P = kPack<scalar_t>;
  const uint32_t G = a.plan.group;
  uint32_t row, k;
  a.div_splits.divmod(segment, row, k);
  const uint32_t row_begin = row * a.HW;
  const uint32_t begin = row_begin + k * a.plan.chunk;
  const uint32_t end = min_u32(begin + a.plan.chunk, row_begin + a.HW);
  // [begin, head_end) and [body_end, end): scalar; [head_end, body_end): whole packs.
  const uint32_t head_end = min_u32(round_up(begin, P), end);
  const uint32_t body_end = max_u32(head_end, end / P * P);

  acc sum = acc(0);
  for (uint32_t i = begin + lane; i < head_end; i += G) sum += element_term<scalar_t, Term>(a, i);
  for (uint32_t i = body_end + lane; i < end; i += G) sum += element_term<scalar_t, Term>(a, i);

  const uint32_t pack_end = body_end / P;
  for (uint32_t first = head_end / P + lane; first < pack_end; first += G * kUnroll) {
    Pack<scalar_t> packs[kUnroll][Term::kInputs];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t p = first + u * G;
      if (p < pack_end) {
#pragma unroll
        for (int s = 0; s < Term::kInputs; ++s)
          packs[u][s] = load_pack<scalar_t, kAligned>(a.in[s] + p * P, P);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (first + u * G < pack_end) {
#pragma unroll
        for (uint32_t j = 0; j < P; ++j) {
          acc v[Term::kInputs];
#pragma unroll
          for (int s = 0; s < Term::kInputs; ++s) v[s] = Convert<scalar_t>::to_acc(packs[u][s].v[j]);
          sum += Term::term(v);
        }
      }
    }
  }
  return sum;
}

// NTHWC block `block` = ((nt * ctiles) + tile) * splits + k, thread = ty * group + tx: sums
// over positions ty, ty + 256/group, ... of split k for its kPack channels.
template <typename scalar_t, typename Term, bool kAligned>
STC_HD void nthwc_thread_sums(const SumArgs<scalar_t>& a, uint32_t block, uint32_t thread,
                              acc_t<scalar_t> (&sums)[kPack<scalar_t>]) {
  using acc = acc_t<scalar_t>;
  constexpr uint32_t P = kPack<scalar_t>;
#pragma unroll
  for (uint32_t j = 0; j < P; ++j) sums[j] = acc(0);
  const uint32_t tx = thread & (a.plan.group - 1), ty = thread >> a.plan.log2_group;
  const uint32_t step = kThreads >> a.plan.log2_group;  // positions per pass of the block
  uint32_t rest, k, nt, tile;
  a.div_splits.divmod(block, rest, k);
  a.div_ctiles.divmod(rest, nt, tile);
  const uint32_t c0 = (tile * a.plan.group + tx) * P;
  if (c0 >= a.C) return;
  const uint32_t channels = min_u32(P, a.C - c0);  // == P on the aligned path
  const uint32_t hw_end = min_u32((k + 1) * a.plan.chunk, a.HW);
  const uint32_t base = nt * a.HW * a.C + c0;  // element (n, t, hw = 0, c0)

  for (uint32_t first = k * a.plan.chunk + ty; first < hw_end; first += step * kUnroll) {
    Pack<scalar_t> packs[kUnroll][Term::kInputs];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t hw = first + u * step;
      if (hw < hw_end) {
#pragma unroll
        for (int s = 0; s < Term::kInputs; ++s)
          packs[u][s] = load_pack<scalar_t, kAligned>(a.in[s] + base + hw * a.C, channels);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (first + u * step < hw_end) {
#pragma unroll
        for (uint32_t j = 0; j < P; ++j) {
          acc v[Term::kInputs];
#pragma unroll
          for (int s = 0; s < Term::kInputs; ++s) v[s] = Convert<scalar_t>::to_acc(packs[u][s].v[j]);
          sums[j] += Term::term(v);  // zero-filled channels past C add 0
        }
      }
    }
  }
}

// NTHWC: the block's total for channel (tile*group*kPack + index) of its (n, t).
template <typename scalar_t>
STC_HD void nthwc_store(const SumArgs<scalar_t>& a, uint32_t block, uint32_t index,
                        acc_t<scalar_t> value) {
  uint32_t rest, k, nt, tile, n, t;
  a.div_splits.divmod(block, rest, k);
  a.div_ctiles.divmod(rest, nt, tile);
  const uint32_t c = tile * a.plan.group * kPack<scalar_t> + index;
  if (c >= a.C) return;
  a.div_T.divmod(nt, n, t);
  store_result(a, (n * a.C + c) * a.T + t, k, value);
}

// Second stage of a split sum: out[row] = scale * sum over k, in order, of the partials.
template <typename scalar_t>
STC_HD void finalize_row(const SumArgs<scalar_t>& a, uint32_t row) {
  acc_t<scalar_t> sum = 0;
  for (uint32_t k = 0; k < a.plan.splits; ++k) sum += a.partial[row * a.plan.splits + k];
  a.out[row] = sum * a.scale;
}

#ifdef __CUDACC__
template <typename scalar_t, typename Term, bool kAligned>
__global__ void __launch_bounds__(kThreads) sum_ncthw_kernel(const SumArgs<scalar_t> a) {
  using acc = acc_t<scalar_t>;
  const uint32_t gid = blockIdx.x * kThreads + threadIdx.x;
  const uint32_t segment = gid >> a.plan.log2_group, lane = gid & (a.plan.group - 1);
  const bool active = segment < a.plan.rows * a.plan.splits;
  // Inactive lanes (the last block's overhang) still take part in the shuffles.
  acc sum = active ? ncthw_lane_sum<scalar_t, Term, kAligned>(a, segment, lane) : acc(0);
  for (uint32_t offset = a.plan.group >> 1; offset > 0; offset >>= 1)
    sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (active && lane == 0) {
    uint32_t row, k;
    a.div_splits.divmod(segment, row, k);
    store_result(a, row, k, sum);
  }
}

template <typename scalar_t, typename Term, bool kAligned>
__global__ void __launch_bounds__(kThreads) sum_nthwc_kernel(const SumArgs<scalar_t> a) {
  using acc = acc_t<scalar_t>;
  constexpr uint32_t P = kPack<scalar_t>;
  __shared__ acc warp_sums[kWarps][32 * P];
  acc sums[P];
  nthwc_thread_sums<scalar_t, Term, kAligned>(a, blockIdx.x, threadIdx.x, sums);
  // Lanes of a warp with equal tx (= lane % group) hold the same channels: fold the rest.
  for (uint32_t offset = 16; offset >= a.plan.group; offset >>= 1) {
#pragma unroll
    for (uint32_t j = 0; j < P; ++j) sums[j] += __shfl_xor_sync(0xffffffffu, sums[j], offset);
  }
  const uint32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane < a.plan.group) {
#pragma unroll
    for (uint32_t j = 0; j < P; ++j) warp_sums[warp][lane * P + j] = sums[j];
  }
  __syncthreads();
  if (threadIdx.x < a.plan.group * P) {
    acc total = acc(0);
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w][threadIdx.x];
    nthwc_store(a, blockIdx.x, threadIdx.x, total);
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads) finalize_kernel(const SumArgs<scalar_t> a) {
  const uint32_t row = blockIdx.x * kThreads + threadIdx.x;
  if (row < a.plan.rows) finalize_row(a, row);
}
#endif  // __CUDACC__

// One op's H*W sums over all batch chunks. `exec` runs the launches: on the GPU
// (stc_sum.cu) or emulated on the CPU (testing/emulate.cu).
template <typename scalar_t, typename Term, typename Exec>
void run_sum(const Problem& p, const scalar_t* const (&in)[3], acc_t<scalar_t>* out,
             acc_t<scalar_t> scale, void* workspace, int num_sms, Exec& exec) {
  constexpr uint32_t P = kPack<scalar_t>;
  const int64_t sample = p.C * p.T * p.HW;
  for_each_batch_chunk(p, exec.max_elements(), [&](int64_t n0, int64_t nb) {
    if (!exec.ok()) return;
    SumArgs<scalar_t> a;
    bool aligned = p.layout == Layout::kNCTHW || p.C % P == 0;
    for (int s = 0; s < 3; ++s) {
      a.in[s] = in[s] != nullptr ? in[s] + n0 * sample : nullptr;
      if (a.in[s] != nullptr) aligned = aligned && is_aligned16(a.in[s]);
    }
    a.out = out + n0 * p.C * p.T;
    a.partial = static_cast<acc_t<scalar_t>*>(workspace);
    a.scale = scale;
    a.C = static_cast<uint32_t>(p.C);
    a.T = static_cast<uint32_t>(p.T);
    a.HW = static_cast<uint32_t>(p.HW);
    a.plan = plan_sum(p.layout, nb, p.C, p.T, p.HW, P, num_sms);
    a.div_splits = FastDivmod(a.plan.splits);
    a.div_ctiles = FastDivmod(a.plan.ctiles);
    a.div_T = FastDivmod(a.T);
    if (p.layout == Layout::kNCTHW) {
      if (aligned)
        exec.template sum_ncthw<scalar_t, Term, true>(a);
      else
        exec.template sum_ncthw<scalar_t, Term, false>(a);
    } else {
      if (aligned)
        exec.template sum_nthwc<scalar_t, Term, true>(a);
      else
        exec.template sum_nthwc<scalar_t, Term, false>(a);
    }
    if (a.plan.splits > 1 && exec.ok()) exec.finalize(a);
  });
}

inline uint64_t sum_workspace_values(const Problem& p, uint32_t pack, int num_sms,
                                     int64_t max_elements) {
  uint64_t values = 0;
  for_each_batch_chunk(p, max_elements, [&](int64_t, int64_t nb) {
    const uint64_t v = workspace_values(plan_sum(p.layout, nb, p.C, p.T, p.HW, pack, num_sms));
    if (v > values) values = v;
  });
  return values;
}

}  // namespace detail
}  // namespace cuda_kernels
}  // namespace stc_ext
