#include "safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string_view>

#include "errors.h"
#include "json.h"

namespace siamese::core {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F64, "F64", 8},   {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4},   {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::Bool, "BOOL", 1},
};

uint64_t readLittleEndian64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

[[noreturn]] void bad(const std::string& path, const std::string& problem) { throw BadFileError(path, problem); }

// What a file that is not safetensors looks like, from its first bytes; empty when unknown. A
// user who passes a picture or a text file as a model should be told so, not given a header
// length read from its first eight bytes.
std::string lookalike(const uint8_t* p, size_t n) {
  const auto starts = [&](std::string_view magic, size_t at = 0) {
    return n >= at + magic.size() && std::memcmp(p + at, magic.data(), magic.size()) == 0;
  };
  if (starts("\x89PNG")) return "a PNG image";
  if (starts("\xff\xd8\xff")) return "a JPEG image";
  if (starts("GIF8")) return "a GIF image";
  if (starts("RIFF") && starts("WEBP", 8)) return "a WebP image";
  if (starts("\x1f\x8b")) return "gzip-compressed data";
  if (starts("\x7f"
             "ELF"))
    return "a program (ELF)";
  if (starts("%PDF")) return "a PDF document";
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')) ++i;
  const bool text = std::all_of(p, p + n, [](uint8_t c) { return c >= 0x20 || c == '\n' || c == '\r' || c == '\t'; });
  if (text && i < n && (p[i] == '{' || p[i] == '[')) return "JSON text";
  if (text) return "a text file";
  return "";
}

TensorEntry parseEntry(const std::string& path, const std::string& name, const Json& v) {
  if (v.kind != Json::Kind::Object) bad(path, "tensor \"" + name + "\" is not described by an object");
  TensorEntry e;
  e.name = name;
  const Json* dtype = v.find("dtype");
  const Json* shape = v.find("shape");
  const Json* offsets = v.find("data_offsets");
  if (!dtype || dtype->kind != Json::Kind::String) bad(path, "tensor \"" + name + "\" has no dtype");
  const auto* info =
      std::find_if(std::begin(kDTypes), std::end(kDTypes), [&](const DTypeInfo& d) { return dtype->string == d.name; });
  if (info == std::end(kDTypes)) bad(path, "tensor \"" + name + "\" has unknown dtype \"" + dtype->string + "\"");
  e.dtype = info->dtype;
  if (!shape || shape->kind != Json::Kind::Array) bad(path, "tensor \"" + name + "\" has no shape");
  uint64_t elements = 1;
  for (const Json& d : shape->array) {
    if (!d.isInteger || d.integer < 0)
      bad(path, "tensor \"" + name + "\" has a shape that is not non-negative integers");
    e.shape.push_back(d.integer);
    if (__builtin_mul_overflow(elements, static_cast<uint64_t>(d.integer), &elements)) {
      bad(path, "tensor \"" + name + "\" has a shape whose size overflows");
    }
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(elements, static_cast<uint64_t>(info->size), &bytes)) {
    bad(path, "tensor \"" + name + "\" has a shape whose size overflows");
  }
  if (!offsets || offsets->kind != Json::Kind::Array || offsets->array.size() != 2 || !offsets->array[0].isInteger ||
      !offsets->array[1].isInteger || offsets->array[0].integer < 0 ||
      offsets->array[1].integer < offsets->array[0].integer) {
    bad(path, "tensor \"" + name + "\" has invalid data_offsets");
  }
  e.begin = static_cast<uint64_t>(offsets->array[0].integer);
  e.end = static_cast<uint64_t>(offsets->array[1].integer);
  if (e.end - e.begin != bytes) {
    bad(path, "tensor \"" + name + "\" spans " + std::to_string(e.end - e.begin) +
                  " bytes but its shape and dtype need " + std::to_string(bytes));
  }
  return e;
}

void writeAll(int fd, const void* data, size_t size, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw BadFileError(path, std::string("cannot write: ") + std::strerror(errno));
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

size_t dtypeSize(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.size;
  }
  return 0;
}

