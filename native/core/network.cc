#include "network.h"

#include "errors.h"

namespace siamese::core {

int64_t flattenSize(int64_t width, int64_t height) {
  const auto side = [](int64_t n) { return (n - 6) / 2 - 8; };
  return 256 * side(width) * side(height);
}

SiameseNetImpl::SiameseNetImpl(const NetworkShape& shape) : shape_(shape) {
  if (shape.width < kMinInputSide || shape.height < kMinInputSide) {
    throw InvalidArgumentError("the network needs images of at least " + std::to_string(kMinInputSide) + "x" +
                               std::to_string(kMinInputSide) + " pixels");
  }
  if (shape.embeddingSize < 1) throw InvalidArgumentError("the embedding size must be at least 1");
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 64, 7)));
  pool1 = register_module("pool1", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(64, 128, 5)));
  conv3 = register_module("conv3", torch::nn::Conv2d(torch::nn::Conv2dOptions(128, 256, 5)));
  linear1 = register_module("linear1", torch::nn::Linear(flattenSize(shape.width, shape.height), shape.embeddingSize));
  linear2 = register_module("linear2", torch::nn::Linear(shape.embeddingSize, 2));
}

torch::Tensor SiameseNetImpl::embed(const torch::Tensor& images) {
  auto x = torch::relu(conv1->forward(images));
  x = pool1->forward(x);
  x = torch::relu(conv2->forward(x));
  x = torch::relu(conv3->forward(x));
  return torch::relu(linear1->forward(x.flatten(1)));
}

torch::Tensor SiameseNetImpl::head(const torch::Tensor& e1, const torch::Tensor& e2) {
  return linear2->forward(torch::abs(e2 - e1));
}

}  // namespace siamese::core
