// What the linked LibTorch is and can do. LibTorch only: no napi.h here.
#pragma once

#include <string>
#include <vector>

namespace siamese::core {

struct CudaDevice {
  int index = 0;
  std::string name;
  long long totalMemoryBytes = 0;
};

struct TorchInfo {
  std::string libtorchVersion;  // from the headers this addon was compiled against
  std::string libtorchLibrary;  // the libtorch_cpu file actually loaded, found at run time
  bool cudaBuild = false;       // compiled against a CUDA LibTorch (SIAMESE_TORCH_CUDA)
  bool cudaAvailable = false;   // ...and the CUDA runtime sees at least one GPU
  std::vector<CudaDevice> cudaDevices;
  int cpus = 1;              // CPUs this process may use (affinity, cgroup quota): cpus.h
  int threads = 1;           // LibTorch threads a model gets by default
  std::string threadsBasis;  // where that default came from
  bool bf16Cpu = false;      // the CPU computes bfloat16 natively (AVX512_BF16 or AMX-BF16)
};

TorchInfo torchInfo();

}  // namespace siamese::core
