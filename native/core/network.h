// The Siamese network: a tower that turns an image into an embedding, and the head that scores a
// pair of embeddings. Three towers (docs/architecture.md, "Towers"):
//   - reference: the reference recipe's (conv1, conv2, conv3, linear1), its parameter names those
//     of the reference PyTorch module, so that its state_dict and our files agree;
//   - conv4: the few-shot backbone, four blocks of 3x3 conv 64, BatchNorm, ReLU, 2x2 max-pool
//     (layer1..layer4, each .conv and .bn), then the embedding layer fc;
//   - resnet18: torchvision's ResNet-18, with its parameter and buffer names (conv1, bn1,
//     layer1.0.conv1, ..., layer4.1.bn2), torchvision's fc being the embedding layer.
// The head, linear2, is the reference recipe's for every tower.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "contract.h"

namespace siamese::core {

struct NetworkShape {
  Tower tower = defaults::kTower;
  int64_t width = defaults::kWidth;
  int64_t height = defaults::kHeight;
  int64_t channels = defaults::kChannels;  // 1 (grey) or 3 (RGB)
  int64_t embeddingSize = defaults::kEmbeddingSize;
};

// Smallest input side of the reference tower: 7x7 conv, 2x2 pool, two 5x5 convs leave >= 1 pixel.
constexpr int64_t kMinInputSide = 24;
// Smallest input side of conv4 and resnet18 (four halvings leave one pixel).
constexpr int64_t kMinTowerInputSide = 16;
// Largest input side of any tower.
constexpr int64_t kMaxInputSide = 4096;

// The smallest input side `tower` takes.
int64_t minInputSide(Tower tower);

// Features entering the reference tower's linear1 for an input of this size: 256 * h' * w'.
int64_t flattenSize(int64_t width, int64_t height);

// One tensor of a network's state: a parameter, or a buffer (BatchNorm's running statistics).
struct StateTensor {
  std::string name;
  std::vector<int64_t> shape;
  bool parameter = true;
  torch::Dtype dtype = torch::kFloat;  // num_batches_tracked is int64
};

// The state of the network for `shape`, by name, with shapes and dtypes, computed without
// building it: a model file is checked against it before anything of the file's claimed size is
// allocated. Throws InvalidArgumentError for a shape no tower takes.
std::vector<StateTensor> stateShapes(const NetworkShape& shape);

// The stages of a tower that freezeTower can freeze, first to last (reference 3, conv4 4,
// resnet18 5: the stem conv1 + bn1, then layer1..layer4). The embedding layer is never a stage.
int64_t towerStages(Tower tower);

// A convolution with the BatchNorm after it folded in, for inference on oneDNN: the weights in
// oneDNN's own layout (reordered once), the bias dense.
struct FoldedConv {
  torch::Tensor weight;
  torch::Tensor bias;
  int64_t stride = 1;
  int64_t padding = 0;
};

class SiameseNetImpl : public torch::nn::Module {
 public:
  explicit SiameseNetImpl(const NetworkShape& shape);

  // The tower: [N, C, H, W] normalised images -> [N, E] embeddings.
  torch::Tensor embed(const torch::Tensor& images);

  // The same, for inference (no gradients; the caller holds the model's weights lock). In
  // evaluation mode on oneDNN, in fp32: resnet18 runs with its BatchNorm folded into the
  // convolutions and its activations in oneDNN's layout throughout (~1.5x embed's speed, the same
  // values within float rounding); the reference tower runs its last three layers on weights
  // reordered once (bit-identical to embed() for two images or more); otherwise embed().
  torch::Tensor embedForInference(const torch::Tensor& images);

  // The head: linear2(|e1 - e2|) -> logits (different, same). [B, E] x [B, E] -> [B, 2].
  torch::Tensor head(const torch::Tensor& e1, const torch::Tensor& e2);
  // The head's layer, for scoring many pairs at once without forming them (the caller holds the
  // model's weights lock).
  const torch::nn::Linear& headLayer() const { return linear2; }

  const NetworkShape& shape() const { return shape_; }

