#include "network.h"

#include <array>
#include <utility>

#include "errors.h"
#include "precision.h"

namespace siamese::core {

namespace {

namespace nn = torch::nn;

// conv4's block: 3x3 convolution (with bias, as the few-shot literature's), BatchNorm, ReLU, 2x2 max-pool.
class ConvBlockImpl : public nn::Module {
 public:
  ConvBlockImpl(int64_t in, int64_t out)
      : conv(register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1)))),
        bn(register_module("bn", nn::BatchNorm2d(out))) {}

  // In-place ReLU: BatchNorm's backward pass needs its input, not its output.
  torch::Tensor forward(const torch::Tensor& x) { return torch::max_pool2d(bn->forward(conv->forward(x)).relu_(), 2); }

 private:
  nn::Conv2d conv;
  nn::BatchNorm2d bn;
};
TORCH_MODULE(ConvBlock);

// `conv` followed by `bn` (in evaluation mode) as one convolution: w' = w s, b' = beta - mean s
// (+ the conv's own bias times s), with s = gamma / sqrt(var + eps) per output channel.
FoldedConv foldConv(const nn::Conv2dImpl& conv, const nn::BatchNorm2dImpl& bn, int64_t stride, int64_t padding) {
  const torch::Tensor scale = bn.weight / torch::sqrt(bn.running_var + bn.options.eps());
  torch::Tensor bias = bn.bias - bn.running_mean * scale;
  if (conv.bias.defined()) bias = bias + conv.bias * scale;
  const torch::Tensor weight = (conv.weight * scale.view({-1, 1, 1, 1})).contiguous();
  FoldedConv f;
  f.weight = torch::mkldnn_reorder_conv2d_weight(weight.to_mkldnn(), {padding, padding}, {stride, stride}, {1, 1}, 1);
  f.bias = bias.contiguous();
  f.stride = stride;
  f.padding = padding;
  return f;
}

// A convolution without BatchNorm (stride 1, no padding), its weights reordered for oneDNN.
FoldedConv reorderConv(const torch::Tensor& weight, const torch::Tensor& bias) {
  FoldedConv f;
  f.weight = torch::mkldnn_reorder_conv2d_weight(weight.contiguous().to_mkldnn(), {0, 0}, {1, 1}, {1, 1}, 1);
  f.bias = bias.contiguous();
  return f;
}

// A folded convolution on a oneDNN-layout tensor.
torch::Tensor runFolded(const torch::Tensor& x, const FoldedConv& f) {
  return torch::mkldnn_convolution(x, f.weight, f.bias, {f.padding, f.padding}, {f.stride, f.stride}, {1, 1}, 1);
}

// torchvision's BasicBlock: two 3x3 convolutions without bias, each followed by BatchNorm, and a
// shortcut that is a strided 1x1 convolution and BatchNorm ("downsample") when the shape changes.
class BasicBlockImpl : public nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : stride_(stride),
        conv1(
            register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)))),
        bn1(register_module("bn1", nn::BatchNorm2d(out))),
        conv2(register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)))),
        bn2(register_module("bn2", nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      downsample = register_module(
          "downsample",
          nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)), nn::BatchNorm2d(out)));
    }
  }

  torch::Tensor forward(const torch::Tensor& x) {
    const torch::Tensor identity = downsample ? downsample->forward(x) : x;
    auto out = bn1->forward(conv1->forward(x)).relu_();
    out = bn2->forward(conv2->forward(out));
    return out.add_(identity).relu_();
  }

  // Its convolutions folded, in the order forwardFolded takes them: conv1, conv2, downsample.
  void fold(std::vector<FoldedConv>& out) const {
    out.push_back(foldConv(*conv1, *bn1, stride_, 1));
    out.push_back(foldConv(*conv2, *bn2, 1, 1));
    if (downsample) {
      out.push_back(
          foldConv(*downsample->ptr(0)->as<nn::Conv2d>(), *downsample->ptr(1)->as<nn::BatchNorm2d>(), stride_, 0));
    }
  }

  // forward() with the folded convolutions from `next` (advanced past those used), on oneDNN tensors.
  torch::Tensor forwardFolded(const torch::Tensor& x, const FoldedConv*& next) const {
    auto out = runFolded(x, *next++).relu_();
    out = runFolded(out, *next++);
    const torch::Tensor identity = downsample ? runFolded(x, *next++) : x;
    return out.add_(identity).relu_();
  }

 private:
  int64_t stride_;
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// One of ResNet-18's stages: two BasicBlocks, named "0" and "1" as in torchvision's nn.Sequential.
class ResLayerImpl : public nn::Module {
 public:
  ResLayerImpl(int64_t in, int64_t out, int64_t stride)
      : first(register_module("0", BasicBlock(in, out, stride))),
        second(register_module("1", BasicBlock(out, out, 1))) {}

