// libFuzzer harness for model files: the safetensors header checks (native/core/safetensors.cc,
// json.cc) and the whole loader behind siamese-torch's loadModel() (loadModelFile in model_file.cc).
//
// Every input is a file's bytes. The header is first checked in memory, as the file holds it.
// Then the file is loaded from disk. A model of the real architecture is megabytes of weights, too
// big for the fuzzer to grow, so when the header describes more data than the input carries, the
// file is extended with zeros to cover it (up to kMaxFill; a sparse tail, no memory): inputs are
// headers, optionally followed by the first bytes of the data. Every input must load or throw
// BadFileError or InvalidArgumentError; any other exception, a crash, a sanitizer report, or an
// allocation over libFuzzer's -malloc_limit_mb is a bug.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include <torch/torch.h>

#include "../core/errors.h"
#include "../core/json.h"
#include "../core/model_file.h"
#include "../core/safetensors.h"
#include "fuzz_file.h"

namespace {

using namespace siamese::core;

constexpr uint64_t kMaxFill = uint64_t{64} << 20;

// The file size that the header's data_offsets ask for, or 0 when they ask for nothing readable.
uint64_t declaredFileSize(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i) headerSize = (headerSize << 8) | data[i];
  if (headerSize > size - 8) return 0;
  uint64_t end = 0;
  try {
    const Json root = parseJson(std::string_view(reinterpret_cast<const char*>(data + 8), headerSize));
    for (const auto& [name, entry] : root.object) {
      const Json* offsets = entry.find("data_offsets");
      if (offsets == nullptr || offsets->array.size() != 2 || !offsets->array[1].isInteger) continue;
      if (offsets->array[1].integer > 0) end = std::max(end, static_cast<uint64_t>(offsets->array[1].integer));
    }
  } catch (const std::invalid_argument&) {
    return 0;
  }
  return 8 + headerSize + end;
}

template <typename Body>
void expectResultOrOurError(const char* what, Body body) {
  try {
    body();
  } catch (const BadFileError&) {
  } catch (const InvalidArgumentError&) {
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s threw a LibTorch error, not BadFileError: %s\n", what, e.what_without_backtrace());
    std::abort();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s threw something other than BadFileError: %s\n", what, e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Harnesses run side by side, one core each.
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static siamese::fuzz::MemoryFile file("fuzz-model");

  expectResultOrOurError("parseSafetensorsHeader", [&] {
    const SafetensorsHeader header = parseSafetensorsHeader("input", data, size, size);
    // What it accepts covers the data exactly, in order.
    uint64_t expected = 0;
    for (const auto& t : header.tensors) {
      if (t.begin != expected || t.end < t.begin) std::abort();
      expected = t.end;
    }
    if (header.dataStart + expected != size) std::abort();
  });

  const uint64_t declared = declaredFileSize(data, size);
  const bool fill = declared > size && declared - size <= kMaxFill;
  file.assign(data, size, fill ? static_cast<size_t>(declared) : size);
  expectResultOrOurError("loadModelFile", [&] {
    const LoadedModel loaded = loadModelFile(file.path(), torch::kCPU, /*withOptimizer=*/true);
    if (!loaded.model) std::abort();
  });
  return 0;
}
