// The output cache (see output_cache.h): a c10::Allocator whose large blocks return to a
// free list when their tensor is freed.
#include "output_cache.h"

#include <ATen/Context.h>
#include <ATen/EmptyTensor.h>
#include <c10/core/CPUAllocator.h>
#include <torch/library.h>
#include <sys/mman.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <string>

namespace stc_ext {
namespace {

constexpr size_t kPage = size_t(4) << 10;
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kHugePageFrom = size_t(4) << 20;  // smaller blocks are page aligned
constexpr int64_t kDefaultLimitMB = 1024;

size_t round_up(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// Blocks of 4 MiB and more are whole huge pages, smaller ones whole pages.
size_t alignment_for(size_t nbytes) { return nbytes >= kHugePageFrom ? kHugePage : kPage; }

// The capacity of a fresh block for nbytes.
size_t capacity_for(size_t nbytes) { return round_up(nbytes, alignment_for(nbytes)); }

struct Block {
  void* ptr;
  size_t capacity;
};

size_t limit_from_environment() {
  const char* value = std::getenv("STC_EXT_CPU_CACHE_MB");
  int64_t megabytes = kDefaultLimitMB;
  if (value != nullptr && *value != '\0') {
    try {
      megabytes = std::stoll(value);
    } catch (const std::exception&) {
      TORCH_CHECK(false, "STC_EXT_CPU_CACHE_MB must be a whole number of megabytes, got '",
                  value, "'");
    }
    TORCH_CHECK(megabytes >= 0, "STC_EXT_CPU_CACHE_MB must be >= 0, got ", megabytes);
  }
  return static_cast<size_t>(megabytes) << 20;
}

class OutputCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes < kMinCachedBytes || limit() == 0) {
      return c10::GetDefaultCPUAllocator()->allocate(nbytes);
    }
    Block* block = take(nbytes);
    if (block == nullptr) block = fresh(nbytes);
    return {block->ptr, block, &OutputCache::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  int64_t free_bytes() {
    std::lock_guard<std::mutex> guard(mutex_);
    return static_cast<int64_t>(free_bytes_);
  }

  void release() {
    std::lock_guard<std::mutex> guard(mutex_);
    for (auto& entry : free_) destroy(entry.second);
    free_.clear();
    free_bytes_ = 0;
  }

 private:
  size_t limit() {
    static const size_t value = limit_from_environment();
    return value;
  }

  // A cached block that fits nbytes and is at most an eighth larger than a fresh block for
  // it would be, or null. (Compared with the fresh block's capacity, not with nbytes: a
  // block rounded up to whole huge pages may exceed nbytes by more than an eighth, and
  // must still be reused by the next request of the same size.)
  Block* take(size_t nbytes) {
    std::lock_guard<std::mutex> guard(mutex_);
    const size_t wanted = capacity_for(nbytes);
    auto it = free_.lower_bound(nbytes);
    if (it == free_.end() || it->first > wanted + wanted / 8) return nullptr;
    Block* block = it->second;
    free_.erase(it);
    free_bytes_ -= block->capacity;
    return block;
  }

  static Block* fresh(size_t nbytes) {
    const size_t alignment = alignment_for(nbytes);
    const size_t capacity = capacity_for(nbytes);
    void* ptr = nullptr;
    TORCH_CHECK(posix_memalign(&ptr, alignment, capacity) == 0 && ptr != nullptr,
                "stc_ext: could not allocate ", capacity, " bytes for an output");
#ifdef MADV_HUGEPAGE
    if (alignment == kHugePage) madvise(ptr, capacity, MADV_HUGEPAGE);  // a hint only
#endif
    return new Block{ptr, capacity};
  }

  static void destroy(Block* block) {
    std::free(block->ptr);
    delete block;
  }

  static void give_back(void* context) {
    Block* block = static_cast<Block*>(context);
    OutputCache& cache = instance();
    {
      std::lock_guard<std::mutex> guard(cache.mutex_);
      if (cache.free_bytes_ + block->capacity <= cache.limit()) {
        cache.free_.emplace(block->capacity, block);
        cache.free_bytes_ += block->capacity;
        return;
      }
    }
    destroy(block);
  }

 public:
  // Never destroyed: tensors freed while the process exits still give their blocks back.
  static OutputCache& instance() {
    static OutputCache* cache = new OutputCache();
    return *cache;
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, Block*> free_;  // by capacity
  size_t free_bytes_ = 0;
};

}  // namespace

at::Tensor empty_cached(at::IntArrayRef sizes, const at::TensorOptions& options,
                        at::MemoryFormat memory_format) {
  at::Tensor out = at::detail::empty_generic(sizes, &OutputCache::instance(),
                                             c10::DispatchKeySet(c10::DispatchKey::CPU),
                                             options.dtype().toScalarType(), memory_format);
  const at::Context& context = at::globalContext();
  if (context.deterministicAlgorithms() && context.deterministicFillUninitializedMemory()) {
    out.fill_(std::numeric_limits<double>::quiet_NaN());
  }
  return out;
}

at::Tensor empty_like_cached(const at::Tensor& t) {
  const at::MemoryFormat format = t.is_contiguous() ? at::MemoryFormat::Contiguous
                                                    : at::MemoryFormat::ChannelsLast3d;
  return empty_cached(t.sizes(), t.options(), format);
}

int64_t output_cache_free_bytes() { return OutputCache::instance().free_bytes(); }

void output_cache_release() { OutputCache::instance().release(); }

// Inspecting and emptying the cache from Python (stc_ext/ops/native.py).
TORCH_LIBRARY_FRAGMENT(stc_ext, m) {
  m.def("output_cache_free_bytes() -> int", &output_cache_free_bytes);
  m.def("output_cache_release() -> ()", &output_cache_release);
}

}  // namespace stc_ext
