// The gate on the CPU: both branches' MLPs on the pooled map, forward and backward, for
// small batches (semantics: stc_ext/ops/gate.py, which computes the same with ATen ops
// and is what the other backends and large batches use).
//
// At a few samples the gate's matrix products are matrix-vector products in disguise: each
// weight is read once and used for a handful of rows, so their time is the time to stream
// the weights (megabytes at the late stages, where they dominate the block). The dense
// layers here stream each weight matrix once, in its own dtype (bf16 weights are read as
// bf16, not copied to float32 first), with the layer's bias and ReLU fused in. A layer's
// backward sweeps W column by column, one vector wide, with the samples' inputs and input
// gradients held in registers: each weight is read once and its gradient written once
// (an earlier version went row-block by row-block over 256-column chunks, reloading the
// input gradients every 4 rows; it ran at a third of the speed, 2026-12-05). Each sum is
// taken by one thread in a fixed order (dot products vectorised over k and reduced as a
// tree; samples and output rows in index order), so results do not depend on the thread
// count. Weight gradients come from the output cache (output_cache.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "../stc_common.h"
#include "isa.h"
#include "output_cache.h"

namespace stc_ext {
namespace {

constexpr int64_t kPrefetchAhead = 2048;  // bytes: how far ahead weight rows are prefetched
constexpr int64_t kPrefetchRows = 8;  // weight rows ahead prefetched in a backward column sweep
constexpr int64_t kGrainMacs = 65536;  // multiply-adds per parallel task, at least

// A row-major matrix view: element (r, c) at data[r * ld + c].
template <typename T>
struct Matrix {
  T* data;
  int64_t ld;
  T* row(int64_t r) const { return data + r * ld; }
};

// Dot products of kRows weight rows with kBlock input rows, vectorised over k:
// sums[r][j] = sum_k w[r][k] * in[j][k] (lanes in order, then the tail). Each loaded
// vector serves several products, which keeps the loop on the multiply-adds rather than
// on the loads (the input rows of a layer are cached, the weight rows stream once).
template <int kRows, int kBlock, typename acc_t, typename w_t>
STC_INLINE void dot_block(const w_t* const* w, const acc_t* const* in, int64_t k_size,
                          acc_t (&sums)[kRows][kBlock]) {
  constexpr int V = kVecLanes<acc_t>;
  Vec<acc_t, V> acc[kRows][kBlock] = {};
  int64_t k = 0;
  for (; k + V <= k_size; k += V) {
    Vec<acc_t, V> wv[kRows];
    for (int r = 0; r < kRows; ++r) {
      __builtin_prefetch(w[r] + k + kPrefetchAhead / sizeof(w_t), 0, 0);
      wv[r] = load_vec<V, acc_t>(w[r] + k);
    }
    for (int j = 0; j < kBlock; ++j) {
      const Vec<acc_t, V> x = load_vec<V, acc_t>(in[j] + k);
      for (int r = 0; r < kRows; ++r) acc[r][j] += wv[r] * x;
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kBlock; ++j) sums[r][j] = sum_lanes<V, acc_t>(acc[r][j]);
  for (; k < k_size; ++k)
    for (int r = 0; r < kRows; ++r)
      for (int j = 0; j < kBlock; ++j) sums[r][j] += load_as<acc_t>(w[r][k]) * in[j][k];
}

// out[n, o + r] = act(b[o + r] + sum_k in[n, k] * W[o + r, k]) for r < kRows and samples
// n in [n, n + kBlock).
template <int kRows, int kBlock, typename acc_t, typename w_t>
STC_INLINE void dense_forward_block(Matrix<const acc_t> in, int64_t n, int64_t k_size,
                                    const w_t* w, const acc_t* bias, bool relu,
                                    Matrix<acc_t> out, int64_t o) {
  const w_t* w_rows[kRows];
  const acc_t* in_rows[kBlock];
  for (int r = 0; r < kRows; ++r) w_rows[r] = w + (o + r) * k_size;
  for (int j = 0; j < kBlock; ++j) in_rows[j] = in.row(n + j);
  acc_t sums[kRows][kBlock];
  dot_block<kRows, kBlock>(w_rows, in_rows, k_size, sums);
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kBlock; ++j) {
      const acc_t v = sums[r][j] + bias[o + r];
      out.row(n + j)[o + r] = relu && !(v > acc_t(0)) ? acc_t(0) : v;
    }
}

// The samples of output rows [o, o + kRows), in blocks of 8, 4 and 1.
template <int kRows, typename acc_t, typename w_t>
STC_INLINE void dense_forward_samples(Matrix<const acc_t> in, int64_t batch, int64_t k_size,
                                      const w_t* w, const acc_t* bias, bool relu,
                                      Matrix<acc_t> out, int64_t o) {
  int64_t n = 0;
  for (; n + 8 <= batch; n += 8)
    dense_forward_block<kRows, 8>(in, n, k_size, w, bias, relu, out, o);
  for (; n + 4 <= batch; n += 4)
    dense_forward_block<kRows, 4>(in, n, k_size, w, bias, relu, out, o);
  for (; n < batch; ++n) dense_forward_block<kRows, 1>(in, n, k_size, w, bias, relu, out, o);
}

// out[n, o] = act(b[o] + sum_k in[n, k] * W[o, k]) for rows o in [o_begin, o_end); the
// activation is the ReLU when `relu`, else none. Weight rows go by two, each swept once
// per block of samples.
template <typename acc_t, typename w_t>
STC_CPU_CLONES void dense_forward_rows(Matrix<const acc_t> in, int64_t batch, int64_t k_size,
                                       const w_t* w, const acc_t* bias, bool relu,
                                       Matrix<acc_t> out, int64_t o_begin, int64_t o_end) {
  int64_t o = o_begin;
  for (; o + 2 <= o_end; o += 2)
    dense_forward_samples<2>(in, batch, k_size, w, bias, relu, out, o);
  for (; o < o_end; ++o) dense_forward_samples<1>(in, batch, k_size, w, bias, relu, out, o);
}

// One layer's backward at the W lanes of column k (W = 1: a single column) for the samples
// [n0, n0 + kSamples): grad_in[n, k..] = sum_o d[n, o] * W[o, k..] (rows in order), and
// the rows' weight gradients sum_n d[n, o] * in[n, k..] (samples in order). The samples'
// inputs and input gradients stay in registers while the rows stream by, so each weight
// element is loaded once and each weight gradient stored once. A weight gradient that
// spans several sample blocks is carried between them in `carry` (o_size x W, acc_t):
// started by the first block, finished and stored in W's dtype by the last.
template <int kSamples, int W, typename acc_t, typename w_t>
STC_INLINE void dense_backward_column(const acc_t* d_by_row, int64_t batch, Matrix<const acc_t> in,
                                      int64_t n0, int64_t o_size, int64_t k, int64_t k_size,
                                      const w_t* w, w_t* grad_w, Matrix<acc_t> grad_in,
                                      acc_t* carry, bool first, bool last) {
  Vec<acc_t, W> x[kSamples], gi[kSamples] = {};
  for (int j = 0; j < kSamples; ++j) x[j] = load_vec<W, acc_t>(in.row(n0 + j) + k);
  for (int64_t o = 0; o < o_size; ++o) {
    if (o + kPrefetchRows < o_size)
      __builtin_prefetch(w + (o + kPrefetchRows) * k_size + k, 0, 0);
    const acc_t* dn = d_by_row + o * batch + n0;
    const Vec<acc_t, W> wv = load_vec<W, acc_t>(w + o * k_size + k);
    Vec<acc_t, W> gw = first ? Vec<acc_t, W>{} : load_vec<W, acc_t>(carry + o * W);
    for (int j = 0; j < kSamples; ++j) {
      gw += dn[j] * x[j];
      gi[j] += dn[j] * wv;
    }
    if (last) {
      store_vec<W, acc_t>(grad_w + o * k_size + k, gw);
    } else {
      store_vec<W, acc_t>(carry + o * W, gw);
    }
  }
  for (int j = 0; j < kSamples; ++j) store_vec<W, acc_t>(grad_in.row(n0 + j) + k, gi[j]);
}

// dense_backward_column over all samples, in blocks of 8, 4 and 1 (`carry`: see there).
template <int W, typename acc_t, typename w_t>
STC_INLINE void dense_backward_all_samples(const acc_t* d_by_row, int64_t batch,
                                           Matrix<const acc_t> in, int64_t o_size, int64_t k,
                                           int64_t k_size, const w_t* w, w_t* grad_w,
                                           Matrix<acc_t> grad_in, acc_t* carry) {
  int64_t n = 0;
  for (; n + 8 <= batch; n += 8)
    dense_backward_column<8, W>(d_by_row, batch, in, n, o_size, k, k_size, w, grad_w, grad_in,
                                carry, n == 0, n + 8 == batch);
  for (; n + 4 <= batch; n += 4)
    dense_backward_column<4, W>(d_by_row, batch, in, n, o_size, k, k_size, w, grad_w, grad_in,
                                carry, n == 0, n + 4 == batch);
  for (; n < batch; ++n)
    dense_backward_column<1, W>(d_by_row, batch, in, n, o_size, k, k_size, w, grad_w, grad_in,
                                carry, n == 0, n + 1 == batch);
}

// For the columns of groups [begin, end) (group g < k_size / V: the V lanes at g * V;
// after those, one tail column each): grad_w[o, k] = sum_n d[n, o] * in[n, k] and
// grad_in[n, k] = sum_o d[n, o] * W[o, k]. d_by_row is d transposed, (O, batch).
template <typename acc_t, typename w_t>
STC_CPU_CLONES void dense_backward_columns(const acc_t* d_by_row, Matrix<const acc_t> in,
                                           int64_t batch, int64_t o_size, int64_t k_size,
                                           const w_t* w, w_t* grad_w, Matrix<acc_t> grad_in,
                                           int64_t begin, int64_t end) {
  constexpr int V = kVecLanes<acc_t>;
  const int64_t vectors = k_size / V;
  std::vector<acc_t> carry(o_size * V);  // unused when the batch is a single block
  for (int64_t group = begin; group < end; ++group) {
    if (group < vectors) {
      dense_backward_all_samples<V>(d_by_row, batch, in, o_size, group * V, k_size, w, grad_w,
                                    grad_in, carry.data());
    } else {
      dense_backward_all_samples<1>(d_by_row, batch, in, o_size, vectors * V + group - vectors,
                                    k_size, w, grad_w, grad_in, carry.data());
    }
  }
}

// --- one dense layer, forward and backward ------------------------------------------------

// out (batch, O) = act(in (batch, K) @ W^T + b), written through `out`'s row stride.
template <typename acc_t>
void dense_forward(Matrix<const acc_t> in, int64_t batch, const at::Tensor& w_in,
                   const at::Tensor& b_in, bool relu, Matrix<acc_t> out) {
  const at::Tensor w = w_in.contiguous();
  const at::Tensor b = b_in.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
  const int64_t o_size = w.size(0), k_size = w.size(1);
  const acc_t* bp = b.const_data_ptr<acc_t>();
  const int64_t grain = std::max<int64_t>(1, kGrainMacs / std::max<int64_t>(1, batch * k_size));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, w.scalar_type(), "stc_gate_forward", [&] {
    const scalar_t* wp = w.const_data_ptr<scalar_t>();
    at::parallel_for(0, o_size, grain, [&](int64_t begin, int64_t end) {
      dense_forward_rows<acc_t, scalar_t>(in, batch, k_size, wp, bp, relu, out, begin, end);
    });
  });
}

// Gradients of W and b from d (batch, O) = dL/d(pre-activation) and the layer's input,
// and grad_in (batch, K) = d @ W. Returns {grad_w, grad_b} in W's and b's dtypes.
template <typename acc_t>
std::tuple<at::Tensor, at::Tensor> dense_backward(Matrix<const acc_t> d, Matrix<const acc_t> in,
                                                  int64_t batch, const at::Tensor& w_in,
                                                  const at::Tensor& b, Matrix<acc_t> grad_in) {
  const at::Tensor w = w_in.contiguous();
  const int64_t o_size = w.size(0), k_size = w.size(1);
  at::Tensor grad_w = empty_cached(w.sizes(), w.options());
  // d by row (O, batch): each row's batch of multipliers in one cache line.
  std::vector<acc_t> d_by_row(o_size * batch);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < o_size; ++o) d_by_row[o * batch + n] = d.row(n)[o];
  constexpr int V = kVecLanes<acc_t>;
  const int64_t groups = k_size / V + k_size % V;
  const int64_t grain = std::max<int64_t>(1, kGrainMacs / std::max<int64_t>(1, 2 * batch * o_size * V));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, w.scalar_type(), "stc_gate_backward", [&] {
    const scalar_t* wp = w.const_data_ptr<scalar_t>();
    scalar_t* gwp = grad_w.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, groups, grain, [&](int64_t begin, int64_t end) {
      dense_backward_columns<acc_t, scalar_t>(d_by_row.data(), in, batch, o_size, k_size, wp, gwp,
                                              grad_in, begin, end);
    });
  });
  at::Tensor grad_b = at::empty({o_size}, b.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
  acc_t* gbp = grad_b.mutable_data_ptr<acc_t>();
  for (int64_t o = 0; o < o_size; ++o) {
    acc_t sum = 0;
    for (int64_t n = 0; n < batch; ++n) sum += d.row(n)[o];
    gbp[o] = sum;
  }
  return {grad_w, grad_b.to(b.scalar_type())};
}

