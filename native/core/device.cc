#include "device.h"

#include <torch/cuda.h>

#include "errors.h"

namespace siamese::core {

torch::Device parseDevice(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (name.size() > 5) {
      const std::string digits = name.substr(5);
      if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos) {
        throw InvalidArgumentError("unknown device \"" + name + "\"");
      }
      index = std::stoi(digits);
    }
    if (!torch::cuda::is_available()) {
      throw CudaUnavailableError("device \"" + name + "\" asked for, but " +
#ifdef SIAMESE_TORCH_CUDA
                                 std::string("no CUDA GPU is visible")
#else
                                 std::string("this build of siamese-torch uses a CPU-only LibTorch")
#endif
      );
    }
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (index >= count) {
      throw CudaUnavailableError("device \"" + name + "\" asked for, but only " + std::to_string(count) +
                                 " CUDA device(s) are visible");
    }
    return {torch::kCUDA, static_cast<c10::DeviceIndex>(index)};
  }
  throw InvalidArgumentError("unknown device \"" + name + "\"");
}

std::string deviceName(const torch::Device& device) {
  if (device.is_cuda()) return "cuda:" + std::to_string(device.has_index() ? device.index() : 0);
  return "cpu";
}

}  // namespace siamese::core
