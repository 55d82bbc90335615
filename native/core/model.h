// A Siamese model: the network, what it was trained for, where it runs, and its files.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <torch/torch.h>

#include "batch.h"
#include "network.h"

namespace siamese::core {

enum class Loss { PairCE, Contrastive, Triplet };

Loss parseLoss(const std::string& name);
const char* lossName(Loss loss);

struct ModelConfig {
  NetworkShape shape;
  Normalization norm;
  Loss loss = Loss::PairCE;
  double margin = 1.0;  // contrastive and triplet losses
  // The same/different decision: on P(same) for pair-ce (0.5 until evaluated), on the embedding
  // distance for the distance losses (set by evaluation: the best threshold on the test pairs).
  double threshold = 0.5;
};

// Where a model file comes from and what it is; strings kept as the file had them.
using Metadata = std::map<std::string, std::string>;

constexpr const char* kFormatKey = "siamese_torch.format";
constexpr const char* kFormatVersion = "1";

class Model {
 public:
  // A new model with freshly initialised weights (PyTorch's default initialisation, seeded).
  Model(const ModelConfig& config, torch::Device device, uint64_t seed);
  // A model whose weights come from a file (the network is built from its metadata).
  Model(const ModelConfig& config, torch::Device device, SiameseNet net);

  SiameseNet& net() { return net_; }
  const ModelConfig& config() const { return config_; }
  void setThreshold(double threshold) { config_.threshold = threshold; }
  torch::Device device() const { return device_; }

  // LibTorch threads for this model's work (0: LibTorch's default). With OpenMP the count is a
  // per-thread setting, so every job applies it on the thread it runs on (useThreads()).
  void setThreads(int threads) { threads_ = threads; }
  int threads() const { return threads_; }
  void useThreads() const;

  // Held while the weights change (one optimiser step) or are read (inference): inference
  // during training sees the weights of the last completed step.
  std::mutex& weightsMutex() { return weightsMutex_; }
  // The network's weight layout for training (true) or inference (false), under the weights lock.
  void useTrainingLayout(bool training) {
    std::lock_guard<std::mutex> lock(weightsMutex_);
    net_->useTrainingLayout(training);
  }

  // uint8 [N, H, W] (CPU) -> float [N, E] (CPU), in batches, without gradients.
  torch::Tensor embedImages(const torch::Tensor& images, int64_t batchSize = 128);
  // P(same) for pairs of embeddings (CPU or device) -> float [B] (CPU).
  torch::Tensor sameProbability(const torch::Tensor& e1, const torch::Tensor& e2);
  // Raw scores of the same pairs: logits (different, same) for pair-ce, [B, 2]; distances, [B].
  torch::Tensor pairScores(const torch::Tensor& e1, const torch::Tensor& e2);

  // Extra metadata carried into every file this model writes (classes, training options...).
  Metadata& extraMetadata() { return extra_; }
  Metadata fileMetadata(const std::string& kind) const;

 private:
  ModelConfig config_;
  torch::Device device_;
  std::atomic<int> threads_{0};
  SiameseNet net_{nullptr};
  std::mutex weightsMutex_;
  Metadata extra_;
};

// Model files (safetensors, reference tensor names). Resume files add the optimiser state.
struct OptimizerSnapshot {
  std::string kind;  // "adam" or "sgd"
  Metadata settings;
  std::map<std::string, torch::Tensor> tensors;  // "<param>.exp_avg", ...
};

void saveModelFile(Model& model, const std::string& path, const Metadata& extra);
void saveCheckpointFile(Model& model, const OptimizerSnapshot& optimizer, const std::string& path,
                        const Metadata& extra);

struct LoadedModel {
  std::unique_ptr<Model> model;
  Metadata metadata;
  OptimizerSnapshot optimizer;  // empty kind for a plain model file
};
LoadedModel loadModelFile(const std::string& path, torch::Device device);

}  // namespace siamese::core
