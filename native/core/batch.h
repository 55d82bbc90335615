// Batches are assembled natively from one in-memory uint8 tensor of the whole set: index, then
// convert and normalise in one pass. No per-image work, no JavaScript involved.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "contract.h"
#include "sampling.h"

namespace siamese::core {

// Pixel normalisation recorded with a model, per channel: x' = (x / 255 - mean[c]) / std[c].
struct Normalization {
  std::vector<double> mean{defaults::kMean};
  std::vector<double> std{defaults::kStd};
};

// images: uint8 [N, H, W, C] (any device; channels interleaved, as JavaScript holds them);
// indices: int64 [B] on the same device. Returns float32 [B, C, H, W] of pixel values 0..255
// (for C = 3 an NCHW view of NHWC memory, the "channels last" layout oneDNN runs fastest).
torch::Tensor gatherPixels(const torch::Tensor& images, const torch::Tensor& indices);

// Normalises gathered pixels in place (normalize_(gatherPixels(...)) == gatherNormalized(...)).
torch::Tensor& normalize_(torch::Tensor& pixels, const Normalization& norm);

// gatherPixels, then normalize_: float32 [B, C, H, W], normalised.
torch::Tensor gatherNormalized(const torch::Tensor& images, const torch::Tensor& indices, const Normalization& norm);

// The batch's image indices for triplets order[begin..end): anchors, positives, negatives.
torch::Tensor tripletIndices(const Triplets& triplets, const std::vector<int64_t>& order, size_t begin, size_t end);

// The inputs of triplets order[begin..end) as one tensor for a single batched forward pass:
// [anchors; positives; negatives], float32 [3B, C, H, W].
torch::Tensor tripletBatch(const torch::Tensor& images, const Triplets& triplets, const std::vector<int64_t>& order,
                           size_t begin, size_t end, const Normalization& norm);

}  // namespace siamese::core