  torch::Tensor forward(const torch::Tensor& x) { return second->forward(first->forward(x)); }

  void fold(std::vector<FoldedConv>& out) const {
    first->fold(out);
    second->fold(out);
  }

  torch::Tensor forwardFolded(const torch::Tensor& x, const FoldedConv*& next) const {
    return second->forwardFolded(first->forwardFolded(x, next), next);
  }

 private:
  BasicBlock first;
  BasicBlock second;
};
TORCH_MODULE(ResLayer);

// ResNet-18's stages after the stem: (output channels, stride of the first block).
constexpr std::array<std::pair<int64_t, int64_t>, 4> kResNetLayers{{{64, 1}, {128, 2}, {256, 2}, {512, 2}}};
constexpr int64_t kConv4Width = 64;

void addBatchNorm(std::vector<StateTensor>& out, const std::string& name, int64_t features) {
  out.push_back({name + ".weight", {features}});
  out.push_back({name + ".bias", {features}});
  out.push_back({name + ".running_mean", {features}, false});
  out.push_back({name + ".running_var", {features}, false});
  out.push_back({name + ".num_batches_tracked", {}, false, torch::kLong});
}

void checkShape(const NetworkShape& shape) {
  const int64_t least = minInputSide(shape.tower);
  if (shape.width < least || shape.height < least || shape.width > kMaxInputSide || shape.height > kMaxInputSide) {
    throw InvalidArgumentError("the " + std::string(choiceName(shape.tower)) + " tower takes images from " +
                               std::to_string(least) + "x" + std::to_string(least) + " to " +
                               std::to_string(kMaxInputSide) + "x" + std::to_string(kMaxInputSide) + " pixels, not " +
                               std::to_string(shape.width) + "x" + std::to_string(shape.height));
  }
  if (shape.channels != 1 && shape.channels != 3) throw InvalidArgumentError("images have 1 or 3 channels");
  if (shape.embeddingSize < 1) throw InvalidArgumentError("the embedding size must be at least 1");
}

}  // namespace

int64_t minInputSide(Tower tower) { return tower == Tower::Reference ? kMinInputSide : kMinTowerInputSide; }

// The side of the reference tower's last feature map for an input side `n`: conv1 (7), the 2x2
// pooling, then conv2 and conv3 (5 each).
static int64_t referenceMapSide(int64_t n) { return (n - 6) / 2 - 8; }

int64_t flattenSize(int64_t width, int64_t height) { return 256 * referenceMapSide(width) * referenceMapSide(height); }

int64_t towerStages(Tower tower) {
  switch (tower) {
    case Tower::Reference: return 3;
    case Tower::Conv4: return 4;
    case Tower::ResNet18: return 5;
  }
  return 0;
}

