#include "idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "errors.h"

namespace siamese::core {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // 2051
constexpr uint32_t kLabelsMagic = 0x00000801;  // 2049
constexpr size_t kChunkBytes = size_t{1} << 20;

// A raw or gzip file. Gzip is inflated here rather than through zlib's gzread, which stops at
// the end of the last gzip member and ignores whatever follows: a file with trailing bytes after
// its compressed data (a bad concatenation, an interrupted copy over an older file) must be
// refused, not read as if whole. Several gzip members one after another are one file, as
// `gzip -d` reads them.
class IdxStream {
 public:
  explicit IdxStream(std::string path) : path_(std::move(path)) {
    std::error_code ec;
    const auto status = std::filesystem::status(path_, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) fail("cannot read: " + ec.message());
    if (ec || !std::filesystem::exists(status)) fail("file not found");
    if (std::filesystem::is_directory(status)) fail("is a directory, not an IDX file");
    file_ = std::fopen(path_.c_str(), "rb");
    if (file_ == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
    input_.resize(kInputBytes);
    next_ = end_ = input_.data();
    gzip_ = ensure(2) >= 2 && next_[0] == 0x1f && next_[1] == 0x8b;
    if (gzip_ && inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) fail("zlib could not start");
  }
  ~IdxStream() {
    if (gzip_) inflateEnd(&z_);
    if (file_ != nullptr) std::fclose(file_);
  }
  IdxStream(const IdxStream&) = delete;
  IdxStream& operator=(const IdxStream&) = delete;

  [[noreturn]] void fail(const std::string& problem) const { throw BadFileError(path_, problem); }

  // Reads up to n bytes; fewer only at the end of the data. Throws on corrupt or truncated
  // compressed data, and on bytes after the last gzip member.
  size_t read(uint8_t* out, size_t n) { return gzip_ ? inflateSome(out, n) : copySome(out, n); }

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
  static constexpr size_t kInputBytes = 256 * 1024;

  size_t available() const { return static_cast<size_t>(end_ - next_); }

  // Makes at least k unread bytes available, when the file has them; returns how many are.
  size_t ensure(size_t k) {
    if (available() >= k) return available();
    const size_t kept = available();
    std::memmove(input_.data(), next_, kept);
    const size_t got = std::fread(input_.data() + kept, 1, input_.size() - kept, file_);
    if (got == 0 && std::ferror(file_)) fail(std::string("cannot read: ") + std::strerror(errno));
    next_ = input_.data();
    end_ = next_ + kept + got;
    return available();
  }

  size_t copySome(uint8_t* out, size_t n) {
    size_t total = 0;
    while (total < n && ensure(1) > 0) {
      const size_t take = std::min(n - total, available());
      std::memcpy(out + total, next_, take);
      next_ += take;
      total += take;
    }
    return total;
  }

  size_t inflateSome(uint8_t* out, size_t n) {
    size_t total = 0;
    while (total < n && !finished_) {
      if (ensure(1) == 0) fail("truncated compressed data");
      z_.next_in = const_cast<Bytef*>(next_);
      z_.avail_in = static_cast<uInt>(available());
      const auto want = static_cast<uInt>(std::min<size_t>(n - total, kChunkBytes));
      z_.next_out = out + total;
      z_.avail_out = want;
      const int status = inflate(&z_, Z_NO_FLUSH);
      next_ = z_.next_in;
      total += want - z_.avail_out;
      if (status == Z_STREAM_END) {
        endOfMember();
      } else if (status != Z_OK && status != Z_BUF_ERROR) {
        fail(std::string("corrupt or unreadable data (") + (z_.msg != nullptr ? z_.msg : "zlib error") + ")");
      }
    }
    return total;
  }

  // After a gzip member: the end of the file, another member, or bytes that are refused.
  void endOfMember() {
    if (ensure(2) == 0) {
      finished_ = true;
      return;
    }
    if (available() >= 2 && next_[0] == 0x1f && next_[1] == 0x8b) {
      inflateReset(&z_);
      return;
    }
    uint64_t trailing = 0;
    do {
      trailing += available();
      next_ = end_;
    } while (ensure(1) > 0);
    fail(std::to_string(trailing) +
         " trailing byte(s) after the gzip data (the file holds something else after its compressed data)");
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  std::vector<uint8_t> input_;
  const uint8_t* next_ = nullptr;  // unread input in input_
  const uint8_t* end_ = nullptr;
  bool gzip_ = false;
  bool finished_ = false;  // the last gzip member has ended
  z_stream z_{};
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
