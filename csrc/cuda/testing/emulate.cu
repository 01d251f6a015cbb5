// Runs the stc_ext CUDA kernels' per-thread code on the CPU and checks the four ops against
// a float64 reference, for machines without a GPU. Built and run by
// tests/ops/test_cuda_sources.py (nvcc, host code only; with AddressSanitizer where the
// host compiler has it, so an out-of-bounds read or write in the index arithmetic fails).
//
// What runs is the kernels' own code: the launchers' planning, batch chunking and
// alignment choice (run_sum / run_map), and the __host__ __device__ functions every
// thread of every block executes. What is emulated: the warp shuffles and the shared-memory
// step that combine threads (mirrored below, lane by lane) and the launch itself. What this
// cannot show: races, the device's memory model, real 16-byte access behaviour; those need
// a GPU (compute-sanitizer memcheck/racecheck, not part of the test suite).
//
// Exit status 0 when every check passed; the failures are printed otherwise.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../stc_map.cuh"
#include "../stc_sum.cuh"

using namespace stc_ext::cuda_kernels;
using namespace stc_ext::cuda_kernels::detail;

namespace {

int g_failures = 0;
long g_checks = 0;

void fail(const std::string& what) {
  if (++g_failures <= 30) std::printf("FAIL %s\n", what.c_str());
}

// Which code paths the runs reached; each must be reached at least once.
struct Coverage {
  long ncthw_aligned = 0, ncthw_scalar = 0, nthwc_aligned = 0, nthwc_scalar = 0;
  long split = 0, unsplit = 0, chunked = 0, small_group = 0;
  long map_aligned = 0, map_scalar = 0, map_partial_pack = 0, map_grid_stride = 0;
} g_cov;

// Executes the launches of run_sum / run_map on the CPU.
struct HostExec {
  int64_t max_elems;
  int launches = 0;

  int64_t max_elements() const { return max_elems; }
  bool ok() const { return true; }

  template <typename scalar_t, typename Term, bool kAligned>
  void sum_ncthw(const SumArgs<scalar_t>& a) {
    using acc = acc_t<scalar_t>;
    ++launches;
    (kAligned ? g_cov.ncthw_aligned : g_cov.ncthw_scalar)++;
    (a.plan.splits > 1 ? g_cov.split : g_cov.unsplit)++;
    if (a.plan.group < 32) g_cov.small_group++;
    check_grid(a.plan.blocks);
    const uint32_t segments = a.plan.rows * a.plan.splits;
    for (uint32_t block = 0; block < a.plan.blocks; ++block) {
      for (uint32_t warp = 0; warp < kWarps; ++warp) {
        acc sum[32];
        bool active[32];
        uint32_t segment[32], lane[32];
        for (uint32_t l = 0; l < 32; ++l) {  // the kernel's body before the shuffles
          const uint32_t gid = block * kThreads + warp * 32 + l;
          segment[l] = gid >> a.plan.log2_group;
          lane[l] = gid & (a.plan.group - 1);
          active[l] = segment[l] < segments;
          sum[l] = active[l] ? ncthw_lane_sum<scalar_t, Term, kAligned>(a, segment[l], lane[l])
                             : acc(0);
        }
        for (uint32_t offset = a.plan.group >> 1; offset > 0; offset >>= 1) shuffle_add(sum, offset);
        for (uint32_t l = 0; l < 32; ++l) {
          if (active[l] && lane[l] == 0) {
            uint32_t row, k;
            a.div_splits.divmod(segment[l], row, k);
            store_result(a, row, k, sum[l]);
          }
        }
      }
    }
  }

