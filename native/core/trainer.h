// The training loop: samplers, batches, losses, optimiser, evaluation after every epoch,
// checkpoints, resume. Runs on the calling thread; reports through plain callbacks and stops
// between batches when asked.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "model.h"
#include "sampling.h"

namespace siamese::core {

enum class Mining { None, BatchHard, SemiHard };
Mining parseMining(const std::string& name);

struct TrainConfig {
  int64_t epochs = 10;
  int64_t batchSize = 64;
  uint64_t seed = 0;
  std::string pairs = "balanced";  // "reference" | "balanced"
  Mining mining = Mining::None;    // triplet loss only
  std::string optimizer = "adam";  // "adam" | "sgd"
  double lr = 1e-3;
  double weightDecay = 1e-4;
  double momentum = 0.9;  // sgd
  int64_t saveEvery = 2;  // 0: no checkpoints
  std::string outDir;     // empty: write nothing
  int threads = 0;        // 0: LibTorch's default
  uint64_t testSeed = 0;  // the fixed test pairs
};

// A labelled set as tensors: uint8 [N, H, W] on the CPU and its labels.
struct ImageData {
  torch::Tensor images;
  std::vector<int32_t> labels;
  int numClasses = 0;
};

struct BatchProgress {
  int64_t epoch = 0;  // 1-based
  int64_t epochs = 0;
  int64_t batch = 0;  // 1-based
  int64_t batches = 0;
  double loss = 0;
  double pairsPerSecond = 0;
  double etaSeconds = 0;
};

struct EpochMetrics {
  int64_t epoch = 0;
  double trainLoss = 0;
  double trainAccuracy = 0;  // training pairs decided right during the epoch (see trainer.cc)
  double testLoss = 0;
  double testAccuracy = 0;
  double auc = 0;
  double threshold = 0;
  double seconds = 0;
  double pairsPerSecond = 0;
};

struct TrainHooks {
  std::function<void(const BatchProgress&)> onBatch;
  std::function<void(const EpochMetrics&)> onEpoch;
  std::function<void(const std::string& kind, const std::string& path)> onFile;
  const std::atomic<bool>* stop = nullptr;
};

struct TrainOutcome {
  std::vector<EpochMetrics> history;
  bool stopped = false;  // asked to stop: the weights are those of the last completed step
};

// Trains epochs [startEpoch + 1, config.epochs]. `resume` restores the optimiser state of a
// checkpoint written after epoch `startEpoch` (same seed: the same result as an uninterrupted run).
TrainOutcome trainModel(Model& model, const ImageData& train, const ImageData& test, const TrainConfig& config,
                        const TrainHooks& hooks, int64_t startEpoch = 0, const OptimizerSnapshot* resume = nullptr);

}  // namespace siamese::core
