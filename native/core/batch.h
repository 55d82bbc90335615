// Batches are assembled natively from one in-memory uint8 tensor of the whole set: index, then
// convert and normalise in one pass. No per-image work, no JavaScript involved.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "contract.h"
#include "sampling.h"

namespace siamese::core {

// Pixel normalisation recorded with a model: x' = (x / 255 - mean) / std.
struct Normalization {
  double mean = defaults::kMean;
  double std = defaults::kStd;
};

// images: uint8 [N, H, W] (any device); indices: int64 [B] on the same device.
// Returns float32 [B, 1, H, W], normalised.
torch::Tensor gatherNormalized(const torch::Tensor& images, const torch::Tensor& indices, const Normalization& norm);

// The inputs of triplets order[begin..end) as one tensor for a single batched forward pass:
// [anchors; positives; negatives], float32 [3B, 1, H, W].
torch::Tensor tripletBatch(const torch::Tensor& images, const Triplets& triplets, const std::vector<int64_t>& order,
                           size_t begin, size_t end, const Normalization& norm);

}  // namespace siamese::core
