// What a trained model answers: P(same) for pairs of images, and per-class scores of queries
// against a labelled support set. Each embeds every image once, in one pass.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "model.h"

namespace siamese::core {

// P(same) of each pair (left[i], right[i]): uint8 [N, H, W, C] twice -> float [N] (CPU).
torch::Tensor predictPairs(Model& model, const torch::Tensor& left, const torch::Tensor& right);

// The same pass, with the embeddings' Euclidean distance of each pair too: float [N, 2] (CPU),
// column 0 P(same) (bit for bit predictPairs'), column 1 the distance.
torch::Tensor comparePairs(Model& model, const torch::Tensor& left, const torch::Tensor& right);

// One-shot and k-shot classification, by the rules of evaluation's episodes: for each query and
// class, the mean P(same) between the query and that class's support images (pair-ce), or P(same)
// of the query and the class's prototype, the mean embedding of its support images (distance
// losses, whose P(same) falls with the distance); -1 for a class with no support image. queries uint8
// [Q, H, W, C], support uint8 [S, H, W, C] with S labels in [0, numClasses) -> float [Q, numClasses].
torch::Tensor classScores(Model& model, const torch::Tensor& queries, const torch::Tensor& support,
                          const std::vector<int32_t>& labels, int64_t numClasses);

}  // namespace siamese::core
