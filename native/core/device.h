// Device names as users write them: 'auto' | 'cpu' | 'cuda' | 'cuda:N'.
#pragma once

#include <string>

#include <torch/torch.h>

namespace siamese::core {

// 'auto' picks CUDA device 0 when this LibTorch has CUDA and a GPU is present, else the CPU.
// Throws CudaUnavailableError for a CUDA device that is not there, InvalidArgumentError for
// anything else unknown.
torch::Device parseDevice(const std::string& name);

std::string deviceName(const torch::Device& device);

}  // namespace siamese::core
