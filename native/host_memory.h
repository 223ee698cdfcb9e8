// libtorch's CPU allocator for this process: large blocks are mappings of their own, reused by
// later tensors of the same size, and returned to the system where keeping them would exceed the
// most ever live at once or the cache limit, so that the resident set of a training step or a
// prediction follows the bytes it holds at once (docs/benchmarks.md, "Training
// memory").
#pragma once

#include <cstddef>
#include <string>

namespace crackseg {

struct HostMemoryStats {
  std::string allocator;        // "caching", or "system" (libtorch's own, left in place)
  std::size_t liveBytes;        // mapped blocks held by tensors now
  std::size_t cachedBytes;      // mapped blocks kept for reuse
  std::size_t cacheLimitBytes;  // at most this many are kept
};

// Installs the caching allocator as libtorch's CPU allocator, once, at addon load, unless
// CRACKSEG_HOST_CACHE_MIB is "system". CRACKSEG_HOST_CACHE_MIB=N (MiB, integer ≥ 0) sets the cache
// limit (default 1024); anything else is a RangeError (ERR_CRACKSEG_RANGE) naming the variable.
void InstallHostAllocator();

HostMemoryStats GetHostMemoryStats();

}  // namespace crackseg