std::vector<StateTensor> stateShapes(const NetworkShape& shape) {
  checkShape(shape);
  const int64_t e = shape.embeddingSize;
  const int64_t c = shape.channels;
  std::vector<StateTensor> out;
  switch (shape.tower) {
    case Tower::Reference:
      out = {{"conv1.weight", {64, c, 7, 7}},
             {"conv1.bias", {64}},
             {"conv2.weight", {128, 64, 5, 5}},
             {"conv2.bias", {128}},
             {"conv3.weight", {256, 128, 5, 5}},
             {"conv3.bias", {256}},
             {"linear1.weight", {e, flattenSize(shape.width, shape.height)}},
             {"linear1.bias", {e}}};
      break;
    case Tower::Conv4: {
      int64_t in = c;
      for (int i = 1; i <= 4; ++i) {
        const std::string layer = "layer" + std::to_string(i);
        out.push_back({layer + ".conv.weight", {kConv4Width, in, 3, 3}});
        out.push_back({layer + ".conv.bias", {kConv4Width}});
        addBatchNorm(out, layer + ".bn", kConv4Width);
        in = kConv4Width;
      }
      out.push_back({"fc.weight", {e, kConv4Width * (shape.height / 16) * (shape.width / 16)}});
      out.push_back({"fc.bias", {e}});
      break;
    }
    case Tower::ResNet18: {
      out.push_back({"conv1.weight", {64, c, 7, 7}});
      addBatchNorm(out, "bn1", 64);
      int64_t in = 64;
      for (size_t l = 0; l < kResNetLayers.size(); ++l) {
        const auto [width, stride] = kResNetLayers[l];
        for (int b = 0; b < 2; ++b) {
          const std::string block = "layer" + std::to_string(l + 1) + "." + std::to_string(b);
          out.push_back({block + ".conv1.weight", {width, in, 3, 3}});
          addBatchNorm(out, block + ".bn1", width);
          out.push_back({block + ".conv2.weight", {width, width, 3, 3}});
          addBatchNorm(out, block + ".bn2", width);
          if (b == 0 && (stride != 1 || in != width)) {
            out.push_back({block + ".downsample.0.weight", {width, in, 1, 1}});
            addBatchNorm(out, block + ".downsample.1", width);
          }
          in = width;
        }
      }
      out.push_back({"fc.weight", {e, 512}});
      out.push_back({"fc.bias", {e}});
      break;
    }
  }
  out.push_back({"linear2.weight", {2, e}});
  out.push_back({"linear2.bias", {2}});
  return out;
}

SiameseNetImpl::SiameseNetImpl(const NetworkShape& shape) : shape_(shape) {
  checkShape(shape);
  const int64_t c = shape.channels;
  const int64_t e = shape.embeddingSize;
  switch (shape.tower) {
    case Tower::Reference:
      conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(c, 64, 7)));
      pool1 = register_module("pool1", nn::MaxPool2d(nn::MaxPool2dOptions(2)));
      conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(64, 128, 5)));
      conv3 = register_module("conv3", nn::Conv2d(nn::Conv2dOptions(128, 256, 5)));
      linear1 = register_module("linear1", nn::Linear(flattenSize(shape.width, shape.height), e));
      break;
    case Tower::Conv4:
      for (int i = 1; i <= 4; ++i) {
        layers.emplace_back(
            register_module("layer" + std::to_string(i), ConvBlock(i == 1 ? c : kConv4Width, kConv4Width)));
      }
      fc = register_module("fc", nn::Linear(kConv4Width * (shape.height / 16) * (shape.width / 16), e));
      break;
    case Tower::ResNet18: {
      conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(c, 64, 7).stride(2).padding(3).bias(false)));
      bn1 = register_module("bn1", nn::BatchNorm2d(64));
      int64_t in = 64;
      for (size_t l = 0; l < kResNetLayers.size(); ++l) {
        const auto [width, stride] = kResNetLayers[l];
        layers.emplace_back(register_module("layer" + std::to_string(l + 1), ResLayer(in, width, stride)));
        in = width;
      }
      fc = register_module("fc", nn::Linear(512, e));
      // torchvision's initialisation: He (fan-out) for convolutions, BatchNorm at (1, 0).
      torch::NoGradGuard noGrad;
      for (auto& module : modules(/*include_self=*/false)) {
        if (auto* conv = module->as<nn::Conv2d>()) {
          nn::init::kaiming_normal_(conv->weight, 0, torch::kFanOut, torch::kReLU);
        } else if (auto* bn = module->as<nn::BatchNorm2d>()) {
          nn::init::ones_(bn->weight);
          nn::init::zeros_(bn->bias);
        }
      }
      break;
    }
  }
  linear2 = register_module("linear2", nn::Linear(e, 2));
}

