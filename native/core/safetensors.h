// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON ({"__metadata__": {string: string}, name: {"dtype", "shape",
// "data_offsets": [begin, end]}}), then the tensor bytes. No pickle, nothing executable.
//
// The header is parsed and checked in plain C++ (fuzzable without LibTorch) before any tensor
// data is read: sizes, dtypes, shapes whose product would overflow, offsets in range, tensors
// that overlap or leave gaps. Writes are atomic: a temporary file in the same folder (on Linux an
// unnamed O_TMPFILE one, named only once complete), fsync, rename, fsync of the folder.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace siamese::core {

enum class DType { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data that follows the header
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::vector<TensorEntry> tensors;  // sorted by begin
  uint64_t dataStart = 0;            // 8 + header length
};

// Largest header accepted (the format's own reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

size_t dtypeSize(DType dtype);
const char* dtypeName(DType dtype);

// Parses and checks the header. `prefix` holds at least the first min(fileSize, 8 + N) bytes.
// Throws BadFileError(path, ...) on any problem.
SafetensorsHeader parseSafetensorsHeader(const std::string& path, const uint8_t* prefix, size_t prefixSize,
                                         uint64_t fileSize);

// Reads and checks the header of a file.
SafetensorsHeader readSafetensorsHeader(const std::string& path);

// Raw tensor bytes to write, little-endian, C order.
struct TensorBytes {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// Writes atomically: path is either the old file or the complete new one, never a mix. A failed
// write (disk full, file size limit, no permission) throws BadFileError and leaves the old file
// as it was.
void writeSafetensorsAtomic(const std::string& path, const std::vector<TensorBytes>& tensors,
                            const std::map<std::string, std::string>& metadata);

}  // namespace siamese::core
