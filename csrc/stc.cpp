// The stc_ext kernel op schemas: defined once here, implemented per device in csrc/cpu
// and csrc/cuda. Their fake kernels are registered from Python when this library is
// loaded (stc_ext/ops/native.py); the "triton" backend implements the same schemas as
// stc_ext::triton_* ops (stc_ext/ops/triton/ops.py).
//
// The STC block is y = x * g, or in the residual form y = relu(x * g + identity), with
// g (N, C) computed from the (N, C, T) spatial means of x by the two branches' small MLPs
// (ATen ops in Python: stc_ext/ops/gate.py). These ops are the memory-bound passes around
// that gate:
//
//   pool(x)                                s[n,c,t]    = mean_hw x
//   rescale(x, g, identity?)               y           = x*g[n,c]
//                                            residual: = relu(x*g[n,c] + identity)
//   rescale_backward_sums(dy, x, y?)       sums[n,c,t] = sum_hw dy'*x
//   rescale_backward_input(dy, g, ds, y?)  dx          = g[n,c]*dy' + ds[n,c,t]/(H*W),
//                                          d_identity  = dy' (an empty tensor in the plain form)
//
//
// and, on the CPU only (other devices run stc_ext/ops/gate.py's ATen version), the gate:
//
//   gate_forward(s, 8 weights?)            g (N, C), state (N, K): each present branch's
//                                          hidden activations and sigmoid, concatenated
//   gate_backward(sums, s, state, 8 w?)    [ds (N, C, T), the 8 weights' gradients (empty
//                                          for an absent branch)], from the
//                                          rescale_backward_sums output
//
// with dy' = dy in the plain form and dy' = dy*(y > 0) in the residual form, where the
// backward ops get the forward's output y (its sign is the ReLU mask) and the plain form
// gets none. x, identity, dy, y: (N, C, T, H, W) of one floating dtype, NCTHW-contiguous
// or channels_last_3d (other layouts are made contiguous). s, g, sums, ds use the
// accumulation dtype: float32 for float16/bfloat16/float32 inputs, float64 for float64.
// Arguments are checked by stc_ext.stc (stc_ext/ops/checks.py); the ops only assert what
// their memory accesses rely on (stc_common.h).
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
  m.def(
      "gate_forward(Tensor s, Tensor? tcb_w1, Tensor? tcb_b1, Tensor? tcb_w2, Tensor? tcb_b2,"
      " Tensor? scb_w1, Tensor? scb_b1, Tensor? scb_w2, Tensor? scb_b2) -> (Tensor, Tensor)");
  m.def(
      "gate_backward(Tensor sums, Tensor s, Tensor state, Tensor? tcb_w1, Tensor? tcb_b1,"
      " Tensor? tcb_w2, Tensor? tcb_b2, Tensor? scb_w1, Tensor? scb_b1, Tensor? scb_w2,"
      " Tensor? scb_b2) -> Tensor[]");
}
