// A labelled image set as native code holds it, and its fingerprint.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace siamese::core {

// uint8 [N, H, W, C] pixels on the CPU (channels interleaved), N labels in [0, numClasses).
struct ImageData {
  torch::Tensor images;
  std::vector<int32_t> labels;
  int numClasses = 0;
};

// A 64-bit fingerprint of a training run's data (both splits: shapes, pixels, labels, class
// count), as 16 hex digits. Checkpoints record it, so that a resume on other data is refused. Not
// cryptographic: it tells data apart, it does not authenticate it.
std::string dataFingerprint(const ImageData& train, const ImageData& test);

}  // namespace siamese::core
