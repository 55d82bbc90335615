#include "batch.h"

#include "errors.h"

namespace siamese::core {

torch::Tensor gatherNormalized(const torch::Tensor& images, const torch::Tensor& indices, const Normalization& norm) {
  TORCH_CHECK(images.dim() == 3 && images.scalar_type() == torch::kUInt8, "images must be uint8 [N, H, W]");
  TORCH_CHECK(indices.dim() == 1 && indices.scalar_type() == torch::kLong, "indices must be int64 [B]");
  // One fused affine map: x * (1 / (255 std)) - mean / std.
  return images.index_select(0, indices)
      .unsqueeze(1)
      .to(torch::kFloat)
      .mul_(1.0 / (255.0 * norm.std))
      .sub_(norm.mean / norm.std);
}

torch::Tensor tripletBatch(const torch::Tensor& images, const Triplets& triplets, const std::vector<int64_t>& order,
                           size_t begin, size_t end, const Normalization& norm) {
  if (begin >= end || end > order.size()) throw InvalidArgumentError("empty or out-of-range triplet batch");
  const auto b = static_cast<int64_t>(end - begin);
  auto indices = torch::empty({3 * b}, torch::kLong);
  int64_t* out = indices.data_ptr<int64_t>();
  for (int64_t i = 0; i < b; ++i) {
    const auto t = static_cast<size_t>(order[begin + static_cast<size_t>(i)]);
    out[i] = triplets.anchor[t];
    out[b + i] = triplets.positive[t];
    out[2 * b + i] = triplets.negative[t];
  }
  return gatherNormalized(images, indices.to(images.device()), norm);
}

}  // namespace siamese::core
