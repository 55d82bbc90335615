// The training loop: samplers, batches, losses, optimiser, evaluation after every epoch,
// checkpoints, resume. Runs on the calling thread; reports through plain callbacks and stops
// between batches when asked.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "augment.h"
#include "contract.h"
#include "dataset.h"
#include "distributed.h"
#include "model.h"
#include "model_file.h"

namespace siamese::core {

struct TrainConfig {
  int64_t epochs = defaults::kEpochs;
  int64_t batchSize = defaults::kBatchSize;
  uint64_t seed = defaults::kSeed;
  PairScheme pairs = defaults::kPairs;
  Mining mining = defaults::kMining;  // triplet loss only
  Optimizer optimizer = defaults::kOptimizer;
  double lr = defaults::kLr;  // the peak of a schedule
  LrSchedule lrSchedule = defaults::kLrSchedule;
  double warmup = defaults::kWarmup;  // epochs of linear warm-up from lr / steps to lr
  double weightDecay = defaults::kWeightDecay;
  double momentum = defaults::kMomentum;     // sgd
  int64_t saveEvery = defaults::kSaveEvery;  // 0: no checkpoints
  std::string outDir;                        // empty: write nothing
  int threads = 0;                           // 0: the model's (model.h, setThreads)
  std::optional<Precision> precision;        // none: the model's (model.h, setPrecision)
  uint64_t testSeed = 0;                     // the fixed test pairs
  // Augmentation of training batches (none by default, as the reference recipe), drawn from a
  // stream of the seed and the epoch: the same seed gives the same batches, resumed or not.
  AugmentConfig augment;
  // Tower stages trained as they are (network.h, freezeStages); 0: none.
  int64_t freezeStages = 0;
  // Capture the triplet step as a CUDA graph and replay it (cuda_graph.h); a CUDA device only.
  bool cudaGraph = false;
  // A resume's check that the data is the checkpoint's (dataFingerprint); empty: none.
  std::string expectedDataFingerprint;
  // Data-parallel training with other processes (distributed.h); none: this process alone. Every
  // rank trains on its share of each batch of the one-process run (the batch size is global),
  // from rank 0's initial weights; the gradients are summed over the ranks at every step, so
  // every rank holds the same weights. Only rank 0 reports progress and writes files.
  std::optional<DistributedConfig> distributed;
};

struct BatchProgress {
  int64_t epoch = 0;  // 1-based
  int64_t epochs = 0;
  int64_t batch = 0;  // 1-based
  int64_t batches = 0;
  double loss = 0;
  double lr = 0;  // the learning rate this batch's step was taken with
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

// The learning rate of step `step` (0-based, counted over the whole run, epoch 1's first batch
// being step 0) of a run of `totalSteps` steps, `warmupSteps` of them warm-up: a linear warm-up
// from lr / warmupSteps to lr, then lr held (constant) or annealed along a half cosine towards 0
// at step `totalSteps` (cosine). It depends on nothing but its arguments, so a resumed run takes
// the same rates as an uninterrupted one.
double scheduledLr(LrSchedule schedule, double lr, int64_t step, int64_t totalSteps, int64_t warmupSteps);

// The metrics as a JSON object with the names JavaScript's EpochMetrics has (the "metrics" metadata).
std::string metricsJson(const EpochMetrics& m);

struct TrainHooks {
  std::function<void(const BatchProgress&)> onBatch;
  std::function<void(const EpochMetrics&)> onEpoch;
  std::function<void(const std::string& kind, const std::string& path)> onFile;
  const std::atomic<bool>* stop = nullptr;
};

struct TrainOutcome {
  std::vector<EpochMetrics> history;
  bool stopped = false;  // asked to stop (on any rank): the weights are those of the last completed step
  // Distributed runs: this process's rank and the world size (0 and 1 alone), and the seconds the
  // steps waited for their gradients' all-reduce after the backward pass.
  int rank = 0;
  int worldSize = 1;
  double allReduceWaitSeconds = 0;
};

// Trains epochs [startEpoch + 1, config.epochs]. `resume` restores the optimiser state of a
// checkpoint written after epoch `startEpoch` (same seed: the same result as an uninterrupted run).
// Records the data's fingerprint and each epoch's metrics in the model's metadata, so that every
// file written carries them.
TrainOutcome trainModel(Model& model, const ImageData& train, const ImageData& test, const TrainConfig& config,
                        const TrainHooks& hooks, int64_t startEpoch = 0, const OptimizerSnapshot* resume = nullptr);

}  // namespace siamese::core
