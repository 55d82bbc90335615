// A Siamese model: the network, what it was trained for, where it runs, and the locks that let a
// training thread and inference threads share it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <torch/torch.h>

#include "batch.h"
#include "contract.h"
#include "network.h"

namespace siamese::core {

struct ModelConfig {
  NetworkShape shape;
  Normalization norm;
  Loss loss = defaults::kLoss;
  double margin = defaults::kMargin;  // contrastive and triplet losses
  // The same/different decision: on P(same) for pair-ce (0.5), on the embedding distance for the
  // distance losses (set by evaluation: the best threshold on the test pairs).
  double threshold = 0.5;
};

// Strings carried by a model into every file it writes (classes, training options, metrics...).
using Metadata = std::map<std::string, std::string>;

// Threads and locks. A model is shared by the main thread (info, metadata), the thread of a
// training run, and the compute thread that runs inference; every member says what guards it.
//   - weightsMutex(): the network's weights, BatchNorm statistics, gradients, mode (train/eval)
//     and weight layout. Held for one optimiser step (for a tower with BatchNorm, the whole
//     step: its forward pass updates the running statistics), or one inference call, which runs
//     in evaluation mode: inference during training sees the weights and statistics of the last
//     completed step. Never taken on the main thread (a step can take long).
//   - metadataMutex_: the metadata strings; held only to copy or merge them, so the main thread
//     may take it.
//   - the threshold, the thread count and the precision are atomics.
class Model {
 public:
  // A new model with freshly initialised weights, seeded: LibTorch's default initialisation
  // (PyTorch's), or another (network.h, initWeights).
  Model(const ModelConfig& config, torch::Device device, uint64_t seed, WeightInit init = WeightInit::Torch);
  // A model whose weights come from a file (the network is built from its metadata).
  Model(const ModelConfig& config, torch::Device device, SiameseNet net);

  // The network. Use it under weightsMutex() when another thread may use the model.
  SiameseNet& net() { return net_; }
  const SiameseNet& net() const { return net_; }
  // What the model was built for, with its current threshold.
  ModelConfig config() const;
  const NetworkShape& shape() const { return config_.shape; }
  Loss loss() const { return config_.loss; }
  double threshold() const { return threshold_.load(); }
  void setThreshold(double threshold) { threshold_.store(threshold); }
  torch::Device device() const { return device_; }

  // LibTorch threads for this model's work (0: the default, the CPUs this process may use shared
  // between the training runs going: cpus.h). With OpenMP the count is a per-thread setting, so
  // every job applies it on the thread it runs on (useThreads()).
  void setThreads(int threads) { threads_.store(threads); }
  // The count its work uses now: the one set, or the default.
  int threads() const;
  void useThreads() const;

  // Compute precision of its forward passes, training and inference (precision.h); the weights and
  // everything after the embeddings stay fp32. setPrecision throws UnsupportedError where this
  // machine cannot compute in it.
  void setPrecision(Precision precision);
  Precision precision() const { return precision_.load(); }

  std::mutex& weightsMutex() const { return weightsMutex_; }
  // Training mode and weight layout for training (true) or inference (false), under the weights lock.
  void useForTraining(bool training);

  // uint8 [N, H, W, C] (CPU) -> float [N, E] (CPU), in batches, without gradients.
  torch::Tensor embedImages(const torch::Tensor& images, int64_t batchSize = 128);
  // P(same) for pairs of embeddings (CPU or device) -> float [B] (CPU).
  torch::Tensor sameProbability(const torch::Tensor& e1, const torch::Tensor& e2);
  // Raw scores of the same pairs: logits (different, same) for pair-ce, [B, 2]; distances, [B].
  torch::Tensor pairScores(const torch::Tensor& e1, const torch::Tensor& e2);

  // A copy of the metadata, and a merge of new entries into it (under metadataMutex_).
  Metadata metadata() const;
  void setMetadata(const Metadata& entries);

 private:
  const ModelConfig config_;  // immutable; its threshold is the initial one (see threshold_)
  const torch::Device device_;
  std::atomic<double> threshold_;
  std::atomic<int> threads_{0};
  std::atomic<Precision> precision_{Precision::Fp32};
  SiameseNet net_{nullptr};  // guarded by weightsMutex_
  mutable std::mutex weightsMutex_;
  Metadata metadata_;  // guarded by metadataMutex_
  mutable std::mutex metadataMutex_;
};

}  // namespace siamese::core
