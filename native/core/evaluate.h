// Evaluation on fixed test pairs and one-shot episodes.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "dataset.h"
#include "model.h"
#include "sampling.h"

namespace siamese::core {

struct PairMetrics {
  double loss = 0;          // the model's training loss on the test triplets
  double accuracy = 0;      // at the model's decision rule (P(same) >= 0.5, or distance <= its threshold)
  double auc = 0;           // ROC AUC of the same/different scores
  double threshold = 0;     // best threshold: on P(same) for pair-ce, on the distance otherwise
  double bestAccuracy = 0;  // at that best threshold
  int64_t pairs = 0;
};

// embeddings: float [N, E] (CPU) of the set that `triplets` index.
PairMetrics evaluatePairs(Model& model, const torch::Tensor& embeddings, const Triplets& triplets);

struct EvaluationOptions {
  uint64_t testSeed = 0;  // the fixed test pairs: the balanced scheme at this seed, epoch 0
  int ways = 0;           // N of N-way one-shot; 0: skip it
  int episodes = 1000;
  uint64_t seed = 0;  // of the one-shot episodes
};

struct SetEvaluation {
  PairMetrics pairs;
  int ways = 0;
  double oneShotAccuracy = 0;  // when ways > 0
};

// model.evaluate(): each image of the set embedded once, then pair metrics on its fixed test pairs
// and N-way one-shot accuracy.
SetEvaluation evaluateSet(Model& model, const ImageData& set, const EvaluationOptions& options);

// N-way one-shot accuracy: each episode draws `ways` classes, one support image of each and one
// query of one of them; the query goes to the class whose support is most likely "same".
double oneShotAccuracy(Model& model, const torch::Tensor& embeddings, const ClassIndex& index, int ways, int episodes,
                       uint64_t seed);

// ROC AUC (ties counted half) and the threshold of best accuracy, for scores where higher means
// "same". Exposed for tests.
struct RocSummary {
  double auc = 0;
  double bestThreshold = 0;
  double bestAccuracy = 0;
};
RocSummary rocSummary(const std::vector<double>& scores, const std::vector<uint8_t>& same);

// The training loss on given embeddings (mean over the batch).
torch::Tensor tripletLoss(Model& model, const torch::Tensor& anchor, const torch::Tensor& positive,
                          const torch::Tensor& negative);

}  // namespace siamese::core
