// Exceptions that native/core throws on purpose. The addon maps them to stable error codes:
// BadFileError -> ERR_BAD_FILE (with the path), InvalidArgumentError -> ERR_INVALID_ARG,
// UnsupportedError -> ERR_UNSUPPORTED; DistributedError (distributed.h) -> ERR_DISTRIBUTED.
#pragma once

#include <stdexcept>
#include <string>

namespace siamese::core {

// A file that is missing, unreadable or malformed. what() names the file.
class BadFileError : public std::runtime_error {
 public:
  BadFileError(std::string path, const std::string& problem)
      : std::runtime_error(path + ": " + problem), path_(std::move(path)) {}
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// Input that is well formed but cannot be used as asked (e.g. a data set too small for a scheme).
class InvalidArgumentError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A CUDA device was asked for but this LibTorch or machine has none (or not that one).
class CudaUnavailableError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Asked of this machine or LibTorch build, which cannot do it (e.g. bfloat16 on a CPU without
// AVX512_BF16 or AMX): ERR_UNSUPPORTED.
class UnsupportedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace siamese::core
