// Evaluation on fixed test pairs and one-shot episodes.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "dataset.h"
#include "metrics.h"
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

// How a model scores a pair of embeddings, higher meaning "same": for pair-ce the head's logit of
// "same" over "different" (P(same) is its sigmoid; unlike P(same), it does not saturate into
// ties), for the distance losses the negated Euclidean distance. Holds a copy of the head's
// weights, so that every score of one evaluation comes from one state of the model.
class PairScorer {
 public:
  explicit PairScorer(Model& model);
  bool distance() const { return distance_; }
  // a: [..., A, E], b: [..., B, E] (float, one device) -> [..., A, B].
  torch::Tensor matrix(const torch::Tensor& a, const torch::Tensor& b) const;
  // Row by row: a, b: [B, E] -> [B].
  torch::Tensor rows(const torch::Tensor& a, const torch::Tensor& b) const;
  // Bounds of every score between two rows of `embeddings` (for ScoreHistogram).
  std::pair<double, double> bounds(const torch::Tensor& embeddings) const;
  // A score as the model's own threshold: P(same) for pair-ce, a distance otherwise.
  double threshold(double score) const;
  // pair-ce: the head's weights of |a - b| ("same" row minus "different" row), [E] CPU, and its bias.
  const torch::Tensor& weights() const { return weight_; }
  double bias() const { return bias_; }

 private:
  bool distance_;
  torch::Tensor weight_;  // [E]: the head's "same" row minus its "different" row
  double bias_ = 0;
  torch::Tensor positive_;  // the dimensions of positive weight, and of negative weight
  torch::Tensor negative_;
};

// N-way K-shot episodes over a set's embeddings.
struct EpisodeOptions {
  int ways = 0;  // N; 0: none
  int shots = 1;
  int queries = 1;  // a class
  int episodes = 1000;
  uint64_t seed = 0;
  // When given (one group a class, e.g. Omniglot's alphabets), each episode draws a group
  // uniformly among those with `ways` usable classes, then its classes within it.
  std::vector<int32_t> classGroups;
};

struct EpisodeResult {
  double accuracy = 0;  // over all queries of all episodes
  double ci95 = 0;      // 1.96 standard errors of the per-episode accuracy
};

// Each episode draws `ways` classes among those with shots + queries images, then without
// overlap `shots` support images and `queries` queries of each. A query goes to the class of
// highest mean P(same) over its shots (pair-ce), or of nearest prototype, the mean embedding of
// its shots (distance losses). embeddings: [N, E], any device.
EpisodeResult episodeAccuracy(const PairScorer& scorer, const torch::Tensor& embeddings, const ClassIndex& index,
                              const EpisodeOptions& options);

// Verification metrics over every pair of a set (i < j), in blocks, counted into a
// ScoreHistogram: memory O(N + bins), not O(N^2). Thresholds are the scorer's scores.
VerificationMetrics allPairsVerification(const PairScorer& scorer, const torch::Tensor& embeddings,
                                         const std::vector<int32_t>& labels);

// The ROC thresholds and the EER threshold of `m`, from scores to the model's own terms.
void useModelThresholds(VerificationMetrics& m, const PairScorer& scorer);

struct EvaluationOptions {
  uint64_t testSeed = 0;  // the fixed test pairs: the balanced scheme at this seed, epoch 0
  EpisodeOptions episodes;
  bool allPairs = true;   // verification metrics over all pairs of the set
  bool retrieval = true;  // precision@1, R-precision, MAP@R
};

struct SetEvaluation {
  PairMetrics pairs;
  VerificationMetrics fixedPairs;  // of the same fixed pairs, thresholds in the model's terms
  std::optional<VerificationMetrics> allPairs;
  std::optional<RetrievalMetrics> retrieval;
  std::optional<EpisodeResult> episodes;  // when options.episodes.ways > 0
};

// model.evaluate(): each image of the set embedded once, then pair metrics on its fixed test
// pairs, verification metrics on them and on all pairs, retrieval metrics and N-way K-shot
// accuracy, all from those embeddings.
SetEvaluation evaluateSet(Model& model, const ImageData& set, const EvaluationOptions& options);

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
