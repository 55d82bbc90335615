#include "evaluate.h"

#include <algorithm>
#include <numeric>

#include "errors.h"
#include "random.h"

namespace siamese::core {

namespace F = torch::nn::functional;

torch::Tensor tripletLoss(Model& model, const torch::Tensor& anchor, const torch::Tensor& positive,
                          const torch::Tensor& negative) {
  const double margin = model.config().margin;
  switch (model.loss()) {
    case Loss::PairCE: {
      // The reference: cross-entropy of (anchor, positive) against "same" plus (anchor, negative)
      // against "different", each averaged over the batch.
      const auto b = anchor.size(0);
      const auto options = torch::TensorOptions().dtype(torch::kLong).device(anchor.device());
      return F::cross_entropy(model.net()->head(anchor, positive), torch::ones({b}, options)) +
             F::cross_entropy(model.net()->head(anchor, negative), torch::zeros({b}, options));
    }
    case Loss::Contrastive: {
      // Hadsell, Chopra, LeCun: y d^2 + (1 - y) max(m - d, 0)^2, for the same and the other pair.
      const auto dPos = F::pairwise_distance(anchor, positive);
      const auto dNeg = F::pairwise_distance(anchor, negative);
      return dPos.pow(2).mean() + torch::relu(margin - dNeg).pow(2).mean();
    }
    case Loss::Triplet:
      return F::triplet_margin_loss(anchor, positive, negative, F::TripletMarginLossFuncOptions().margin(margin));
  }
  throw InvalidArgumentError("unknown loss");
}

RocSummary rocSummary(const std::vector<double>& scores, const std::vector<uint8_t>& same) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // AUC = P(score of a same pair > score of a different pair), ties half (Mann-Whitney U).
  double positives = 0;
  double rankSum = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double averageRank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2.0;
    for (size_t k = i; k < j; ++k) {
      if (same[order[k]]) {
        positives += 1;
        rankSum += averageRank;
      }
    }
    i = j;
  }
  const double negatives = static_cast<double>(n) - positives;
  RocSummary out;
  out.auc =
      positives > 0 && negatives > 0 ? (rankSum - positives * (positives + 1) / 2) / (positives * negatives) : 0.5;
  // Best threshold: predict "same" when score >= t. Walk t up through the sorted scores.
  double correct = positives;  // t below every score: all "same"
  out.bestAccuracy = correct / static_cast<double>(n);
  out.bestThreshold = n > 0 ? scores[order[0]] : 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    for (size_t k = i; k < j; ++k) correct += same[order[k]] ? -1 : 1;
    const double accuracy = correct / static_cast<double>(n);
    if (accuracy > out.bestAccuracy) {
      out.bestAccuracy = accuracy;
      out.bestThreshold = j < n ? (scores[order[j - 1]] + scores[order[j]]) / 2 : scores[order[j - 1]] + 1e-9;
    }
    i = j;
  }
  return out;
}

PairMetrics evaluatePairs(Model& model, const torch::Tensor& embeddings, const Triplets& triplets) {
  const auto toIndex = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); };
  const auto a = embeddings.index_select(0, toIndex(triplets.anchor));
  const auto p = embeddings.index_select(0, toIndex(triplets.positive));
  const auto n = embeddings.index_select(0, toIndex(triplets.negative));
  PairMetrics out;
  out.pairs = static_cast<int64_t>(2 * triplets.size());
  {
    torch::InferenceMode inference;
    std::lock_guard<std::mutex> lock(model.weightsMutex());
    const auto device = model.device();
    out.loss = tripletLoss(model, a.to(device), p.to(device), n.to(device)).item<double>();
  }
  const bool distance = model.loss() != Loss::PairCE;
  const auto scorePos = distance ? -model.pairScores(a, p) : model.sameProbability(a, p);
  const auto scoreNeg = distance ? -model.pairScores(a, n) : model.sameProbability(a, n);
  std::vector<double> scores;
  std::vector<uint8_t> same;
  scores.reserve(static_cast<size_t>(out.pairs));
  for (int64_t i = 0; i < scorePos.size(0); ++i) {
    scores.push_back(scorePos[i].item<double>());
    same.push_back(1);
    scores.push_back(scoreNeg[i].item<double>());
    same.push_back(0);
  }
  const RocSummary roc = rocSummary(scores, same);
  out.auc = roc.auc;
  out.bestAccuracy = roc.bestAccuracy;
  // Accuracy at the model's own decision rule: P(same) >= 0.5, or distance <= its threshold
  // (scores of distance models are negated distances).
  const double cut = distance ? -model.threshold() : 0.5;
  int64_t correct = 0;
  for (size_t i = 0; i < scores.size(); ++i) correct += (scores[i] >= cut) == (same[i] == 1);
  out.accuracy = static_cast<double>(correct) / static_cast<double>(scores.size());
  out.threshold = distance ? -roc.bestThreshold : roc.bestThreshold;
  return out;
}

double oneShotAccuracy(Model& model, const torch::Tensor& embeddings, const ClassIndex& index, int ways, int episodes,
                       uint64_t seed) {
  std::vector<int> usable;
  for (int c = 0; c < index.numClasses(); ++c) {
    if (index.members(c).size() >= 2) usable.push_back(c);
  }
  if (ways < 2 || static_cast<size_t>(ways) > usable.size()) {
    throw InvalidArgumentError(std::to_string(ways) + "-way one-shot needs " + std::to_string(ways) +
                               " classes with two images or more; the set has " + std::to_string(usable.size()));
  }
  Rng rng(seed, 0x05e5);
  int correct = 0;
  std::vector<int64_t> supports(static_cast<size_t>(ways));
  for (int e = 0; e < episodes; ++e) {
    std::vector<int> pool = usable;
    for (int w = 0; w < ways; ++w) {
      std::swap(pool[static_cast<size_t>(w)],
                pool[static_cast<size_t>(w) + static_cast<size_t>(rng.below(pool.size() - static_cast<size_t>(w)))]);
    }
    const int target = static_cast<int>(rng.below(static_cast<uint64_t>(ways)));
    int64_t query = 0;
    for (int w = 0; w < ways; ++w) {
      const auto& m = index.members(pool[static_cast<size_t>(w)]);
      const size_t s = static_cast<size_t>(rng.below(m.size()));
      supports[static_cast<size_t>(w)] = m[s];
      if (w == target) {
        size_t q = static_cast<size_t>(rng.below(m.size() - 1));
        if (q >= s) ++q;
        query = m[q];
      }
    }
    const auto support = embeddings.index_select(0, torch::tensor(supports, torch::kLong));
    const auto queries = embeddings[query].unsqueeze(0).expand({ways, embeddings.size(1)});
    const auto p = model.sameProbability(queries, support);
    correct += p.argmax().item<int64_t>() == target;
  }
  return static_cast<double>(correct) / static_cast<double>(std::max(episodes, 1));
}

SetEvaluation evaluateSet(Model& model, const ImageData& set, const EvaluationOptions& options) {
  const ClassIndex index(set.labels.data(), set.labels.size(), set.numClasses);
  const auto embeddings = model.embedImages(set.images);
  SetEvaluation out;
  out.pairs = evaluatePairs(model, embeddings, balancedTriplets(index, options.testSeed, 0));
  out.ways = options.ways;
  if (options.ways > 0)
    out.oneShotAccuracy = oneShotAccuracy(model, embeddings, index, options.ways, options.episodes, options.seed);
  return out;
}

}  // namespace siamese::core
