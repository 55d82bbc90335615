#include "network.h"

#include "errors.h"

namespace siamese::core {

int64_t flattenSize(int64_t width, int64_t height) {
  const auto side = [](int64_t n) { return (n - 6) / 2 - 8; };
  return 256 * side(width) * side(height);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> parameterShapes(const NetworkShape& shape) {
  const int64_t e = shape.embeddingSize;
  return {
      {"conv1.weight", {64, 1, 7, 7}},
      {"conv1.bias", {64}},
      {"conv2.weight", {128, 64, 5, 5}},
      {"conv2.bias", {128}},
      {"conv3.weight", {256, 128, 5, 5}},
      {"conv3.bias", {256}},
      {"linear1.weight", {e, flattenSize(shape.width, shape.height)}},
      {"linear1.bias", {e}},
      {"linear2.weight", {2, e}},
      {"linear2.bias", {2}},
  };
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

bool SiameseNetImpl::usesOneDnn() const {
  return conv1->weight.is_cpu() && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn();
}

void SiameseNetImpl::useTrainingLayout(bool training) {
  if (!usesOneDnn()) return;
  // oneDNN's convolutions train fastest on NHWC ("channels last") tensors (~15% a step here); a
  // convolution's output follows its weights' layout, so converting the weights moves the whole
  // tower to NHWC. For small inference batches NHWC weights are ~7x slower (oneDNN reorders them
  // on every call), so the weights go back to NCHW when training ends. set_data keeps each
  // parameter's identity, so the optimiser's state stays attached.
  torch::NoGradGuard noGrad;
  const auto format = training ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  for (auto* conv : {&conv1, &conv2, &conv3}) {
    auto& weight = (*conv)->weight;
    weight.set_data(weight.contiguous(format));
  }
}

torch::Tensor SiameseNetImpl::embed(const torch::Tensor& images) {
  // ReLU in place: a convolution's backward pass needs its input, not its output, so the
  // output's buffer can hold the activation (a third less activation memory per image).
  auto x = conv1->forward(images).relu_();
  x = pool1->forward(x);
  x = conv2->forward(x).relu_();
  x = conv3->forward(x).relu_();
  if (usesOneDnn()) {
    // linear1 computed as a convolution whose kernel covers the whole feature map: the same
    // weights and the same sums (flatten order C, H, W is the kernel's order), but done by oneDNN
    // instead of the BLAS LibTorch was built with. Debian's LibTorch uses the reference BLAS, on
    // which this layer alone took two thirds of a training step.
    // LibTorch sends a one-image batch with a 3x3 kernel to its slow generic convolution instead
    // of oneDNN, so a single image is computed as a batch of two copies.
    const auto kernel = linear1->weight.view({linear1->weight.size(0), x.size(1), x.size(2), x.size(3)});
    const bool single = x.size(0) == 1;
    auto out = torch::conv2d(single ? x.repeat({2, 1, 1, 1}) : x, kernel, linear1->bias).relu_().flatten(1);
    return single ? out.narrow(0, 0, 1) : out;
  }
  return linear1->forward(x.flatten(1)).relu_();
}

torch::Tensor SiameseNetImpl::head(const torch::Tensor& e1, const torch::Tensor& e2) {
  return linear2->forward(torch::abs(e2 - e1));
}

}  // namespace siamese::core