void SiameseNetImpl::initWeights(WeightInit init) {
  if (init == WeightInit::Torch) return;
  torch::NoGradGuard noGrad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (module.get() == linear2.get()) continue;  // the head keeps its own
    torch::Tensor weight;
    torch::Tensor bias;
    if (auto* conv = module->as<nn::Conv2d>()) {
      weight = conv->weight;
      bias = conv->bias;
    } else if (auto* linear = module->as<nn::Linear>()) {
      weight = linear->weight;
      bias = linear->bias;
    } else {
      continue;
    }
    nn::init::xavier_uniform_(weight);
    if (bias.defined()) bias.zero_();
  }
}

bool SiameseNetImpl::usesOneDnn() const {
  return linear2->weight.is_cpu() && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn();
}

void SiameseNetImpl::useTrainingLayout(bool training) {
  // Training's start and end: the inference path's reordered weights are dropped (made again at
  // the next inference), so that a model holds no more after training than before it.
  folded_.clear();
  foldedVersion_ = -1;
  if (!usesOneDnn()) return;
  // oneDNN's convolutions train fastest on NHWC ("channels last") tensors (~15% a step here); a
  // convolution's output follows its weights' layout, so converting the weights moves the whole
  // tower to NHWC. For small inference batches NHWC weights are ~7x slower (oneDNN reorders them
  // on every call), so the weights go back to NCHW when training ends. set_data keeps each
  // parameter's identity, so the optimiser's state stays attached.
  torch::NoGradGuard noGrad;
  const auto format = training ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* conv = module->as<nn::Conv2d>()) conv->weight.set_data(conv->weight.contiguous(format));
  }
}

std::vector<std::shared_ptr<nn::Module>> SiameseNetImpl::stage(int64_t i) const {
  switch (shape_.tower) {
    case Tower::Reference: return {std::array<nn::Conv2d, 3>{conv1, conv2, conv3}[static_cast<size_t>(i)].ptr()};
    case Tower::Conv4: return {layers[static_cast<size_t>(i)].ptr()};
    case Tower::ResNet18:
      if (i == 0) return {conv1.ptr(), bn1.ptr()};
      return {layers[static_cast<size_t>(i - 1)].ptr()};
  }
  return {};
}

void SiameseNetImpl::freezeStages(int64_t stages) {
  if (stages < 0 || stages > towerStages(shape_.tower)) {
    throw InvalidArgumentError("the " + std::string(choiceName(shape_.tower)) + " tower has " +
                               std::to_string(towerStages(shape_.tower)) + " stages to freeze, not " +
                               std::to_string(stages));
  }
  frozen_ = stages;
  for (auto& p : parameters()) p.set_requires_grad(true);
  for (int64_t i = 0; i < stages; ++i) {
    for (const auto& module : stage(i)) {
      for (auto& p : module->parameters()) p.set_requires_grad(false);
    }
  }
  train(is_training());
}

void SiameseNetImpl::train(bool on) {
  nn::Module::train(on);
  for (int64_t i = 0; i < frozen_; ++i) {
    for (const auto& module : stage(i)) module->train(false);
  }
}

torch::Tensor SiameseNetImpl::embed(const torch::Tensor& images) {
  switch (shape_.tower) {
    case Tower::Reference: return embedReference(images);
    case Tower::Conv4: return embedConv4(images);
    case Tower::ResNet18: return embedResNet18(images);
  }
  throw InvalidArgumentError("unknown tower");
}

torch::Tensor SiameseNetImpl::embedForInference(const torch::Tensor& images) {
  // The folded paths call oneDNN directly. In bfloat16 only the reference tower has one; the
  // others run eagerly under autocast.
  if (is_training() || !usesOneDnn()) return embed(images);
  const bool bf16 = lowerPrecisionActive(images.device().type());
  switch (shape_.tower) {
    case Tower::Reference: return bf16 ? embedReferenceFoldedBf16(images) : embedReferenceFolded(images);
    case Tower::ResNet18:
      if (!bf16) return embedResNet18Folded(images);
      break;
    case Tower::Conv4: break;
  }
  return embed(images);
}

int64_t SiameseNetImpl::stateVersion() const {
  int64_t version = 0;
  for (const auto& p : parameters()) version += static_cast<int64_t>(p._version());
  for (const auto& b : buffers()) version += static_cast<int64_t>(b._version());
  return version;
}