  template <typename scalar_t, typename Term, bool kAligned>
  void sum_nthwc(const SumArgs<scalar_t>& a) {
    using acc = acc_t<scalar_t>;
    constexpr uint32_t P = kPack<scalar_t>;
    ++launches;
    (kAligned ? g_cov.nthwc_aligned : g_cov.nthwc_scalar)++;
    (a.plan.splits > 1 ? g_cov.split : g_cov.unsplit)++;
    if (a.plan.group < 32) g_cov.small_group++;
    check_grid(a.plan.blocks);
    std::vector<acc> warp_sums(kWarps * 32 * P, std::numeric_limits<acc>::quiet_NaN());
    for (uint32_t block = 0; block < a.plan.blocks; ++block) {
      for (uint32_t warp = 0; warp < kWarps; ++warp) {
        acc sums[32][P];
        for (uint32_t l = 0; l < 32; ++l)
          nthwc_thread_sums<scalar_t, Term, kAligned>(a, block, warp * 32 + l, sums[l]);
        for (uint32_t offset = 16; offset >= a.plan.group; offset >>= 1) {
          for (uint32_t j = 0; j < P; ++j) {
            acc column[32];
            for (uint32_t l = 0; l < 32; ++l) column[l] = sums[l][j];
            shuffle_add(column, offset);
            for (uint32_t l = 0; l < 32; ++l) sums[l][j] = column[l];
          }
        }
        for (uint32_t l = 0; l < a.plan.group; ++l)
          for (uint32_t j = 0; j < P; ++j) warp_sums[(warp * 32 + l) * P + j] = sums[l][j];
      }
      for (uint32_t thread = 0; thread < a.plan.group * P; ++thread) {
        acc total = acc(0);
        for (uint32_t w = 0; w < kWarps; ++w) total += warp_sums[w * 32 * P + thread];
        nthwc_store(a, block, thread, total);
      }
    }
  }

  template <typename scalar_t>
  void finalize(const SumArgs<scalar_t>& a) {
    ++launches;
    for (uint32_t row = 0; row < a.plan.rows; ++row) finalize_row(a, row);
  }

  template <typename scalar_t, typename Op, Layout L>
  void map(const MapArgs<scalar_t>& a, uint32_t blocks) {
    ++launches;
    (a.vectorized ? g_cov.map_aligned : g_cov.map_scalar)++;
    if (a.numel % kPack<scalar_t> != 0) g_cov.map_partial_pack++;
    if (uint64_t{blocks} * kThreads * kUnroll < a.packs) g_cov.map_grid_stride++;
    check_grid(blocks);
    for (uint32_t block = 0; block < blocks; ++block)
      for (uint32_t thread = 0; thread < kThreads; ++thread)
        map_thread<scalar_t, Op, L>(a, block, thread, blocks);
  }

  // __shfl_xor_sync(full mask, v, offset) followed by an add, for each lane.
  template <typename acc>
  static void shuffle_add(acc (&v)[32], uint32_t offset) {
    acc shuffled[32];
    for (uint32_t l = 0; l < 32; ++l) shuffled[l] = v[l ^ offset];
    for (uint32_t l = 0; l < 32; ++l) v[l] += shuffled[l];
  }

  static void check_grid(uint32_t blocks) {
    if (blocks == 0 || uint64_t{blocks} * kThreads > 0xffffffffull) fail("grid size");
  }
};

// ---------------------------------------------------------------------------------------
// Test data and the float64 reference.

template <typename T>
T from_double(double v) {
  return Convert<T>::from_acc(static_cast<acc_t<T>>(v));
}
template <typename T>
double to_double(T v) {
  return static_cast<double>(Convert<T>::to_acc(v));
}
template <typename T>
T nan_value() {
  return from_double<T>(std::numeric_limits<double>::quiet_NaN());
}

template <typename T>
const char* type_name();
template <>
const char* type_name<float>() { return "float"; }
template <>
const char* type_name<double>() { return "double"; }
template <>
const char* type_name<__half>() { return "half"; }
template <>
const char* type_name<__nv_bfloat16>() { return "bfloat16"; }

// Relative tolerance of a value rounded to T, and of a float32 / float64 accumulation.
template <typename T>
double rounding_tol() {
  if (sizeof(T) == 8) return 1e-12;
  if (sizeof(T) == 4) return 2e-6;
  if (std::string(type_name<T>()) == "half") return 2e-3;
  return 1.6e-2;
}

struct Shape {
  int64_t N, C, T, H, W;
  int64_t HW() const { return H * W; }
  int64_t numel() const { return N * C * T * H * W; }
};

// A buffer whose data pointer is `offset` elements past an allocation of exactly the
// elements needed (so AddressSanitizer sees any access past either end).
template <typename T>
struct Buffer {
  std::vector<T> storage;
  uint32_t offset;
  Buffer(int64_t n, uint32_t off) : storage(static_cast<size_t>(n + off)), offset(off) {}
  T* data() { return storage.data() + offset; }
  T& operator[](int64_t i) { return storage[static_cast<size_t>(i + offset)]; }
};

int64_t index_of(const Shape& s, Layout layout, int64_t n, int64_t c, int64_t t, int64_t hw) {
  if (layout == Layout::kNCTHW) return ((n * s.C + c) * s.T + t) * s.HW() + hw;
  return ((n * s.T + t) * s.HW() + hw) * s.C + c;
}

bool close(double got, double want, double rel, double scale) {
  if (!std::isfinite(got)) return false;
  return std::fabs(got - want) <= rel * (std::fabs(want) + scale) + 1e-30;
}

template <typename T>
struct Case {
  Shape shape;
  Layout layout;
  uint32_t offset;  // elements: 0 keeps buffers 16-byte aligned, 1 misaligns them
  int num_sms;
  int64_t max_elements;
  std::string name() const {
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s (%lld,%lld,%lld,%lld,%lld) %s offset=%u sms=%d max=%lld",
                  type_name<T>(), (long long)shape.N, (long long)shape.C, (long long)shape.T,
                  (long long)shape.H, (long long)shape.W,
                  layout == Layout::kNCTHW ? "NCTHW" : "NTHWC", offset, num_sms,
                  (long long)max_elements);
    return buf;
  }
};