// --- the gate ------------------------------------------------------------------------------

struct Branch {
  int index;  // 0: TCB, 1: SCB
  at::Tensor w1, b1, w2, b2;
  int64_t hidden() const { return w1.size(0); }
  int64_t channels() const { return w2.size(0); }
};

std::vector<Branch> present_branches(const std::optional<at::Tensor> (&weights)[8]) {
  std::vector<Branch> branches;
  for (int i = 0; i < 2; ++i) {
    const auto& w = weights + 4 * i;
    if (!w[0]) continue;
    STC_ASSERT(w[1] && w[2] && w[3], "a branch's four weights must all be given or all absent");
    branches.push_back({i, *w[0], *w[1], *w[2], *w[3]});
  }
  STC_ASSERT(!branches.empty(), "at least one branch must be given");
  return branches;
}

// The branch's input (batch, K): the mean over T of s for the TCB (eq. 1), s as (N, C*T)
// for the SCB (eq. 4).
at::Tensor branch_input(int index, const at::Tensor& s) {
  return index == 0 ? s.mean(2) : s.reshape({s.size(0), s.size(1) * s.size(2)});
}

void check_gate_arguments(const at::Tensor& s, const std::vector<Branch>& branches) {
  STC_ASSERT(s.dim() == 3 && s.device().is_cpu(), "s must be a 3-D CPU tensor, got ", s.sizes());
  STC_ASSERT(s.scalar_type() == at::kFloat || s.scalar_type() == at::kDouble,
             "s must be float32 or float64, got ", s.scalar_type());
  const int64_t c = s.size(1), t = s.size(2);
  for (const Branch& b : branches) {
    const int64_t in_features = b.index == 0 ? c : c * t;
    STC_ASSERT(b.w1.dim() == 2 && b.w1.size(1) == in_features && b.b1.numel() == b.hidden() &&
                   b.w2.dim() == 2 && b.w2.size(0) == c && b.w2.size(1) == b.hidden() &&
                   b.b2.numel() == c,
               "branch ", b.index, " weights do not match s of shape ", s.sizes());
    for (const at::Tensor* w : {&b.w1, &b.b1, &b.w2, &b.b2})
      STC_ASSERT(w->device().is_cpu(), "weights must be on the CPU");
  }
}