const char* dtypeName(DType dtype) {
  for (const auto& d : kDTypes) {
    if (d.dtype == dtype) return d.name;
  }
  return "?";
}

SafetensorsHeader parseSafetensorsHeader(const std::string& path, const uint8_t* prefix, size_t prefixSize,
                                         uint64_t fileSize) {
  if (fileSize < 8 || prefixSize < 8)
    bad(path, "too short to be a safetensors file (" + std::to_string(fileSize) + " bytes)");
  const uint64_t headerSize = readLittleEndian64(prefix);
  if (headerSize > kMaxHeaderBytes || headerSize > fileSize - 8) {
    // Not safetensors. Only now may a first byte of 0x80 mean a pickle: in a safetensors file it
    // is the low byte of the header's length (a header of 0x580 bytes starts 80 05 00 ...).
    if (prefix[0] == 0x80 || (prefix[0] == 'P' && prefix[1] == 'K')) {
      bad(path, "looks like a PyTorch pickle (.pt/.pth), not safetensors; siamese-torch never unpickles");
    }
    const std::string like = lookalike(prefix, std::min<size_t>(prefixSize, 512));
    if (!like.empty()) bad(path, "not a safetensors model file: it looks like " + like);
  }
  if (headerSize > kMaxHeaderBytes)
    bad(path,
        "header length " + std::to_string(headerSize) + " is over the 100 MB limit: not a safetensors model file");
  if (headerSize > fileSize - 8) {
    bad(path, "header length " + std::to_string(headerSize) + " is larger than the file (" + std::to_string(fileSize) +
                  " bytes): not a safetensors model file");
  }
  if (prefixSize < 8 + headerSize) bad(path, "header was not read in full");
  const std::string_view text(reinterpret_cast<const char*>(prefix + 8), static_cast<size_t>(headerSize));
  Json root;
  try {
    root = parseJson(text);
  } catch (const std::invalid_argument& e) {
    bad(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (root.kind != Json::Kind::Object) bad(path, "header is not a JSON object");

  SafetensorsHeader header;
  header.dataStart = 8 + headerSize;
  for (const auto& [name, value] : root.object) {
    if (name == "__metadata__") {
      if (value.kind != Json::Kind::Object) bad(path, "__metadata__ is not an object");
      for (const auto& [key, text] : value.object) {
        if (text.kind != Json::Kind::String) bad(path, "metadata \"" + key + "\" is not a string");
        header.metadata[key] = text.string;
      }
      continue;
    }
    header.tensors.push_back(parseEntry(path, name, value));
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  // The data must be covered exactly: no overlap, no gap, nothing past the end of the file.
  uint64_t expected = 0;
  for (const auto& t : header.tensors) {
    if (t.begin < expected) bad(path, "tensor \"" + t.name + "\" overlaps another");
    if (t.begin > expected) bad(path, "tensor \"" + t.name + "\" leaves a gap in the data");
    expected = t.end;
  }
  const uint64_t dataSize = fileSize - header.dataStart;
  if (expected != dataSize) {
    bad(path, "tensors cover " + std::to_string(expected) + " bytes but the file holds " + std::to_string(dataSize) +
                  " bytes of data");
  }
  return header;
}

SafetensorsHeader readSafetensorsHeader(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) bad(path, "cannot read: " + ec.message());
  if (ec || !std::filesystem::exists(status)) bad(path, "file not found");
  if (std::filesystem::is_directory(status)) bad(path, "is a directory, not a model file");
  const uint64_t fileSize = std::filesystem::file_size(path, ec);
  if (ec) bad(path, "cannot read its size: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) bad(path, std::string("cannot open: ") + std::strerror(errno));
  uint8_t first[8] = {};
  in.read(reinterpret_cast<char*>(first), fileSize < 8 ? static_cast<std::streamsize>(fileSize) : 8);
  if (fileSize < 8) return parseSafetensorsHeader(path, first, static_cast<size_t>(fileSize), fileSize);
  const uint64_t headerSize = readLittleEndian64(first);
  if (headerSize > kMaxHeaderBytes || headerSize > fileSize - 8) {
    // Not safetensors: the first bytes tell what it is instead.
    std::vector<uint8_t> head(static_cast<size_t>(std::min<uint64_t>(fileSize, 512)));
    std::copy(first, first + 8, head.begin());
    in.read(reinterpret_cast<char*>(head.data() + 8), static_cast<std::streamsize>(head.size() - 8));
    return parseSafetensorsHeader(path, head.data(), static_cast<size_t>(in.gcount()) + 8, fileSize);
  }
  std::vector<uint8_t> prefix(8 + static_cast<size_t>(headerSize));
  std::copy(first, first + 8, prefix.begin());
  in.read(reinterpret_cast<char*>(prefix.data() + 8), static_cast<std::streamsize>(headerSize));
  if (!in) bad(path, "cannot read the header");
  return parseSafetensorsHeader(path, prefix.data(), prefix.size(), fileSize);
}

void writeSafetensorsAtomic(const std::string& path, const std::vector<TensorBytes>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  std::string header = "{\"__metadata__\":{";
  bool first = true;
  for (const auto& [key, value] : metadata) {
    header += (first ? "" : ",") + jsonQuote(key) + ":" + jsonQuote(value);
    first = false;
  }
  header += "}";
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    header += "," + jsonQuote(t.name) + ":{\"dtype\":\"" + dtypeName(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.size) + "]}";
    offset += t.size;
  }
  header += "}";
  // The format pads the header with spaces to a multiple of 8 so that data is aligned.
  header.append((8 - header.size() % 8) % 8, ' ');

  const std::filesystem::path target(path);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  std::random_device entropy;
  const std::filesystem::path temp =
      dir / ("." + target.filename().string() + "." + std::to_string(entropy()) + ".tmp");

  // Linux: the new file is written without a name (O_TMPFILE) and named only once it is complete
  // and flushed, so a process killed mid-write (SIGKILL, power loss) leaves nothing behind, not
  // even a temporary file. Elsewhere, or on a file system without O_TMPFILE, a named temporary
  // file next to the target is used; a kill can then leave that hidden ".<name>.<n>.tmp" file,
  // never a partial file under the target's name.
  bool anonymous = false;
  int fd = -1;
#ifdef O_TMPFILE
  if (::access("/proc/self/fd", X_OK) == 0) {
    fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    anonymous = fd >= 0;
  }
#endif
  if (fd < 0) fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw BadFileError(path, std::string("cannot create a file next to it: ") + std::strerror(errno));
  bool open = true;
  bool named = !anonymous;
  try {
    uint8_t length[8];
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i, n >>= 8) length[i] = static_cast<uint8_t>(n & 0xff);
    writeAll(fd, length, 8, path);
    writeAll(fd, header.data(), header.size(), path);
    for (const auto& t : tensors) writeAll(fd, t.data, t.size, path);
    if (::fsync(fd) != 0) throw BadFileError(path, std::string("cannot flush: ") + std::strerror(errno));
    if (anonymous) {
      // linkat() cannot replace a file: give the complete file the temporary name, then rename.
      const std::string self = "/proc/self/fd/" + std::to_string(fd);
      if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, temp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
        throw BadFileError(path, std::string("cannot name the new file: ") + std::strerror(errno));
      }
      named = true;
    }
    open = false;
    if (::close(fd) != 0) throw BadFileError(path, std::string("cannot close: ") + std::strerror(errno));
  } catch (...) {
    if (open) ::close(fd);
    if (named) ::unlink(temp.c_str());
    throw;
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    throw BadFileError(path, std::string("cannot move the new file into place: ") + std::strerror(err));
  }
  // Make the rename itself durable.
  const int dirFd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
}

}  // namespace siamese::core