template <typename T>
void run_case(const Case<T>& cs, std::mt19937& rng) {
  using acc = acc_t<T>;
  const Shape& s = cs.shape;
  const int64_t numel = s.numel(), HW = s.HW(), rows = s.N * s.C * s.T;
  const Problem problem{s.N, s.C, s.T, HW, cs.layout};
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  auto random_tensor = [&](uint32_t off) {
    Buffer<T> b(numel, off);
    for (int64_t i = 0; i < numel; ++i) b[i] = from_double<T>(uniform(rng));
    return b;
  };
  Buffer<T> x = random_tensor(cs.offset), identity = random_tensor(cs.offset);
  Buffer<T> dy = random_tensor(cs.offset), y = random_tensor(cs.offset);
  std::vector<acc> g(static_cast<size_t>(s.N * s.C)), grad_s(static_cast<size_t>(rows));
  for (auto& v : g) v = static_cast<acc>(0.5 + 0.5 * uniform(rng));
  for (auto& v : grad_s) v = static_cast<acc>(uniform(rng));
  // grad_s in the layout's order, as the glue passes it: (N, T, C) for NTHWC.
  std::vector<acc> grad_s_ordered(grad_s.size());
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t t = 0; t < s.T; ++t) {
        const int64_t from = (n * s.C + c) * s.T + t;
        const int64_t to = cs.layout == Layout::kNCTHW ? from : (n * s.T + t) * s.C + c;
        grad_s_ordered[static_cast<size_t>(to)] = grad_s[static_cast<size_t>(from)];
      }

  const uint32_t P = kPack<T>;
  const uint64_t ws_values = sum_workspace_values(problem, P, cs.num_sms, cs.max_elements);
  const double acc_tol = sizeof(acc) == 8 ? 1e-12 : 2e-5;
  const double out_tol = rounding_tol<T>() + acc_tol;

  // H*W sums: pool, sums, residual-form sums.
  for (int variant = 0; variant < 3; ++variant) {
    std::vector<acc> out(static_cast<size_t>(rows), std::numeric_limits<acc>::quiet_NaN());
    std::vector<acc> workspace(static_cast<size_t>(ws_values > 0 ? ws_values : 1),
                               std::numeric_limits<acc>::quiet_NaN());
    HostExec exec{cs.max_elements};
    if (variant == 0) {
      const T* const in[3] = {x.data(), nullptr, nullptr};
      run_sum<T, PoolTerm>(problem, in, out.data(), acc(1) / acc(HW), workspace.data(),
                           cs.num_sms, exec);
    } else if (variant == 1) {
      const T* const in[3] = {dy.data(), x.data(), nullptr};
      run_sum<T, SumsTerm>(problem, in, out.data(), acc(1), workspace.data(), cs.num_sms,
                           exec);
    } else {
      const T* const in[3] = {dy.data(), x.data(), y.data()};
      run_sum<T, ResidualSumsTerm>(problem, in, out.data(), acc(1), workspace.data(),
                                   cs.num_sms, exec);
    }
    if (exec.launches > 2 || cs.max_elements < numel) g_cov.chunked++;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t t = 0; t < s.T; ++t) {
          double want = 0, scale = 0;
          for (int64_t hw = 0; hw < HW; ++hw) {
            const int64_t i = index_of(s, cs.layout, n, c, t, hw);
            double term = variant == 0 ? to_double(x[i]) : to_double(dy[i]) * to_double(x[i]);
            if (variant == 2 && !(to_double(y[i]) > 0)) term = 0;
            want += term;
            scale += std::fabs(term);
          }
          if (variant == 0) {
            want /= HW;
            scale /= HW;
          }
          const double got = out[static_cast<size_t>((n * s.C + c) * s.T + t)];
          ++g_checks;
          if (!close(got, want, acc_tol, scale)) {
            char buf[160];
            std::snprintf(buf, sizeof buf, " sum %d at (%lld,%lld,%lld): got %g want %g",
                          variant, (long long)n, (long long)c, (long long)t, got, want);
            fail(cs.name() + buf);
            return;
          }
        }
  }

  // Elementwise: rescale with and without identity, grad input with and without y.
  for (int variant = 0; variant < 4; ++variant) {
    const bool residual = variant % 2 == 1;
    Buffer<T> out0(numel, cs.offset), out1(numel, cs.offset);
    for (int64_t i = 0; i < numel; ++i) out0[i] = out1[i] = nan_value<T>();
    HostExec exec{cs.max_elements};
    if (variant < 2) {
      const T* const in[2] = {x.data(), residual ? identity.data() : nullptr};
      T* const out[2] = {out0.data(), nullptr};
      if (residual)
        run_map<T, RescaleOp<true>>(problem, in, out, g.data(), nullptr, cs.num_sms, exec);
      else
        run_map<T, RescaleOp<false>>(problem, in, out, g.data(), nullptr, cs.num_sms, exec);
    } else {
      const T* const in[2] = {dy.data(), residual ? y.data() : nullptr};
      T* const out[2] = {out0.data(), residual ? out1.data() : nullptr};
      if (residual)
        run_map<T, RescaleBackwardInputOp<true>>(problem, in, out, g.data(), grad_s_ordered.data(),
                                                 cs.num_sms, exec);
      else
        run_map<T, RescaleBackwardInputOp<false>>(problem, in, out, g.data(), grad_s_ordered.data(),
                                                  cs.num_sms, exec);
    }
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t t = 0; t < s.T; ++t)
          for (int64_t hw = 0; hw < HW; ++hw) {
            const int64_t i = index_of(s, cs.layout, n, c, t, hw);
            const double gv = g[static_cast<size_t>(n * s.C + c)];
            double want0, want1 = 0;
            if (variant < 2) {
              want0 = to_double(x[i]) * gv;
              if (residual) want0 = std::max(0.0, want0 + to_double(identity[i]));
            } else {
              double d = to_double(dy[i]);
              if (residual && !(to_double(y[i]) > 0)) d = 0;
              want0 = gv * d + static_cast<double>(grad_s[static_cast<size_t>((n * s.C + c) * s.T + t)]) / HW;
              want1 = d;
            }
            ++g_checks;
            // Inputs are O(1): rounding errors are relative to 1, not to a cancelled result.
            const bool ok0 = close(to_double(out0[i]), want0, out_tol, 1.0);
            const bool ok1 = variant != 3 || close(to_double(out1[i]), want1, out_tol, 1.0);
            if (!ok0 || !ok1) {
              char buf[200];
              std::snprintf(buf, sizeof buf,
                            " map %d at (%lld,%lld,%lld,%lld): got %g/%g want %g/%g", variant,
                            (long long)n, (long long)c, (long long)t, (long long)hw,
                            to_double(out0[i]), to_double(out1[i]), want0, want1);
              fail(cs.name() + buf);
              return;
            }
          }
    if (variant != 3) {  // the unused output must be untouched
      for (int64_t i = 0; i < numel; ++i)
        if (!std::isnan(to_double(out1[i]))) {
          fail(cs.name() + " wrote an output it does not have");
          return;
        }
    }
  }
}