  // conv4 and resnet18: their BatchNorm layers behave by mode (batch statistics, updated running
  // statistics in training; running statistics in evaluation).
  bool hasBatchNorm() const { return shape_.tower != Tower::Reference; }

  // Re-initialises the tower's convolution and linear layers (not the head) as `init` says:
  // Torch leaves LibTorch's default (PyTorch's: uniform in +-1/sqrt(fan_in) for weights and
  // biases, and torchvision's He initialisation for resnet18); Xavier draws each weight uniformly
  // in +-sqrt(6 / (fan_in + fan_out)) and zeroes each bias. Draws from the global generator, so a
  // seeded caller gets the same weights every time.
  void initWeights(WeightInit init);

  // Freezes the first `stages` stages of the tower (0: none): their parameters get no gradients
  // and their BatchNorm layers stay in evaluation mode, using and keeping their running
  // statistics, as fine-tuning on top of a trained backbone expects.
  void freezeStages(int64_t stages);
  int64_t frozenStages() const { return frozen_; }

  // Training mode, except for frozen stages (see freezeStages).
  void train(bool on = true) override;

  // Puts the convolution weights in the layout that training (true) or inference (false) runs
  // fastest in: NHWC for training on a CPU with oneDNN, NCHW otherwise; and drops the inference
  // path's reordered weights. The caller holds the model's weights lock.
  void useTrainingLayout(bool training);

  // True on a CPU whose LibTorch has oneDNN (mkldnn) enabled.
  bool usesOneDnn() const;

 private:
  // How the reference tower's first layer and its pooling run on a batch (embedReference).
  enum class GreyLayout {
    Plain,       // as LibTorch lays it out: colour images, or no oneDNN
    Nhwc,        // grey: the first layer on NHWC views (inference, and bfloat16 training)
    NhwcPooling  // grey, fp32 training: the first layer NCHW, pooled from an NHWC copy
  };
  GreyLayout greyLayout(const torch::Tensor& images) const;
  // The reference tower's conv1, ReLU and pooling (NCHW out in inference), and the whole tower.
  torch::Tensor referenceStem(const torch::Tensor& images);
  torch::Tensor embedReference(const torch::Tensor& images);
  torch::Tensor embedReferenceFolded(const torch::Tensor& images);
  torch::Tensor embedReferenceFoldedBf16(const torch::Tensor& images);
  torch::Tensor embedConv4(const torch::Tensor& images);
  torch::Tensor embedResNet18(const torch::Tensor& images);
  torch::Tensor embedResNet18Folded(const torch::Tensor& images);
  // Makes folded_ again when the weights or statistics changed since it was made, or when it was
  // made for the other precision (`bf16`: the reference tower's bfloat16 path).
  void refold(bool bf16 = false);
  // The sum of every parameter's and buffer's version counter: it grows with any change to them.
  int64_t stateVersion() const;
  // The modules of stage `i` (0-based).
  std::vector<std::shared_ptr<torch::nn::Module>> stage(int64_t i) const;

  NetworkShape shape_;
  int64_t frozen_ = 0;
  // reference: conv1..conv3, linear1. resnet18: conv1, bn1, layers. conv4: layers.
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::MaxPool2d pool1{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  torch::nn::Conv2d conv3{nullptr};
  torch::nn::Linear linear1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::AnyModule> layers;  // layer1..layer4
  torch::nn::Linear fc{nullptr};             // conv4 and resnet18's embedding layer
  torch::nn::Linear linear2{nullptr};
  // The inference path's convolutions with their weights in oneDNN's layout, in forward order
  // (resnet18: BatchNorm folded in; reference: conv2, conv3, linear1; reference in bfloat16:
  // conv2 and conv3, then linear1's weight and bias as dense bfloat16 tensors), the stateVersion()
  // and the precision they were made for. Guarded, as the weights, by the model's weights lock.
  std::vector<FoldedConv> folded_;
  int64_t foldedVersion_ = -1;
  bool foldedBf16_ = false;
};
TORCH_MODULE(SiameseNet);

}  // namespace siamese::core
