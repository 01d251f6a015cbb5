// pool and rescale_backward_sums on the GPU (their H*W sums): launchers and explicit
// instantiations. The kernels and their memory traffic are described in stc_sum.cuh.
#include "stc_sum.cuh"

namespace stc_ext {
namespace cuda_kernels {
namespace detail {
namespace {

// Runs run_sum's launches on a stream. ok() is false once a launch has failed, so
// later launches of the call are skipped; the error stays for the caller to report.
struct CudaSumExec {
  cudaStream_t stream;

  int64_t max_elements() const { return kMaxElementsPerLaunch; }
  bool ok() const { return cudaPeekAtLastError() == cudaSuccess; }

  template <typename scalar_t, typename Term, bool kAligned>
  void sum_ncthw(const SumArgs<scalar_t>& a) {
    sum_ncthw_kernel<scalar_t, Term, kAligned><<<a.plan.blocks, kThreads, 0, stream>>>(a);
  }
  template <typename scalar_t, typename Term, bool kAligned>
  void sum_nthwc(const SumArgs<scalar_t>& a) {
    sum_nthwc_kernel<scalar_t, Term, kAligned><<<a.plan.blocks, kThreads, 0, stream>>>(a);
  }
  template <typename scalar_t>
  void finalize(const SumArgs<scalar_t>& a) {
    const auto blocks = static_cast<uint32_t>(ceil_div(a.plan.rows, kThreads));
    finalize_kernel<scalar_t><<<blocks, kThreads, 0, stream>>>(a);
  }
};

}  // namespace
}  // namespace detail

size_t sum_workspace_bytes(const Problem& problem, size_t element_size, int num_sms) {
  const uint32_t pack = static_cast<uint32_t>(16 / element_size);
  const size_t acc_size = element_size == sizeof(double) ? sizeof(double) : sizeof(float);
  return acc_size * detail::sum_workspace_values(problem, pack, num_sms,
                                                 kMaxElementsPerLaunch);
}

template <typename scalar_t>
void pool(const Problem& problem, const scalar_t* x, acc_t<scalar_t>* s, void* workspace,
          const Device& device) {
  detail::CudaSumExec exec{device.stream};
  const scalar_t* const in[3] = {x, nullptr, nullptr};
  const acc_t<scalar_t> scale = acc_t<scalar_t>(1) / static_cast<acc_t<scalar_t>>(problem.HW);
  detail::run_sum<scalar_t, detail::PoolTerm>(problem, in, s, scale, workspace, device.num_sms,
                                              exec);
}

template <typename scalar_t>
void rescale_backward_sums(const Problem& problem, const scalar_t* grad_y, const scalar_t* x,
                           const scalar_t* y, acc_t<scalar_t>* sums, void* workspace,
                           const Device& device) {
  detail::CudaSumExec exec{device.stream};
  const scalar_t* const in[3] = {grad_y, x, y};
  const bool residual = y != nullptr;
  if (residual)
    detail::run_sum<scalar_t, detail::ResidualSumsTerm>(problem, in, sums, acc_t<scalar_t>(1),
                                                        workspace, device.num_sms, exec);
  else
    detail::run_sum<scalar_t, detail::SumsTerm>(problem, in, sums, acc_t<scalar_t>(1),
                                                workspace, device.num_sms, exec);
}

#define STC_INSTANTIATE_SUMS(scalar_t)                                                        \
  template void pool<scalar_t>(const Problem&, const scalar_t*, acc_t<scalar_t>*, void*,      \
                               const Device&);                                                \
  template void rescale_backward_sums<scalar_t>(const Problem&, const scalar_t*,              \
                                                const scalar_t*, const scalar_t*,             \
                                                acc_t<scalar_t>*, void*, const Device&);

STC_INSTANTIATE_SUMS(float)
STC_INSTANTIATE_SUMS(double)
STC_INSTANTIATE_SUMS(__half)
STC_INSTANTIATE_SUMS(__nv_bfloat16)
#undef STC_INSTANTIATE_SUMS

}  // namespace cuda_kernels
}  // namespace stc_ext
