// Compute precision: fp32, or bfloat16 through LibTorch's autocast (bf16 convolutions and matrix
// products, fp32 weights, fp32 loss and metrics). LibTorch only: no napi.h here.
#pragma once

#include <torch/torch.h>

#include "contract.h"

namespace siamese::core {

// Throws UnsupportedError when `precision` cannot run on `device` here: bf16 needs a CPU with
// AVX512_BF16 or AMX and a LibTorch with oneDNN (without them oneDNN emulates bfloat16, slower
// than fp32), or a CUDA GPU of compute capability 8.0 or newer.
void checkPrecision(Precision precision, const torch::Device& device);

// True inside a bf16 ComputeIn region for a device of this type on the calling thread.
bool lowerPrecisionActive(c10::DeviceType type);

// Autocast on the calling thread for as long as it lives, when `precision` is bf16: the ops on
// autocast's lower-precision list (convolutions, linear layers, matrix products) compute in
// bfloat16 from fp32 weights, whose casts are cached for the region and dropped at its end. fp32
// does nothing. Regions do not nest.
class ComputeIn {
 public:
  ComputeIn(Precision precision, const torch::Device& device);
  ~ComputeIn();
  ComputeIn(const ComputeIn&) = delete;
  ComputeIn& operator=(const ComputeIn&) = delete;

 private:
  const c10::DeviceType deviceType_;
  const bool enabled_;
};

}  // namespace siamese::core
