#include "precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#ifdef SIAMESE_TORCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "cpus.h"
#include "errors.h"

// LibTorch 2.4 replaced the per-device autocast switches with ones that take the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SIAMESE_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace siamese::core {

namespace {

void setAutocast(c10::DeviceType type, bool enabled) {
#ifdef SIAMESE_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(type, at::kBFloat16);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (type == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace

bool lowerPrecisionActive(c10::DeviceType type) {
#ifdef SIAMESE_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void checkPrecision(Precision precision, const torch::Device& device) {
  if (precision == Precision::Fp32) return;
  if (device.is_cuda()) {
#ifdef SIAMESE_TORCH_CUDA
    const cudaDeviceProp* props = at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index());
    if (props->major < 8) {
      throw UnsupportedError("precision 'bf16' needs a GPU of compute capability 8.0 or newer; " +
                             std::string(props->name) + " has " + std::to_string(props->major) + "." +
                             std::to_string(props->minor) + ": use precision 'fp32'");
    }
#endif
    return;
  }
  if (!device.is_cpu()) throw UnsupportedError("precision 'bf16' runs on the CPU and on CUDA only");
  if (!cpuHasBf16()) {
    throw UnsupportedError(
        "precision 'bf16' needs a CPU that computes bfloat16 natively (AVX512_BF16 or AMX), and this one does "
        "not: use precision 'fp32'");
  }
  if (!at::hasMKLDNN()) {
    throw UnsupportedError("precision 'bf16' needs a LibTorch built with oneDNN (MKL-DNN), and this one is not");
  }
}

ComputeIn::ComputeIn(Precision precision, const torch::Device& device)
    : deviceType_(device.type()), enabled_(precision == Precision::Bf16) {
  if (!enabled_) return;
  setAutocast(deviceType_, true);
  at::autocast::increment_nesting();
}

ComputeIn::~ComputeIn() {
  if (!enabled_) return;
  setAutocast(deviceType_, false);
  // The casts of the weights are cached for one region only: the next step's weights differ.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

}  // namespace siamese::core