std::tuple<at::Tensor, at::Tensor> gate_forward_cpu(
    const at::Tensor& s_in, const std::optional<at::Tensor>& tcb_w1,
    const std::optional<at::Tensor>& tcb_b1, const std::optional<at::Tensor>& tcb_w2,
    const std::optional<at::Tensor>& tcb_b2, const std::optional<at::Tensor>& scb_w1,
    const std::optional<at::Tensor>& scb_b1, const std::optional<at::Tensor>& scb_w2,
    const std::optional<at::Tensor>& scb_b2) {
  const std::optional<at::Tensor> weights[8] = {tcb_w1, tcb_b1, tcb_w2, tcb_b2,
                                                scb_w1, scb_b1, scb_w2, scb_b2};
  const std::vector<Branch> branches = present_branches(weights);
  check_gate_arguments(s_in, branches);
  const at::Tensor s = s_in.contiguous();
  const int64_t batch = s.size(0), c = s.size(1);
  int64_t width = 0;
  for (const Branch& b : branches) width += b.hidden() + c;
  at::Tensor state = at::empty({batch, width}, s.options());
  at::Tensor g;
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "stc_gate_forward_cpu", [&] {
    using acc_t = scalar_t;
    acc_t* sp = state.mutable_data_ptr<acc_t>();
    int64_t column = 0;
    for (const Branch& b : branches) {
      const at::Tensor z = branch_input(b.index, s).contiguous();
      const Matrix<const acc_t> in{z.const_data_ptr<acc_t>(), z.size(1)};
      const Matrix<acc_t> h{sp + column, width};
      dense_forward<acc_t>(in, batch, b.w1, b.b1, /*relu=*/true, h);
      const Matrix<acc_t> pre{sp + column + b.hidden(), width};
      dense_forward<acc_t>({h.data, width}, batch, b.w2, b.b2, /*relu=*/false, pre);
      state.narrow(1, column + b.hidden(), c).sigmoid_();  // eqs. (2), (5)
      column += b.hidden() + c;
    }
    const int64_t first_sigmoid = branches[0].hidden();
    g = state.narrow(1, first_sigmoid, c);
    if (branches.size() == 2) {
      g = (g + state.narrow(1, first_sigmoid + c + branches[1].hidden(), c)) * 0.5;  // eq. (7)
    } else {
      g = g.contiguous();
    }
  });
  return {g, state};
}

