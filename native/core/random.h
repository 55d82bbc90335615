// A seeded random source whose sequence is the same on every platform and standard library:
// std::mt19937_64's output is fixed by the standard, but the std:: distributions are not, so
// bounded integers and shuffles are done here.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace siamese::core {

// SplitMix64's finaliser: spreads nearby seeds (0, 1, 2...) far apart.
inline uint64_t mixBits(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Rng {
 public:
  // One independent stream per (seed, stream), e.g. stream = epoch.
  explicit Rng(uint64_t seed, uint64_t stream = 0) : engine_(mixBits(mixBits(seed) ^ mixBits(~stream))) {}

  // Uniform in [0, n), unbiased (rejection). n must be > 0.
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    uint64_t x = engine_();
    while (x < threshold) x = engine_();
    return x % n;
  }

  // Uniform in [lo, hi], both inclusive (Python's random.randint).
  int64_t between(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }

  template <typename T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) {
      std::swap(items[i - 1], items[static_cast<size_t>(below(i))]);
    }
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace siamese::core
