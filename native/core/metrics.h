// Verification and retrieval metrics, as verification and metric-learning work reports them:
// the ROC curve of pair scores with its AUC, equal error rate and true-accept rates at fixed
// false-accept rates; precision@1, R-precision and MAP@R over exact nearest neighbours of a set's
// embeddings. Computed natively, the neighbours in blocks of queries so that memory stays
// O(block x N), not O(N^2).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include <torch/torch.h>

namespace siamese::core {

// One point of a ROC curve: accepting ("same") every pair whose score is >= threshold.
struct RocPoint {
  double threshold = 0;
  double falseAcceptRate = 0;  // different pairs accepted / different pairs
  double trueAcceptRate = 0;   // same pairs accepted / same pairs
};

// The false-accept rates TAR is reported at.
constexpr std::array<double, 3> kTarFars{1e-1, 1e-2, 1e-3};

struct VerificationMetrics {
  int64_t positives = 0;  // same pairs
  int64_t negatives = 0;  // different pairs
  // From the highest threshold (nothing accepted, (0, 0)) to the lowest (everything, (1, 1)), one
  // point per distinct score.
  std::vector<RocPoint> roc;
  double auc = 0.5;  // ties counted half
  // Where the false-accept rate equals the false-reject rate (1 - TAR), interpolated between the
  // two ROC points around it; its threshold is interpolated the same way.
  double eer = 0;
  double eerThreshold = 0;
  // TAR at each of kTarFars: the best TAR of a threshold whose FAR is at most that rate. Empty
  // (unavailable) when there are fewer than 1 / FAR different pairs: such a rate cannot be told
  // from zero.
  std::array<std::optional<double>, kTarFars.size()> tarAtFar;
};

// scores: higher means "same" (P(same), or a negated distance); same: 1 for a same pair. Needs at
// least one pair of each kind (InvalidArgumentError otherwise).
VerificationMetrics verificationMetrics(const std::vector<double>& scores, const std::vector<uint8_t>& same);

// The pairs of one score: what verificationMetrics() sorts its scores into.
struct ScoreGroup {
  double score = 0;
  int64_t negatives = 0;
  int64_t positives = 0;
};
// The same metrics from groups already in strictly decreasing order of score.
VerificationMetrics verificationFromGroups(const std::vector<ScoreGroup>& groups);

// Verification metrics of more pairs than can be kept (all pairs of a large set): the scores are
// counted into fine bins over [lo, hi], same and different apart, in O(bins) memory. The ROC points
// are exact at the bins' lower edges (a pair is accepted at an edge exactly when its score is >= the
// edge); only the order of pairs within one bin is lost: they count as ties.
class ScoreHistogram {
 public:
  static constexpr int64_t kDefaultBins = int64_t{1} << 18;
  // lo < hi, finite; scores outside are counted in the first or last bin.
  ScoreHistogram(double lo, double hi, int64_t bins = kDefaultBins);
  // scores: float [M] (any device); same: bool [M].
  void add(const torch::Tensor& scores, const torch::Tensor& same);
  VerificationMetrics metrics() const;

 private:
  double lo_;
  double width_;
  int64_t bins_;
  torch::Tensor counts_;  // int64 [2 * bins] on the CPU: different, then same
};

// At most about `points` points of a curve, for reports and pictures: a point is kept when either
// rate, or the false-accept rate's logarithm (the low-FAR end that TAR@FAR reads), has moved by
// 1/points of its range since the last point kept; the first and last points always are.
std::vector<RocPoint> thinRoc(const std::vector<RocPoint>& roc, size_t points);

struct RetrievalMetrics {
  int64_t queries = 0;      // embeddings whose class has another member (the others are skipped)
  double precisionAt1 = 0;  // the nearest other embedding has the query's class
  double rPrecision = 0;    // of the R nearest (R: the other members of its class), the share of its class
  double mapAtR = 0;        // mean average precision at R (Musgrave, Belongie and Lim, 2020)
};

// Euclidean distances between the rows of a [A, E] and b [B, E] -> [A, B]. On a CPU with oneDNN,
// the products a . b run as a 1x1 convolution in oneDNN rather than in the BLAS LibTorch was built
// with (Debian's LibTorch has the reference BLAS, 30x slower here); elsewhere, torch::cdist.
torch::Tensor euclideanDistances(const torch::Tensor& a, const torch::Tensor& b);

// [queries, E] x [N, E] -> [queries, N]: how far each query is from each embedding (lower: nearer).
using DistanceFunction = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

// Each embedding in turn is a query against all the others (leave-one-out), by exact distance
// (euclideanDistances unless `distance` is given), `blockSize` queries at a time. embeddings: float [N, E]
// on any device; labels: N.
RetrievalMetrics retrievalMetrics(const torch::Tensor& embeddings, const std::vector<int32_t>& labels,
                                  int64_t blockSize = 256, const DistanceFunction& distance = {});

}  // namespace siamese::core
