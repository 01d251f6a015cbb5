// Large CPU outputs of the stc_ext ops from a cache of freed blocks.
//
// A fresh multi-megabyte tensor costs a page fault per 4 KiB page the first time it is
// written (glibc returns large blocks to the OS on free and maps new ones on allocation):
// on the machines measured, filling a fresh 51 MB output took 4-5x as long as filling a
// reused one, more than the kernels' own work. The ops allocate their big outputs (y,
// the input gradients, the gate's weight gradients) here instead: a block freed by its
// tensor goes back to a cache and the next output of about its size reuses it, so a
// training loop touches fresh pages only in its first step. New blocks are 2 MiB aligned
// and advised for transparent huge pages (fewer faults on first touch).
//
// Only blocks of at least kMinCachedBytes are cached; smaller requests go to the default
// CPU allocator. The cache holds at most a limit of free bytes (blocks beyond it are
// returned to the OS): STC_EXT_CPU_CACHE_MB, read once, on the first large allocation;
// default 1024; 0 turns the cache off.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace stc_ext {

constexpr size_t kMinCachedBytes = size_t(1) << 20;

// Uninitialised CPU tensor of `sizes` and `options` in `memory_format`, from the cache
// when it is large. Under torch.use_deterministic_algorithms with
// torch.utils.deterministic.fill_uninitialized_memory it is filled with NaN, as at::empty
// would be.
at::Tensor empty_cached(at::IntArrayRef sizes, const at::TensorOptions& options,
                        at::MemoryFormat memory_format = at::MemoryFormat::Contiguous);

// Like at::empty_like(t) for an NCTHW-contiguous or channels_last_3d t (its layout kept).
at::Tensor empty_like_cached(const at::Tensor& t);

// Free bytes held by the cache, and returning them all to the OS.
int64_t output_cache_free_bytes();
void output_cache_release();

}  // namespace stc_ext
