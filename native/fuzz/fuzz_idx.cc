// libFuzzer harness for the IDX reader (native/core/idx.cc): plain C++ and zlib, no LibTorch.
//
// The first byte of an input chooses its form: even, the rest is the file as it is (raw IDX, or
// gzip data that the fuzzer mutates byte by byte); odd, the rest is gzipped here first, so that
// the fuzzer's IDX mutations also go through the decompressing path. Both readers see every file.
// Each must return exactly what the header promised or throw BadFileError; anything else (another
// exception, a crash, a sanitizer report, a huge allocation) is a bug.
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <vector>

#include "../core/errors.h"
#include "../core/idx.h"
#include "fuzz_file.h"

namespace {

std::vector<uint8_t> gzip(const uint8_t* data, size_t size) {
  z_stream z{};
  // windowBits 15 + 16: a gzip wrapper, as gzip(1) and the MNIST files have.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::vector<uint8_t> out(deflateBound(&z, size) + 32);
  z.next_in = const_cast<uint8_t*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

template <typename Read>
void expectLoadOrBadFile(const char* what, Read read) {
  try {
    read();
  } catch (const siamese::core::BadFileError&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s threw something other than BadFileError: %s\n", what, e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static siamese::fuzz::MemoryFile file("fuzz-idx");
  if (size == 0) return 0;
  if (data[0] & 1) {
    const std::vector<uint8_t> packed = gzip(data + 1, size - 1);
    file.assign(packed.data(), packed.size());
  } else {
    file.assign(data + 1, size - 1);
  }
  expectLoadOrBadFile("readIdxImages", [&] {
    const auto images = siamese::core::readIdxImages(file.path());
    if (images.pixels.size() != uint64_t{images.count} * images.rows * images.cols || images.count == 0) std::abort();
  });
  expectLoadOrBadFile("readIdxLabels", [&] {
    const auto labels = siamese::core::readIdxLabels(file.path());
    if (labels.labels.size() != labels.count || labels.count == 0) std::abort();
  });
  return 0;
}