void SiameseNetImpl::refold(bool bf16) {
  // Weights and statistics change in place (optimiser steps, training passes, copies from a
  // file), each bumping its tensor's version: the folded convolutions are made again then.
  const int64_t version = stateVersion();
  if (version == foldedVersion_ && bf16 == foldedBf16_) return;
  std::vector<FoldedConv> folded;
  if (shape_.tower == Tower::ResNet18) {
    folded.push_back(foldConv(*conv1, *bn1, 2, 3));
    for (const auto& layer : layers) layer.get<ResLayerImpl>().fold(folded);
  } else if (bf16) {
    // Cast as autocast casts them (round to nearest even), so that the sums are eager bf16's.
    const auto half = [](const torch::Tensor& t) { return t.to(torch::kBFloat16); };
    folded.push_back(reorderConv(half(conv2->weight), half(conv2->bias)));
    folded.push_back(reorderConv(half(conv3->weight), half(conv3->bias)));
    FoldedConv linear;
    linear.weight = half(linear1->weight).contiguous();
    linear.bias = half(linear1->bias).contiguous();
    folded.push_back(linear);
  } else {
    folded.push_back(reorderConv(conv2->weight, conv2->bias));
    folded.push_back(reorderConv(conv3->weight, conv3->bias));
    // linear1 as a convolution whose kernel covers conv3's whole map (see embedReference).
    const auto kernel = linear1->weight.view({linear1->weight.size(0), conv3->weight.size(0),
                                              referenceMapSide(shape_.height), referenceMapSide(shape_.width)});
    folded.push_back(reorderConv(kernel, linear1->bias));
  }
  folded_ = std::move(folded);
  foldedVersion_ = version;
  foldedBf16_ = bf16;
}

torch::Tensor SiameseNetImpl::embedReferenceFolded(const torch::Tensor& images) {
  // The stem as embed() runs it (its NHWC first layer and pooling are the fastest there is), then
  // conv2, conv3 and linear1 on oneDNN tensors with weights reordered once: LibTorch's own call
  // reorders each layer's weights on every pass, most of a small batch's time (one pair: ~1.7x
  // faster). oneDNN runs the same kernels on the same sums, so the embeddings are bit for bit
  // embed()'s for batches of two or more, and a lone image gets what it would get in a batch.
  refold();
  const FoldedConv* next = folded_.data();
  auto x = referenceStem(images).contiguous().to_mkldnn();
  x = runFolded(x, *next++).relu_();
  x = runFolded(x, *next++).relu_();
  x = runFolded(x, *next++).relu_();
  return x.to_dense().flatten(1);
}

torch::Tensor SiameseNetImpl::embedReferenceFoldedBf16(const torch::Tensor& images) {
  // embed() under autocast, on weights cast to bfloat16 and reordered once: autocast casts every
  // weight on every call, and LibTorch's convolution reorders conv2's and conv3's on every pass
  // too. The stem runs as in embed() (autocast computes it in bfloat16); linear1 stays a linear
  // layer, as embed() keeps it in bfloat16. The same kernels on the same bfloat16 operands: the
  // embeddings are bit for bit embed()'s under autocast, for batches of two or more.
  refold(/*bf16=*/true);
  const FoldedConv* next = folded_.data();
  auto x = referenceStem(images).contiguous().to_mkldnn();
  x = runFolded(x, *next++).relu_();
  x = runFolded(x, *next++).relu_();
  const FoldedConv& linear = *next;
  return torch::linear(x.to_dense().flatten(1), linear.weight, linear.bias).relu_();
}

torch::Tensor SiameseNetImpl::embedResNet18Folded(const torch::Tensor& images) {
  refold();
  const FoldedConv* next = folded_.data();
  auto x = runFolded(images.contiguous().to_mkldnn(), *next++).relu_();
  x = torch::max_pool2d(x, 3, 2, 1);
  for (const auto& layer : layers) x = layer.get<ResLayerImpl>().forwardFolded(x, next);
  return fc->forward(torch::adaptive_avg_pool2d(x, {1, 1}).to_dense().flatten(1));
}

