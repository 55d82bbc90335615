// The IDX format of MNIST and Fashion-MNIST, gzipped or raw. Plain C++ and zlib, no LibTorch,
// so that the reader can be fuzzed on its own.
//
// Images: magic 2051 (0x00000803: unsigned bytes, 3 dimensions), count, rows, columns, then
// count*rows*columns pixels. Labels: magic 2049 (0x00000801), count, then count labels. All header
// integers are big-endian uint32. Every field is checked before anything is allocated, and the
// payload must be exactly as long as the header says.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace siamese::core {

struct IdxImages {
  uint32_t count = 0;
  uint32_t rows = 0;
  uint32_t cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols, row-major
};

struct IdxLabels {
  uint32_t count = 0;
  std::vector<uint8_t> labels;
};

// Largest payload accepted: far above any IDX data set in use, far below what would exhaust memory.
constexpr uint64_t kMaxIdxPayloadBytes = uint64_t{4} << 30;

// Throw BadFileError (with the path) on any problem.
IdxImages readIdxImages(const std::string& path);
IdxLabels readIdxLabels(const std::string& path);

// Both files of one split. numClasses > 0 also checks that every label is below it.
struct IdxSplit {
  IdxImages images;
  IdxLabels labels;
};
IdxSplit readIdxSplit(const std::string& imagesPath, const std::string& labelsPath, int numClasses);

}  // namespace siamese::core
