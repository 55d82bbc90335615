#include "dataset.h"

#include <cstdio>
#include <cstring>

#include "random.h"

namespace siamese::core {

namespace {

// Folds bytes into h, eight at a time, each word through SplitMix64's finaliser.
uint64_t fold(uint64_t h, const uint8_t* data, size_t size) {
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, data + i, 8);
    h = mixBits(h ^ word);
  }
  uint64_t tail = size - i;  // the length of the tail, so that trailing zeros still count
  for (; i < size; ++i) tail = (tail << 8) | data[i];
  return mixBits(h ^ tail);
}

uint64_t fold(uint64_t h, uint64_t value) { return mixBits(h ^ value); }

uint64_t foldSet(uint64_t h, const ImageData& set) {
  const torch::Tensor pixels = set.images.contiguous();
  // [N, H, W] for grey, as before colour images came: fingerprints recorded then still match.
  const auto sizes = pixels.sizes();
  const size_t dims = sizes.size() == 4 && sizes[3] == 1 ? 3 : sizes.size();
  for (size_t i = 0; i < dims; ++i) h = fold(h, static_cast<uint64_t>(sizes[i]));
  h = fold(h, static_cast<const uint8_t*>(pixels.data_ptr()), static_cast<size_t>(pixels.numel()));
  h = fold(h, reinterpret_cast<const uint8_t*>(set.labels.data()), set.labels.size() * sizeof(int32_t));
  return fold(h, static_cast<uint64_t>(set.numClasses));
}

}  // namespace

std::string dataFingerprint(const ImageData& train, const ImageData& test) {
  const uint64_t h = foldSet(foldSet(0x5ea5e, train), test);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace siamese::core