namespace {

// A view of a one-channel [N, 1, H, W] tensor whose strides say channels-last. With one channel both
// layouts are the same bytes, and LibTorch reads such a tensor as NCHW; the view makes oneDNN's
// convolution take the NHWC path that the rest of the tower trains in.
torch::Tensor oneChannelAsChannelsLast(const torch::Tensor& t) {
  if (t.dim() != 4 || t.size(1) != 1 || !t.is_contiguous()) return t;
  return t.as_strided(t.sizes(), {t.stride(0), 1, t.stride(2), t.stride(3)});
}

}  // namespace

SiameseNetImpl::GreyLayout SiameseNetImpl::greyLayout(const torch::Tensor& images) const {
  if (images.dim() != 4 || images.size(1) != 1 || !usesOneDnn()) return GreyLayout::Plain;
  // fp32 training keeps the first layer NCHW: with more than one thread, oneDNN sums the NHWC
  // weight gradient in another order, and the recipe's weights would move.
  if (is_training() && !lowerPrecisionActive(images.device().type())) return GreyLayout::NhwcPooling;
  return GreyLayout::Nhwc;
}

torch::Tensor SiameseNetImpl::referenceStem(const torch::Tensor& images) {
  // A grey first layer runs NHWC (a view, no copy) where it can: LibTorch otherwise reads a
  // one-channel batch as NCHW, and LibTorch 1.13's max-pooling of an NCHW map is its slow generic
  // loop (11.6 ms against 2.0 for NHWC on a batch of 192 here, a quarter of an evaluation). In
  // bfloat16 training it also saves reordering the largest activation twice. With one input
  // channel, the forward pass computes the same sums in either layout: bit-identical results.
  const GreyLayout layout = greyLayout(images);
  auto x = layout == GreyLayout::Nhwc
               ? torch::conv2d(oneChannelAsChannelsLast(images), oneChannelAsChannelsLast(conv1->weight), conv1->bias)
               : conv1->forward(images);
  // fp32 training pools an NHWC copy of the first layer's output (made before ReLU, so that the
  // NCHW original is freed at once): the copy, and the copy of its gradient back to NCHW in the
  // first layer's backward pass, cost less than NCHW pooling (~7% of a step), and the first layer
  // still sums its gradients in NCHW order, bit for bit as before.
  if (layout == GreyLayout::NhwcPooling) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  // ReLU in place: a convolution's backward pass needs its input, not its output, so the
  // output's buffer can hold the activation (a third less activation memory per image).
  x = pool1->forward(x.relu_());
  // Inference keeps NCHW weights (fastest for small batches, see useTrainingLayout): the pooled
  // map, a quarter of the first layer's output, goes back to NCHW for them.
  if (layout == GreyLayout::Nhwc && !is_training()) x = x.contiguous();
  return x;
}

torch::Tensor SiameseNetImpl::embedReference(const torch::Tensor& images) {
  auto x = referenceStem(images);
  x = conv2->forward(x).relu_();
  x = conv3->forward(x).relu_();
  // In bfloat16 the layer stays linear: autocast sends it to oneDNN's bf16 matrix product, while
  // the convolution below would take oneDNN's bf16 direct kernel, whose backward pass for weights
  // of a whole-map kernel took most of a training step.
  if (usesOneDnn() && !lowerPrecisionActive(x.device().type())) {
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

torch::Tensor SiameseNetImpl::embedConv4(const torch::Tensor& images) {
  torch::Tensor x = images;
  for (auto& layer : layers) x = layer.forward(x);
  // Flattened in (C, H, W) order, as PyTorch's flatten of an NCHW tensor, whatever the layout.
  return fc->forward(x.contiguous().flatten(1));
}

torch::Tensor SiameseNetImpl::embedResNet18(const torch::Tensor& images) {
  auto x = bn1->forward(conv1->forward(images)).relu_();
  x = torch::max_pool2d(x, 3, 2, 1);
  for (auto& layer : layers) x = layer.forward(x);
  return fc->forward(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
}

torch::Tensor SiameseNetImpl::head(const torch::Tensor& e1, const torch::Tensor& e2) {
  return linear2->forward(torch::abs(e2 - e1));
}

}  // namespace siamese::core
