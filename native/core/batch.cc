#include "batch.h"

#include "errors.h"

namespace siamese::core {

torch::Tensor gatherPixels(const torch::Tensor& images, const torch::Tensor& indices) {
  TORCH_CHECK(images.dim() == 4 && images.scalar_type() == torch::kUInt8, "images must be uint8 [N, H, W, C]");
  TORCH_CHECK(indices.dim() == 1 && indices.scalar_type() == torch::kLong, "indices must be int64 [B]");
  const torch::Tensor picked = images.index_select(0, indices);
  // Grey: [B, H, W] with a channel axis in front, contiguous NCHW, as the reference recipe's batches.
  if (images.size(3) == 1) return picked.squeeze(3).unsqueeze(1).to(torch::kFloat);
  return picked.permute({0, 3, 1, 2}).to(torch::kFloat);
}

torch::Tensor& normalize_(torch::Tensor& pixels, const Normalization& norm) {
  const int64_t channels = pixels.size(1);
  TORCH_CHECK(static_cast<int64_t>(norm.mean.size()) == channels && static_cast<int64_t>(norm.std.size()) == channels,
              "one mean and one std a channel");
  if (channels == 1) {
    // One fused affine map: x * (1 / (255 std)) - mean / std.
    return pixels.mul_(1.0 / (255.0 * norm.std[0])).sub_(norm.mean[0] / norm.std[0]);
  }
  std::vector<float> scale;
  std::vector<float> shift;
  for (int64_t c = 0; c < channels; ++c) {
    scale.push_back(static_cast<float>(1.0 / (255.0 * norm.std[static_cast<size_t>(c)])));
    shift.push_back(static_cast<float>(norm.mean[static_cast<size_t>(c)] / norm.std[static_cast<size_t>(c)]));
  }
  const auto options = torch::TensorOptions().dtype(torch::kFloat).device(pixels.device());
  return pixels.mul_(torch::tensor(scale, options).view({1, channels, 1, 1}))
      .sub_(torch::tensor(shift, options).view({1, channels, 1, 1}));
}

torch::Tensor gatherNormalized(const torch::Tensor& images, const torch::Tensor& indices, const Normalization& norm) {
  torch::Tensor pixels = gatherPixels(images, indices);
  return normalize_(pixels, norm);
}

torch::Tensor tripletIndices(const Triplets& triplets, const std::vector<int64_t>& order, size_t begin, size_t end) {
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
  return indices;
}

torch::Tensor tripletBatch(const torch::Tensor& images, const Triplets& triplets, const std::vector<int64_t>& order,
                           size_t begin, size_t end, const Normalization& norm) {
  return gatherNormalized(images, tripletIndices(triplets, order, begin, end).to(images.device()), norm);
}

}  // namespace siamese::core
