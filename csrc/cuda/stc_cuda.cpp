// The stc_ext kernel ops on CUDA tensors (schemas and semantics: csrc/stc.cpp): assertions,
// layout choice, allocation, device guard and stream, then the launchers of
// stc_kernels.cuh. Compiled only in CUDA builds (setup.py / stc_ext/_extension_sources.py).
//
// Memory traffic is the kernels' (stc_sum.cuh, stc_map.cuh): one pass over the big
// tensors per op. Extra here: the NTHWC backward transposes grad_s (N*C*T values) to
// (N, T, C), and a layout other than NCTHW / channels_last_3d is copied to NCTHW first,
// as on the CPU.
//
// Everything runs on the current stream with no host synchronisation, and scratch memory
// comes from the caching allocator, so the ops can be captured in CUDA graphs.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <atomic>

#include "../stc_common.h"
#include "stc_kernels.cuh"

namespace stc_ext {
namespace {

namespace kernels = cuda_kernels;

// The CUDA toolkit's type for each ATen element type (same bits).
template <typename T>
struct KernelType {
  using type = T;
};
template <>
struct KernelType<at::Half> {
  using type = __half;
};
template <>
struct KernelType<at::BFloat16> {
  using type = __nv_bfloat16;
};

template <typename T>
const typename KernelType<T>::type* input_ptr(const at::Tensor& t) {
  return reinterpret_cast<const typename KernelType<T>::type*>(t.const_data_ptr<T>());
}
template <typename T>
typename KernelType<T>::type* output_ptr(at::Tensor& t) {
  return reinterpret_cast<typename KernelType<T>::type*>(t.mutable_data_ptr<T>());
}

kernels::Problem problem_of(const Dims& d, Layout layout) {
  TORCH_CHECK(d.C * d.T * d.HW <= kernels::kMaxElementsPerLaunch,
              "stc_ext: one sample (C*T*H*W = ", d.C * d.T * d.HW,
              " elements) is too large for the CUDA kernels' 32-bit indexing");
  return {d.N, d.C, d.T, d.HW,
          layout == Layout::kNCTHW ? kernels::Layout::kNCTHW : kernels::Layout::kNTHWC};
}

// Multiprocessors of a device, queried once per device (so a graph capture after the
// usual warm-up makes no runtime query at all).
int multiprocessor_count(c10::DeviceIndex device) {
  static std::array<std::atomic<int>, C10_COMPILE_TIME_MAX_GPUS> cache;  // zero: unknown
  TORCH_CHECK(device >= 0 && device < C10_COMPILE_TIME_MAX_GPUS, "stc_ext: bad CUDA device ",
              static_cast<int>(device));
  int count = cache[device].load(std::memory_order_relaxed);
  if (count == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    cache[device].store(count, std::memory_order_relaxed);
  }
  return count;
}

// The current stream of the current device (set by the caller's guard).
kernels::Device current_device() {
  return {c10::cuda::getCurrentCUDAStream().stream(),
          multiprocessor_count(c10::cuda::current_device())};
}

// Scratch for the partial sums of split H*W sums, from the caching allocator.
at::Tensor sum_workspace(const kernels::Problem& problem, const at::Tensor& x,
                         const kernels::Device& device) {
  const size_t bytes = kernels::sum_workspace_bytes(problem, x.element_size(), device.num_sms);
  return at::empty({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
}

void* data_or_null(at::Tensor& t) { return t.numel() > 0 ? t.mutable_data_ptr() : nullptr; }

at::Tensor pool_cuda(const at::Tensor& x_in) {
  const c10::cuda::OptionalCUDAGuard guard(x_in.device());
  const FeatureMapArgs a = prepare_pool(x_in);
  const Dims& d = a.d;
  const Layout layout = a.layout;
  const at::Tensor& x = a.x;
  at::Tensor s = empty_statistic(x, d);
  const kernels::Problem problem = problem_of(d, layout);
  const kernels::Device device = current_device();
  at::Tensor workspace = sum_workspace(problem, x, device);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "stc_pool_cuda", [&] {
    using kernel_t = typename KernelType<scalar_t>::type;
    kernels::pool<kernel_t>(problem, input_ptr<scalar_t>(x),
                            s.mutable_data_ptr<kernels::acc_t<kernel_t>>(),
                            data_or_null(workspace), device);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return s;
}

at::Tensor rescale_cuda(const at::Tensor& x_in, const at::Tensor& g_in,
                        const std::optional<at::Tensor>& identity_in) {
  const c10::cuda::OptionalCUDAGuard guard(x_in.device());
  const RescaleArgs a = prepare_rescale(x_in, g_in, identity_in);
  const Dims& d = a.d;
  const Layout layout = a.layout;
  const at::Tensor &x = a.x, &g = a.g, &identity = a.identity;
  at::Tensor y = at::empty_like(x);
  const kernels::Problem problem = problem_of(d, layout);
  const kernels::Device device = current_device();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "stc_rescale_cuda", [&] {
    using kernel_t = typename KernelType<scalar_t>::type;
    kernels::rescale<kernel_t>(problem, input_ptr<scalar_t>(x),
                               g.const_data_ptr<kernels::acc_t<kernel_t>>(),
                               identity.defined() ? input_ptr<scalar_t>(identity) : nullptr,
                               output_ptr<scalar_t>(y), device);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

at::Tensor rescale_backward_sums_cuda(const at::Tensor& grad_y_in, const at::Tensor& x_in,
                                      const std::optional<at::Tensor>& y_in) {
  const c10::cuda::OptionalCUDAGuard guard(x_in.device());
  const RescaleBackwardSumsArgs a = prepare_rescale_backward_sums(grad_y_in, x_in, y_in);
  const Dims& d = a.d;
  const Layout layout = a.layout;
  const at::Tensor &grad_y = a.grad_y, &x = a.x, &y = a.y;
  at::Tensor sums = empty_statistic(x, d);
  const kernels::Problem problem = problem_of(d, layout);
  const kernels::Device device = current_device();
  at::Tensor workspace = sum_workspace(problem, x, device);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "stc_rescale_backward_sums_cuda", [&] {
    using kernel_t = typename KernelType<scalar_t>::type;
    kernels::rescale_backward_sums<kernel_t>(
        problem, input_ptr<scalar_t>(grad_y), input_ptr<scalar_t>(x),
        y.defined() ? input_ptr<scalar_t>(y) : nullptr,
        sums.mutable_data_ptr<kernels::acc_t<kernel_t>>(), data_or_null(workspace), device);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return sums;
}

std::tuple<at::Tensor, at::Tensor> rescale_backward_input_cuda(
    const at::Tensor& grad_y_in, const at::Tensor& g_in, const at::Tensor& grad_s_in,
    const std::optional<at::Tensor>& y_in) {
  const c10::cuda::OptionalCUDAGuard guard(grad_y_in.device());
  const RescaleBackwardInputArgs a =
      prepare_rescale_backward_input(grad_y_in, g_in, grad_s_in, y_in);
  const Dims& d = a.d;
  const Layout layout = a.layout;
  const at::Tensor &grad_y = a.grad_y, &g = a.g, &y = a.y;
  // The kernels read grad_s in the order they visit it: (N, C, T) or, for NTHWC, (N, T, C).
  const at::Tensor grad_s = layout == Layout::kNCTHW ? grad_s_in.contiguous()
                                                     : grad_s_in.transpose(1, 2).contiguous();
  at::Tensor grad_x, grad_identity;
  std::tie(grad_x, grad_identity) = empty_input_grads(a);
  const kernels::Problem problem = problem_of(d, layout);
  const kernels::Device device = current_device();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_y.scalar_type(), "stc_rescale_backward_input_cuda", [&] {
    using kernel_t = typename KernelType<scalar_t>::type;
    using acc = kernels::acc_t<kernel_t>;
    kernels::rescale_backward_input<kernel_t>(
        problem, input_ptr<scalar_t>(grad_y), g.const_data_ptr<acc>(),
        grad_s.const_data_ptr<acc>(), y.defined() ? input_ptr<scalar_t>(y) : nullptr,
        output_ptr<scalar_t>(grad_x), y.defined() ? output_ptr<scalar_t>(grad_identity) : nullptr,
        device);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {grad_x, grad_identity};
}

}  // namespace

TORCH_LIBRARY_IMPL(stc_ext, CUDA, m) {
  m.impl("pool", &pool_cuda);
  m.impl("rescale", &rescale_cuda);
  m.impl("rescale_backward_sums", &rescale_backward_sums_cuda);
  m.impl("rescale_backward_input", &rescale_backward_input_cuda);
}

}  // namespace stc_ext
