// A caching allocator for LibTorch's large CPU buffers.
//
// Why: a training step allocates and frees the same large activation buffers (tens of MiB) on
// every batch. glibc serves them from its heap once its dynamic mmap threshold has grown, and the
// heap fragments: a training process held ~1.4x its live memory (measured in
// scripts/bench/results). Mapping every large buffer fresh instead costs a page fault per 4 KiB
// on every step (~35% of training speed, also measured). This allocator maps large blocks with
// mmap and keeps freed ones for reuse by exact size, so steady-state steps neither fault nor
// fragment. What it keeps mapped is bounded by the loop's own demand (for every size, the most
// blocks of it live at once), at least 1.5x and at most 3x the most the process has had in use at
// once: before mapping a new block it unmaps the blocks idle the longest that would push it over.
//
// Small requests (under kLargeBlock) go to LibTorch's own c10::alloc_cpu / c10::free_cpu.
// SIAMESE_TORCH_CPU_ALLOCATOR=system in the environment leaves LibTorch's allocator in place.
#pragma once

#include <cstddef>
#include <cstdint>

namespace siamese::core {

struct CpuAllocatorStats {
  bool installed = false;
  uint64_t liveBytes = 0;       // large blocks in use by tensors
  uint64_t idleBytes = 0;       // large blocks kept for reuse
  uint64_t highWaterBytes = 0;  // most live bytes at once
  uint64_t hits = 0;            // large requests served from the idle blocks
  uint64_t misses = 0;          // large requests that mapped a new block
};

// Requests at or above this size are cached.
constexpr size_t kLargeBlock = size_t{1} << 20;

// Makes the caching allocator LibTorch's CPU allocator for the whole process (once; later calls do
// nothing). Returns false when SIAMESE_TORCH_CPU_ALLOCATOR=system or under AddressSanitizer, whose
// checks need every buffer to come from malloc.
bool installCachingCpuAllocator();

// Unmaps every idle block: call when a large job ends so that its memory goes back to the system.
void releaseIdleCpuMemory();

// releaseIdleCpuMemory(), then hands the free pages of every malloc arena back to the system
// (glibc's malloc_trim). Call when a whole job ends: with more than one thread, small tensors are
// freed into per-thread arenas that glibc trims only at their top, and a process that trains
// model after model grew by ~5 MiB a run without it (test/reliability/leaks.test.mjs). Costs a
// walk over the arenas (about a millisecond), so not for use between steps.
void returnFreeCpuMemory();

CpuAllocatorStats cpuAllocatorStats();

}  // namespace siamese::core
