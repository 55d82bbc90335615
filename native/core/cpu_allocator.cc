#include "cpu_allocator.h"

#include <sys/mman.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/version.h>

#if defined(__SANITIZE_ADDRESS__)
#define SIAMESE_TORCH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIAMESE_TORCH_ASAN 1
#endif
#endif

namespace siamese::core {

namespace {

constexpr size_t kGranule = size_t{64} << 10;  // large sizes are rounded up to 64 KiB

size_t roundUp(size_t n) { return (n + kGranule - 1) / kGranule * kGranule; }

class CachingCpuAllocator final : public c10::Allocator {
 public:
  // LibTorch 2.3 made allocate() non-const and added copy_data(); 1.x and 2.0-2.2 have the old form.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(size_t n) override { return allocateBlock(n); }
  void copy_data(void* dest, const void* src, size_t count) const override { default_copy_data(dest, src, count); }
#else
  c10::DataPtr allocate(size_t n) const override { return allocateBlock(n); }
#endif
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  CpuAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    CpuAllocatorStats s = stats_;
    s.installed = true;
    return s;
  }

  // Unmaps every idle block and forgets the sizes' peaks: the next phase's demand is its own.
  void releaseIdle() {
    std::lock_guard<std::mutex> lock(mutex_);
    unmapIdleDownTo(0);
    demand_ = 0;
    for (auto it = liveBySize_.begin(); it != liveBySize_.end();) {
      if (it->second.count == 0) {
        it = liveBySize_.erase(it);
        continue;
      }
      it->second.peak = it->second.count;
      demand_ += it->first * it->second.count;
      ++it;
    }
  }

  static CachingCpuAllocator& instance() {
    // Never destroyed: tensors freed during static destruction still find it.
    static auto* allocator = new CachingCpuAllocator();
    return *allocator;
  }

 private:
  c10::DataPtr allocateBlock(size_t n) const {
    void* data = n < kLargeBlock ? c10::alloc_cpu(n) : const_cast<CachingCpuAllocator*>(this)->takeLarge(n);
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  static void release(void* data) {
    if (data == nullptr) return;
    if (!instance().giveBackLarge(data)) c10::free_cpu(data);
  }

  void* takeLarge(size_t n) {
    const size_t size = roundUp(n);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = idle_.find(size);
      if (it != idle_.end() && !it->second.empty()) {
        void* data = it->second.back().data;
        it->second.pop_back();
        stats_.idleBytes -= size;
        markLive(data, size);
        ++stats_.hits;
        return data;
      }
      // Evict the blocks idle the longest first when the mapped total would pass the budget.
      const uint64_t budget = std::max<uint64_t>(budgetBytes(), stats_.liveBytes + size);
      if (stats_.liveBytes + stats_.idleBytes + size > budget) unmapIdleDownTo(budget - stats_.liveBytes - size);
    }
    void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) {
      // Out of address space or memory: give back every idle block and try once more.
      releaseIdle();
      data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (data == MAP_FAILED) {
        TORCH_CHECK_WITH(OutOfMemoryError, false, "cannot allocate ", n, " bytes of CPU memory");
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    markLive(data, size);
    ++stats_.misses;
    return data;
  }

  // What the mapped total may reach. Blocks are reused only at their exact size, so a loop runs
  // without a miss only if, for every size, as many blocks are kept as it ever had live at once:
  // the sum of those is demand_. A multiple of the high-water mark alone guessed it (1.5x was
  // enough for an fp32 training step, but a bfloat16 step, with its casts in both precisions,
  // needs 1.8x and at 1.5x mapped ~37 blocks afresh every step, a third of its time). The budget
  // is that demand, at least 1.5x the high-water mark, at most 3x: a process that sees ever new
  // sizes (inference at every batch size) still holds a bounded multiple of what it used.
  uint64_t budgetBytes() const {
    const uint64_t highWater = stats_.highWaterBytes;
    return std::clamp<uint64_t>(demand_, highWater + highWater / 2, 3 * highWater);
  }

  bool giveBackLarge(void* data) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = live_.find(data);
    if (it == live_.end()) return false;
    const size_t size = it->second;
    live_.erase(it);
    --liveBySize_[size].count;
    stats_.liveBytes -= size;
    idle_[size].push_back({data, ++clock_});
    stats_.idleBytes += size;
    return true;
  }

  void markLive(void* data, size_t size) {
    live_.emplace(data, size);
    SizeUse& use = liveBySize_[size];
    if (++use.count > use.peak) {
      use.peak = use.count;
      demand_ += size;
    }
    stats_.liveBytes += size;
    stats_.highWaterBytes = std::max(stats_.highWaterBytes, stats_.liveBytes);
  }

  // Unmaps idle blocks, the longest idle first, until at most `keep` idle bytes remain. Holds mutex_.
  void unmapIdleDownTo(uint64_t keep) {
    while (stats_.idleBytes > keep) {
      std::vector<IdleBlock>* oldestList = nullptr;
      size_t oldestSize = 0;
      for (auto& [size, blocks] : idle_) {
        // Each list is in the order its blocks were freed: the oldest is at the front.
        if (!blocks.empty() && (oldestList == nullptr || blocks.front().freedAt < oldestList->front().freedAt)) {
          oldestList = &blocks;
          oldestSize = size;
        }
      }
      if (oldestList == nullptr) break;
      munmap(oldestList->front().data, oldestSize);
      oldestList->erase(oldestList->begin());
      stats_.idleBytes -= oldestSize;
    }
  }

  struct SizeUse {
    uint64_t count = 0;  // blocks of the size live now
    uint64_t peak = 0;   // the most live at once since the last releaseIdle()
  };

  struct IdleBlock {
    void* data;
    uint64_t freedAt;
  };

  std::mutex mutex_;
  std::unordered_map<void*, size_t> live_;
  std::map<size_t, std::vector<IdleBlock>> idle_;  // by size; each list oldest first
  std::unordered_map<size_t, SizeUse> liveBySize_;
  uint64_t demand_ = 0;  // the sum of size x peak over liveBySize_
  uint64_t clock_ = 0;   // counts frees
  CpuAllocatorStats stats_;
};

std::atomic<bool> installed{false};

}  // namespace

bool installCachingCpuAllocator() {
  static const bool result = [] {
#if defined(SIAMESE_TORCH_ASAN)
    return false;
#else
    const char* choice = std::getenv("SIAMESE_TORCH_CPU_ALLOCATOR");
    if (choice != nullptr && std::strcmp(choice, "system") == 0) return false;
    // Priority 1 wins over LibTorch's default allocator (registered with 0).
    c10::SetCPUAllocator(&CachingCpuAllocator::instance(), 1);
    installed = true;
    return true;
#endif
  }();
  return result;
}

void releaseIdleCpuMemory() {
  if (installed) CachingCpuAllocator::instance().releaseIdle();
}

void returnFreeCpuMemory() {
  releaseIdleCpuMemory();
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

CpuAllocatorStats cpuAllocatorStats() {
  return installed ? CachingCpuAllocator::instance().stats() : CpuAllocatorStats{};
}

}  // namespace siamese::core
