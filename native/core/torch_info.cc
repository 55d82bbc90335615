#include "torch_info.h"

#include <dlfcn.h>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#ifdef SIAMESE_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "cpus.h"

namespace siamese::core {

namespace {

// The shared object that holds a LibTorch function: tells which LibTorch the rpath resolved to.
std::string libraryHolding(const void* symbol) {
  Dl_info info{};
  if (dladdr(symbol, &info) != 0 && info.dli_fname != nullptr) return info.dli_fname;
  return "unknown";
}

}  // namespace

TorchInfo torchInfo() {
  TorchInfo info;
  info.libtorchVersion = TORCH_VERSION;
  info.libtorchLibrary = libraryHolding(reinterpret_cast<const void*>(&at::get_num_threads));
  const ThreadDefault& threads = threadDefault();
  info.cpus = threads.cpus;
  info.threads = threads.threads;
  info.threadsBasis = threads.basis;
  info.bf16Cpu = cpuHasBf16();
  info.cudaAvailable = torch::cuda::is_available();
  const auto count = info.cudaAvailable ? static_cast<int>(torch::cuda::device_count()) : 0;
  for (int i = 0; i < count; ++i) {
    CudaDevice device{i, "", 0};
#ifdef SIAMESE_TORCH_CUDA
    const cudaDeviceProp* props = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(i));
    device.name = props->name;
    device.totalMemoryBytes = static_cast<long long>(props->totalGlobalMem);
#endif
    info.cudaDevices.push_back(device);
  }
#ifdef SIAMESE_TORCH_CUDA
  info.cudaBuild = true;
#endif
  return info;
}

}  // namespace siamese::core
