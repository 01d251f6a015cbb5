// The stc_ext op schemas: defined once here, implemented per device in csrc/cpu and
// csrc/cuda, given fake kernels from Python (stc_ext/ops/registration.py).
//
// The STC block is y = x * g (or relu(x * g + identity)), with g (N, C) computed from
// the (N, C, T) spatial means of x by two tiny MLPs (done with ATen ops in Python).
// These ops are the memory-bound passes around that gate:
//
//   pool(x)                                  s[n,c,t]  = mean_hw x
//   rescale(x, g, identity?)                 y         = x*g[n,c]  or relu(x*g[n,c] + identity)
//   rescale_backward_sums(dy, x, y?)         r[n,c,t]  = sum_hw dy'*x   with dy' = dy*(y>0) if y given
//   rescale_backward_input(dy, g, ds, y?)    dx        = g[n,c]*dy' + ds[n,c,t]/(H*W),
//                                            d_identity = dy' (an empty tensor when y is absent)
//
// x, identity, dy, y: (N, C, T, H, W) of one floating dtype, NCTHW-contiguous or
// channels_last_3d (other layouts are made contiguous). s, g, r, ds use the
// accumulation dtype: float32 for float16/bfloat16/float32 inputs, float64 for float64.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing stc_ext._C runs the TORCH_LIBRARY registrations below; it needs no Python API.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(stc_ext, m) {
  m.def("pool(Tensor x) -> Tensor");
  m.def("rescale(Tensor x, Tensor g, Tensor? identity) -> Tensor");
  m.def("rescale_backward_sums(Tensor grad_y, Tensor x, Tensor? y) -> Tensor");
  m.def(
      "rescale_backward_input(Tensor grad_y, Tensor g, Tensor grad_s, Tensor? y)"
      " -> (Tensor, Tensor)");
}