void check_fast_divmod(std::mt19937& rng) {
  std::vector<uint32_t> divisors;
  for (uint32_t d = 1; d <= 2048; ++d) divisors.push_back(d);
  for (uint32_t s = 11; s < 31; ++s) {
    divisors.push_back(1u << s);
    divisors.push_back((1u << s) - 1);
    divisors.push_back((1u << s) + 1);
  }
  divisors.push_back(0x7fffffffu);
  std::uniform_int_distribution<uint32_t> any(1, 0x7fffffffu);
  for (int i = 0; i < 2000; ++i) divisors.push_back(any(rng));
  for (uint32_t d : divisors) {
    const FastDivmod div(d);
    std::vector<uint32_t> ns = {0, 1, d - 1, d, d + 1, 0x7fffffffu, 0x7ffffffeu};
    for (uint64_t k : {2ull, 3ull, 1000ull, 123457ull}) {
      if (k * d < 0x7fffffffull) {
        ns.push_back(static_cast<uint32_t>(k * d - 1));
        ns.push_back(static_cast<uint32_t>(k * d));
      }
    }
    std::uniform_int_distribution<uint32_t> dividend(0, 0x7fffffffu);
    for (int i = 0; i < 64; ++i) ns.push_back(dividend(rng));
    for (uint32_t n : ns) {
      if (n > 0x7fffffffu) continue;
      uint32_t q, r;
      div.divmod(n, q, r);
      ++g_checks;
      if (q != n / d || r != n % d) {
        fail("FastDivmod " + std::to_string(n) + " / " + std::to_string(d));
        return;
      }
    }
  }
}

