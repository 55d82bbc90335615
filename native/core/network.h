// The reference Siamese network (docs/recipe.md). Parameter names are those of the reference PyTorch
// module (conv1, conv2, conv3, linear1, linear2) so that its state_dict and our files agree.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "contract.h"

namespace siamese::core {

struct NetworkShape {
  int64_t width = defaults::kWidth;
  int64_t height = defaults::kHeight;
  int64_t embeddingSize = defaults::kEmbeddingSize;
};

// Smallest input side the tower accepts: 7x7 conv, 2x2 pool, two 5x5 convs leave >= 1 pixel.
constexpr int64_t kMinInputSide = 24;

// Features entering linear1 for an input of this size: 256 * h' * w'.
int64_t flattenSize(int64_t width, int64_t height);

// The parameters of the network for `shape`, by name, with their shapes, in registration order,
// computed without building it: a model file is checked against them before anything of the
// file's claimed size is allocated.
std::vector<std::pair<std::string, std::vector<int64_t>>> parameterShapes(const NetworkShape& shape);

class SiameseNetImpl : public torch::nn::Module {
 public:
  explicit SiameseNetImpl(const NetworkShape& shape);

  // The tower: conv1 (1->64, k7), ReLU, max-pool 2, conv2 (64->128, k5), ReLU, conv3 (128->256,
  // k5), ReLU, flatten, linear1, ReLU. [N, 1, H, W] -> [N, E].
  torch::Tensor embed(const torch::Tensor& images);

  // The head: linear2(|e1 - e2|) -> logits (different, same). [B, E] x [B, E] -> [B, 2].
  torch::Tensor head(const torch::Tensor& e1, const torch::Tensor& e2);

  const NetworkShape& shape() const { return shape_; }

  // Puts the convolution weights in the layout that training (true) or inference (false) runs
  // fastest in: NHWC for training on a CPU with oneDNN, NCHW otherwise. The caller holds the
  // model's weights lock.
  void useTrainingLayout(bool training);

  // True on a CPU whose LibTorch has oneDNN (mkldnn) enabled.
  bool usesOneDnn() const;

 private:
  NetworkShape shape_;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::MaxPool2d pool1{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  torch::nn::Conv2d conv3{nullptr};
  torch::nn::Linear linear1{nullptr};
  torch::nn::Linear linear2{nullptr};
};
TORCH_MODULE(SiameseNet);

}  // namespace siamese::core
