// The readers under test take a path. Each input is written to an anonymous in-memory file
// (memfd) and read back through /proc/self/fd/N: nothing touches the disk, and nothing is left
// behind when a crash ends the process.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace siamese::fuzz {

class MemoryFile {
 public:
  explicit MemoryFile(const char* name) : fd_(memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }

  // Replaces the contents with `size` bytes, then zeros up to `total` (a sparse tail, no memory).
  void assign(const uint8_t* data, size_t size, size_t total) {
    if (ftruncate(fd_, 0) != 0 || (size > 0 && pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) ||
        (total > size && ftruncate(fd_, static_cast<off_t>(total)) != 0)) {
      std::perror("writing the fuzz input");
      std::abort();
    }
  }
  void assign(const uint8_t* data, size_t size) { assign(data, size, size); }

  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

}  // namespace siamese::fuzz