template <typename T>
void run_all(std::mt19937& rng) {
  const Shape shapes[] = {
      {2, 3, 2, 5, 7},     // nothing a multiple of anything
      {1, 8, 1, 1, 1},     // H*W = 1
      {2, 16, 4, 7, 7},    // H*W = 49: rows start off pack boundaries
      {3, 24, 2, 14, 14},  // H*W = 196
      {1, 4, 2, 64, 64},   // long rows, few of them: split sums
      {1, 1, 1, 3001, 1},  // one long row
      {2, 33, 1, 3, 3},    // C = 33
      {4, 260, 2, 2, 2},   // several channel tiles
      {1, 520, 1, 17, 1},  // several channel tiles, odd H*W
      {1, 64, 2, 24, 24},  // enough packs for the grid-stride loop at num_sms = 1
  };
  for (const Shape& shape : shapes)
    for (Layout layout : {Layout::kNCTHW, Layout::kNTHWC})
      for (uint32_t offset : {0u, 1u})
        for (int num_sms : {1, 132})
          for (int64_t max_elements : {kMaxElementsPerLaunch, shape.numel() / 2 + 1}) {
            if (shape.N == 1 && max_elements != kMaxElementsPerLaunch) continue;
            if (shape.numel() > 50000 && num_sms != 1) continue;  // keep the run short
            run_case(Case<T>{shape, layout, offset, num_sms, max_elements}, rng);
          }
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  check_fast_divmod(rng);
  run_all<float>(rng);
  run_all<double>(rng);
  run_all<__half>(rng);
  run_all<__nv_bfloat16>(rng);
  const long paths[] = {g_cov.ncthw_aligned, g_cov.ncthw_scalar, g_cov.nthwc_aligned,
                        g_cov.nthwc_scalar, g_cov.split, g_cov.unsplit, g_cov.chunked,
                        g_cov.small_group, g_cov.map_aligned, g_cov.map_scalar,
                        g_cov.map_partial_pack, g_cov.map_grid_stride};
  const char* names[] = {"ncthw_aligned", "ncthw_scalar", "nthwc_aligned", "nthwc_scalar",
                         "split", "unsplit", "chunked", "small_group", "map_aligned",
                         "map_scalar", "map_partial_pack", "map_grid_stride"};
  for (int i = 0; i < 12; ++i) {
    std::printf("path %-17s reached %ld times\n", names[i], paths[i]);
    if (paths[i] == 0) fail(std::string("path never reached: ") + names[i]);
  }
  std::printf("%ld checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