std::vector<at::Tensor> gate_backward_cpu(
    const at::Tensor& sums_in, const at::Tensor& s_in, const at::Tensor& state_in,
    const std::optional<at::Tensor>& tcb_w1, const std::optional<at::Tensor>& tcb_b1,
    const std::optional<at::Tensor>& tcb_w2, const std::optional<at::Tensor>& tcb_b2,
    const std::optional<at::Tensor>& scb_w1, const std::optional<at::Tensor>& scb_b1,
    const std::optional<at::Tensor>& scb_w2, const std::optional<at::Tensor>& scb_b2) {
  const std::optional<at::Tensor> weights[8] = {tcb_w1, tcb_b1, tcb_w2, tcb_b2,
                                                scb_w1, scb_b1, scb_w2, scb_b2};
  const std::vector<Branch> branches = present_branches(weights);
  check_gate_arguments(s_in, branches);
  const at::Tensor s = s_in.contiguous(), state = state_in.contiguous();
  const int64_t batch = s.size(0), c = s.size(1), t = s.size(2);
  const int64_t width = state.size(1);
  STC_ASSERT(sums_in.sizes() == s.sizes() && sums_in.scalar_type() == s.scalar_type(),
             "sums must have s's shape and dtype");
  STC_ASSERT(state.dim() == 2 && state.size(0) == batch && state.scalar_type() == s.scalar_type(),
             "state must be (N, K) in s's dtype");
  // dL/dg (N, C): the sums over T of the per-(n, c, t) sums.
  const at::Tensor grad_g = sums_in.sum(2);
  at::Tensor grad_s = at::zeros_like(s);
  std::vector<at::Tensor> out(9);
  out[0] = grad_s;
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "stc_gate_backward_cpu", [&] {
    using acc_t = scalar_t;
    const acc_t* statep = state.const_data_ptr<acc_t>();
    const acc_t* dgp = grad_g.const_data_ptr<acc_t>();
    acc_t* dsp = grad_s.mutable_data_ptr<acc_t>();
    const acc_t scale = acc_t(1) / acc_t(branches.size());
    int64_t column = 0;
    for (const Branch& b : branches) {
      const int64_t hidden = b.hidden();
      const Matrix<const acc_t> h{statep + column, width};
      const Matrix<const acc_t> sig{statep + column + hidden, width};
      // Through the average and the sigmoid: da = dg * scale * sig * (1 - sig).
      at::Tensor da = at::empty({batch, c}, s.options());
      acc_t* dap = da.mutable_data_ptr<acc_t>();
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t j = 0; j < c; ++j) {
          const acc_t v = sig.row(n)[j];
          dap[n * c + j] = dgp[n * c + j] * (scale * v * (acc_t(1) - v));
        }
      // fc2: its weight gradients, and dh = (da @ W2) * (h > 0) through the ReLU.
      at::Tensor dh = at::empty({batch, hidden}, s.options());
      acc_t* dhp = dh.mutable_data_ptr<acc_t>();
      std::tie(out[1 + 4 * b.index + 2], out[1 + 4 * b.index + 3]) =
          dense_backward<acc_t>({dap, c}, h, batch, b.w2, b.b2, {dhp, hidden});
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t j = 0; j < hidden; ++j)
          if (!(h.row(n)[j] > acc_t(0))) dhp[n * hidden + j] = acc_t(0);
      // fc1: its weight gradients, and dz = dh @ W1, the gradient of the branch's input.
      const at::Tensor z = branch_input(b.index, s).contiguous();
      at::Tensor dz = at::empty({batch, z.size(1)}, s.options());
      acc_t* dzp = dz.mutable_data_ptr<acc_t>();
      std::tie(out[1 + 4 * b.index], out[1 + 4 * b.index + 1]) = dense_backward<acc_t>(
          {dhp, hidden}, {z.const_data_ptr<acc_t>(), z.size(1)}, batch, b.w1, b.b1,
          {dzp, z.size(1)});
      // Into ds (N, C, T): the TCB's mean over T spreads dz/T over t; the SCB's input is
      // s itself, flattened as c*T + t.
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t j = 0; j < c; ++j)
          for (int64_t k = 0; k < t; ++k)
            dsp[(n * c + j) * t + k] +=
                b.index == 0 ? dzp[n * c + j] / acc_t(t) : dzp[(n * c + j) * t + k];
      column += hidden + c;
    }
  });
  for (int i = 1; i < 9; ++i)
    if (!out[i].defined()) out[i] = at::empty({0}, s.options());
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(stc_ext, CPU, m) {
  m.impl("gate_forward", &gate_forward_cpu);
  m.impl("gate_backward", &gate_backward_cpu);
}

}  // namespace stc_ext
