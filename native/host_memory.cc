#include "host_memory.h"

#include <c10/core/Allocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "errors.h"

namespace crackseg {
namespace {

// Blocks from 64 KiB up are mapped; smaller ones stay with malloc, where they are few in bytes.
constexpr std::size_t kMappedFromBytes = std::size_t{64} << 10;
constexpr std::size_t kDefaultCacheLimitMiB = 1024;

// Why not malloc for the large blocks: glibc serves each thread from an arena and, once a mapped
// block has been freed, raises its mmap threshold to that block's size (up to 32 MiB), so the
// step's tensors are carved from arenas that keep the memory after the tensors die; a step of
// tiny at 1024², batch 2, then peaked at 11.3 GiB for 6.2 GiB in use. Unmapping every block at
// free instead costs a page fault per 4 KiB at the next allocation, which on a virtual machine is
// slower than the step's arithmetic on that memory. A step allocates the same sizes every time,
// so blocks kept by exact size are reused without faults. What is kept is bounded twice: by the
// limit, and by the most bytes ever live at once (a new block first evicts cached ones), so the
// cache saves faults without raising the peak.
class CachingHostAllocator final : public c10::Allocator {
 public:
  explicit CachingHostAllocator(std::size_t cacheLimit) : cacheLimit_(cacheLimit) {}

  // libtorch 1.x declares allocate const and 2.x does not: both spellings, one body, each
  // overriding where the base declares it.
  c10::DataPtr allocate(std::size_t bytes) const { return Allocate(bytes); }
  c10::DataPtr allocate(std::size_t bytes) { return Allocate(bytes); }
  // A pure virtual of libtorch ≥ 2.3's Allocator; not part of 1.x's.
  void copy_data(void* dest, const void* src, std::size_t count) const {
    std::memcpy(dest, src, count);
  }
  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  HostMemoryStats Stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {"caching", liveBytes_, cachedBytes_, cacheLimit_};
  }

 private:
  c10::DataPtr Allocate(std::size_t bytes) const {
    void* data = bytes >= kMappedFromBytes ? Map(PageRounded(bytes)) : c10::alloc_cpu(bytes);
    return {data, data, &Delete, c10::Device(c10::DeviceType::CPU)};
  }

  static std::size_t PageRounded(std::size_t bytes) {
    static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return (bytes + page - 1) / page * page;
  }

  void* Map(std::size_t size) const {
    std::vector<std::pair<void*, std::size_t>> evicted;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto cached = cache_.find(size);
      if (cached != cache_.end()) {
        void* data = cached->second.back();
        cached->second.pop_back();
        if (cached->second.empty()) cache_.erase(cached);
        cachedBytes_ -= size;
        Live(data, size);
        return data;
      }
      // A new mapping: first unmap cached blocks, largest first, until live, cached and new
      // together stay within the most ever live at once, so what the cache keeps never raises
      // the peak, only saves faults below it.
      std::size_t ceiling = std::max(liveHighWater_, liveBytes_ + size);
      while (!cache_.empty() && liveBytes_ + cachedBytes_ + size > ceiling) {
        auto largest = std::prev(cache_.end());
        evicted.emplace_back(largest->second.back(), largest->first);
        largest->second.pop_back();
        cachedBytes_ -= largest->first;
        if (largest->second.empty()) cache_.erase(largest);
      }
    }
    for (const auto& [data, bytes] : evicted) munmap(data, bytes);
    void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) {
      // What is cached may be what stands in the way: give it back and try once more.
      ReleaseCache();
      data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (data == MAP_FAILED) throw std::bad_alloc();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    Live(data, size);
    return data;
  }

  void Live(void* data, std::size_t size) const {
    live_.emplace(data, size);
    liveBytes_ += size;
    liveHighWater_ = std::max(liveHighWater_, liveBytes_);
  }

  static void Delete(void* data);

  void Free(void* data) const {
    std::size_t size = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto live = live_.find(data);
      if (live == live_.end()) {
        c10::free_cpu(data);  // a small block, from malloc
        return;
      }
      size = live->second;
      live_.erase(live);
      liveBytes_ -= size;
      if (cachedBytes_ + size <= cacheLimit_) {
        cache_[size].push_back(data);
        cachedBytes_ += size;
        return;
      }
    }
    munmap(data, size);
  }

  void ReleaseCache() const {
    std::map<std::size_t, std::vector<void*>> released;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released.swap(cache_);
      cachedBytes_ = 0;
    }
    for (const auto& [size, blocks] : released)
      for (void* data : blocks) munmap(data, size);
  }

  const std::size_t cacheLimit_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, std::size_t> live_;
  // Free blocks by size, ordered so that the largest go first when the cache must shrink.
  mutable std::map<std::size_t, std::vector<void*>> cache_;
  mutable std::size_t liveBytes_ = 0;
  mutable std::size_t liveHighWater_ = 0;
  mutable std::size_t cachedBytes_ = 0;
};

// Never destroyed: tensors may be freed by other libraries' exit handlers after this file's
// static destructors have run.
CachingHostAllocator* installed = nullptr;

void CachingHostAllocator::Delete(void* data) { installed->Free(data); }

std::size_t CacheLimitFromEnvironment(const char* value) {
  if (value == nullptr || *value == '\0') return kDefaultCacheLimitMiB << 20;
  char* end = nullptr;
  unsigned long long mib = std::strtoull(value, &end, 10);
  if (*end != '\0' || *value == '-' || mib > (std::size_t{1} << 24))
    ThrowRangeError(RangeCode::kRange,
                    std::string("CRACKSEG_HOST_CACHE_MIB must be a whole number of MiB (0 to "
                                "16777216) or 'system', got '") +
                        value + "'");
  return static_cast<std::size_t>(mib) << 20;
}

}  // namespace

void InstallHostAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* value = std::getenv("CRACKSEG_HOST_CACHE_MIB");
    if (value != nullptr && std::strcmp(value, "system") == 0) return;
    installed = new CachingHostAllocator(CacheLimitFromEnvironment(value));
    c10::SetAllocator(c10::DeviceType::CPU, installed, /*priority=*/1);
  });
}

HostMemoryStats GetHostMemoryStats() {
  if (installed == nullptr) return {"system", 0, 0, 0};
  return installed->Stats();
}

}  // namespace crackseg
