#include "idx.h"

#include <zlib.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "errors.h"

namespace siamese::core {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // 2051
constexpr uint32_t kLabelsMagic = 0x00000801;  // 2049
constexpr size_t kChunkBytes = size_t{1} << 20;

// A gzip or raw file read through zlib (gzread passes raw files through unchanged).
class IdxStream {
 public:
  explicit IdxStream(std::string path) : path_(std::move(path)) {
    std::error_code ec;
    const auto status = std::filesystem::status(path_, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) fail("cannot read: " + ec.message());
    if (ec || !std::filesystem::exists(status)) fail("file not found");
    if (std::filesystem::is_directory(status)) fail("is a directory, not an IDX file");
    file_ = gzopen(path_.c_str(), "rb");
    if (file_ == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
    gzbuffer(file_, 256 * 1024);
  }
  ~IdxStream() {
    if (file_ != nullptr) gzclose(file_);
  }
  IdxStream(const IdxStream&) = delete;
  IdxStream& operator=(const IdxStream&) = delete;

  [[noreturn]] void fail(const std::string& problem) const { throw BadFileError(path_, problem); }

  // Reads up to n bytes; returns how many. Throws on corrupt compressed data.
  size_t read(uint8_t* out, size_t n) {
    size_t total = 0;
    while (total < n) {
      const auto want = static_cast<unsigned>(std::min<size_t>(n - total, kChunkBytes));
      const int got = gzread(file_, out + total, want);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_, &code);
        fail(std::string("corrupt or unreadable data (") + (message ? message : "zlib error") + ")");
      }
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    // A truncated gzip member reads short without an error code on some zlib versions; ask.
    if (total < n) {
      int code = Z_OK;
      gzerror(file_, &code);
      if (code != Z_OK && code != Z_STREAM_END) fail("truncated compressed data");
    }
    return total;
  }

  uint32_t readBigEndian32(const char* field) {
    std::array<uint8_t, 4> b{};
    if (read(b.data(), b.size()) != b.size()) {
      fail(std::string("truncated header: file ends before the ") + field);
    }
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
  }

  // Reads exactly `bytes` of payload, growing the buffer as data arrives, so that a header that
  // claims more than the file holds costs no more memory than the file does.
  std::vector<uint8_t> readPayload(uint64_t bytes, const char* what) {
    std::vector<uint8_t> out;
    out.reserve(static_cast<size_t>(std::min<uint64_t>(bytes, 64 * kChunkBytes)));
    while (out.size() < bytes) {
      const size_t before = out.size();
      const size_t want = static_cast<size_t>(std::min<uint64_t>(bytes - before, kChunkBytes));
      out.resize(before + want);
      const size_t got = read(out.data() + before, want);
      if (got < want) {
        fail("truncated: the header promises " + std::to_string(bytes) + " bytes of " + what + " but the file holds " +
             std::to_string(before + got));
      }
    }
    uint8_t extra = 0;
    if (read(&extra, 1) != 0) {
      fail(std::string("padded: more data after the ") + std::to_string(bytes) + " bytes of " + what +
           " that the header promises");
    }
    return out;
  }

  void expectMagic(uint32_t expected, const char* kind) {
    const uint32_t magic = readBigEndian32("magic number");
    if (magic == expected) return;
    const uint32_t other = expected == kImagesMagic ? kLabelsMagic : kImagesMagic;
    std::string hint;
    if (magic == other) hint = expected == kImagesMagic ? " (this is a labels file)" : " (this is an images file)";
    if ((magic >> 16) == 0x8b1f || (magic >> 16) == 0x1f8b) hint = " (gzip data inside gzip?)";
    fail("not an IDX " + std::string(kind) + " file: magic number " + std::to_string(magic) + ", expected " +
         std::to_string(expected) + hint);
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

}  // namespace

IdxImages readIdxImages(const std::string& path) {
  IdxStream in(path);
  in.expectMagic(kImagesMagic, "images");
  IdxImages out;
  out.count = in.readBigEndian32("image count");
  out.rows = in.readBigEndian32("row count");
  out.cols = in.readBigEndian32("column count");
  if (out.count == 0) in.fail("holds no images (count 0)");
  if (out.rows == 0 || out.cols == 0) {
    in.fail("image size " + std::to_string(out.rows) + "x" + std::to_string(out.cols) + " is empty");
  }
  uint64_t pixelsPerImage = 0;
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(uint64_t{out.rows}, uint64_t{out.cols}, &pixelsPerImage) ||
      __builtin_mul_overflow(pixelsPerImage, uint64_t{out.count}, &bytes) || bytes > kMaxIdxPayloadBytes) {
    in.fail("header claims " + std::to_string(out.count) + " images of " + std::to_string(out.rows) + "x" +
            std::to_string(out.cols) + " pixels, more than the " + std::to_string(kMaxIdxPayloadBytes >> 30) +
            " GiB limit");
  }
  out.pixels = in.readPayload(bytes, "pixels");
  return out;
}

IdxLabels readIdxLabels(const std::string& path) {
  IdxStream in(path);
  in.expectMagic(kLabelsMagic, "labels");
  IdxLabels out;
  out.count = in.readBigEndian32("label count");
  if (out.count == 0) in.fail("holds no labels (count 0)");
  out.labels = in.readPayload(out.count, "labels");
  return out;
}

IdxSplit readIdxSplit(const std::string& imagesPath, const std::string& labelsPath, int numClasses) {
  IdxSplit split{readIdxImages(imagesPath), readIdxLabels(labelsPath)};
  if (split.images.count != split.labels.count) {
    throw BadFileError(labelsPath, "holds " + std::to_string(split.labels.count) + " labels but " + imagesPath +
                                       " holds " + std::to_string(split.images.count) + " images");
  }
  if (numClasses > 0) {
    for (uint32_t i = 0; i < split.labels.count; ++i) {
      if (split.labels.labels[i] >= numClasses) {
        throw BadFileError(labelsPath, "label " + std::to_string(split.labels.labels[i]) + " at index " +
                                           std::to_string(i) + " is out of range (" + std::to_string(numClasses) +
                                           " classes)");
      }
    }
  }
  return split;
}

}  // namespace siamese::core
