// rescale and rescale_backward_input on the GPU: launchers and explicit instantiations.
// The kernel and its memory traffic are described in stc_map.cuh.
#include "stc_map.cuh"

namespace stc_ext {
namespace cuda_kernels {
namespace detail {
namespace {

// Runs run_map's launches on a stream (see CudaSumExec in stc_sum.cu).
struct CudaMapExec {
  cudaStream_t stream;

  int64_t max_elements() const { return kMaxElementsPerLaunch; }
  bool ok() const { return cudaPeekAtLastError() == cudaSuccess; }

  template <typename scalar_t, typename Op, Layout L>
  void map(const MapArgs<scalar_t>& a, uint32_t blocks) {
    map_kernel<scalar_t, Op, L><<<blocks, kThreads, 0, stream>>>(a);
  }
};

}  // namespace
}  // namespace detail

template <typename scalar_t>
void rescale(const Problem& problem, const scalar_t* x, const acc_t<scalar_t>* g,
             const scalar_t* identity, scalar_t* y, const Device& device) {
  detail::CudaMapExec exec{device.stream};
  const scalar_t* const in[2] = {x, identity};
  scalar_t* const out[2] = {y, nullptr};
  const bool residual = identity != nullptr;
  if (residual)
    detail::run_map<scalar_t, detail::RescaleOp<true>>(problem, in, out, g, nullptr,
                                                       device.num_sms, exec);
  else
    detail::run_map<scalar_t, detail::RescaleOp<false>>(problem, in, out, g, nullptr,
                                                        device.num_sms, exec);
}

template <typename scalar_t>
void rescale_backward_input(const Problem& problem, const scalar_t* grad_y,
                            const acc_t<scalar_t>* g, const acc_t<scalar_t>* grad_s,
                            const scalar_t* y, scalar_t* grad_x, scalar_t* grad_identity,
                            const Device& device) {
  detail::CudaMapExec exec{device.stream};
  const scalar_t* const in[2] = {grad_y, y};
  scalar_t* const out[2] = {grad_x, grad_identity};
  const bool residual = y != nullptr;
  if (residual)
    detail::run_map<scalar_t, detail::RescaleBackwardInputOp<true>>(problem, in, out, g,
                                                                    grad_s, device.num_sms, exec);
  else
    detail::run_map<scalar_t, detail::RescaleBackwardInputOp<false>>(problem, in, out, g,
                                                                     grad_s, device.num_sms, exec);
}

#define STC_INSTANTIATE_MAPS(scalar_t)                                                        \
  template void rescale<scalar_t>(const Problem&, const scalar_t*, const acc_t<scalar_t>*,    \
                                  const scalar_t*, scalar_t*, const Device&);                 \
  template void rescale_backward_input<scalar_t>(                                             \
      const Problem&, const scalar_t*, const acc_t<scalar_t>*, const acc_t<scalar_t>*,        \
      const scalar_t*, scalar_t*, scalar_t*, const Device&);

STC_INSTANTIATE_MAPS(float)
STC_INSTANTIATE_MAPS(double)
STC_INSTANTIATE_MAPS(__half)
STC_INSTANTIATE_MAPS(__nv_bfloat16)
#undef STC_INSTANTIATE_MAPS

}  // namespace cuda_kernels
}  // namespace stc_ext
