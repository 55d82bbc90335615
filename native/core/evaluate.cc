#include "evaluate.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "cpu_allocator.h"
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

namespace {

// Elements of the largest temporary a scorer or an episode batch makes (floats: 32 MB).
constexpr int64_t kWorkingElements = int64_t{1} << 23;

}  // namespace

PairScorer::PairScorer(Model& model) : distance_(model.loss() != Loss::PairCE) {
  if (distance_) return;
  torch::NoGradGuard noGrad;
  {
    std::lock_guard<std::mutex> lock(model.weightsMutex());
    const auto& head = model.net()->headLayer();
    weight_ = (head->weight[1] - head->weight[0]).detach().to(torch::kFloat).to(torch::kCPU).clone();
    bias_ = (head->bias[1] - head->bias[0]).item<double>();
  }
  // w . |a - b| = sum over w_k > 0 of |w_k a_k - w_k b_k| - sum over w_k < 0 of |w_k| |a_k - b_k|:
  // two L1 distances between rescaled embeddings.
  positive_ = (weight_ > 0).nonzero().squeeze(1);
  negative_ = (weight_ < 0).nonzero().squeeze(1);
}

torch::Tensor PairScorer::matrix(const torch::Tensor& a, const torch::Tensor& b) const {
  torch::NoGradGuard noGrad;
  if (distance_) return a.dim() == 2 ? -euclideanDistances(a, b) : -torch::cdist(a, b);
  // The head's logit difference, w . |a - b| + c, as two L1 distances (see the constructor).
  const auto l1 = [&](const torch::Tensor& dims) {
    const auto index = dims.to(a.device());
    const auto scale = weight_.index_select(0, dims).abs().to(a.device());
    return torch::cdist(a.index_select(-1, index) * scale, b.index_select(-1, index) * scale, 1.0);
  };
  auto sizes = a.sizes().vec();
  sizes.back() = b.size(-2);
  auto out = torch::full(sizes, bias_, a.options());
  if (positive_.numel() > 0) out += l1(positive_);
  if (negative_.numel() > 0) out -= l1(negative_);
  return out;
}

torch::Tensor PairScorer::rows(const torch::Tensor& a, const torch::Tensor& b) const {
  torch::NoGradGuard noGrad;
  if (distance_) return -(a - b).norm(2, 1);
  return (a - b).abs().matmul(weight_.to(a.device())).add_(bias_);
}

std::pair<double, double> PairScorer::bounds(const torch::Tensor& embeddings) const {
  torch::NoGradGuard noGrad;
  // Along each dimension, |a - b| is at most that dimension's range R.
  const auto range =
      (std::get<0>(embeddings.max(0)) - std::get<0>(embeddings.min(0))).to(torch::kCPU).to(torch::kDouble);
  double lo = 0;
  double hi = 0;
  if (distance_) {
    lo = -range.pow(2).sum().sqrt().item<double>();
  } else {
    const auto spread = range * weight_.to(torch::kDouble);
    lo = bias_ + spread.clamp_max(0).sum().item<double>();
    hi = bias_ + spread.clamp_min(0).sum().item<double>();
  }
  // A little room, so that no rounding puts a score past either end, and lo < hi for a set of
  // identical embeddings.
  const double pad = 1e-6 * std::max({1.0, std::abs(lo), std::abs(hi)});
  return {lo - pad, hi + pad};
}

double PairScorer::threshold(double score) const { return distance_ ? -score : 1.0 / (1.0 + std::exp(-score)); }

void useModelThresholds(VerificationMetrics& m, const PairScorer& scorer) {
  for (RocPoint& p : m.roc) p.threshold = scorer.threshold(p.threshold);
  m.eerThreshold = scorer.threshold(m.eerThreshold);
}

EpisodeResult episodeAccuracy(const PairScorer& scorer, const torch::Tensor& embeddings, const ClassIndex& index,
                              const EpisodeOptions& options) {
  const int ways = options.ways;
  const int shots = options.shots;
  const int queries = options.queries;
  if (ways < 2 || shots < 1 || queries < 1 || options.episodes < 1) {
    throw InvalidArgumentError("episodes need at least 2 ways, 1 shot, 1 query and 1 episode");
  }
  // Every episode's images are drawn up front: bound them (1e6 episodes of 20-way 5-shot is 1.2e8).
  constexpr double kMaxDrawn = double{1 << 27};
  if (static_cast<double>(options.episodes) * ways * (shots + queries) > kMaxDrawn) {
    throw InvalidArgumentError("episodes x ways x (shots + queries) must be at most " +
                               std::to_string(int64_t{1} << 27) + "; run fewer episodes");
  }
  const bool grouped = !options.classGroups.empty();
  if (grouped && static_cast<int>(options.classGroups.size()) != index.numClasses()) {
    throw InvalidArgumentError("one group a class");
  }
  // The classes an episode can draw: those with shots + queries images, by group.
  const size_t perClass = static_cast<size_t>(shots + queries);
  std::map<int32_t, std::vector<int>> byGroup;
  for (int c = 0; c < index.numClasses(); ++c) {
    if (index.members(c).size() >= perClass)
      byGroup[grouped ? options.classGroups[static_cast<size_t>(c)] : 0].push_back(c);
  }
  std::vector<std::vector<int>> pools;
  for (auto& [group, classes] : byGroup) {
    if (classes.size() >= static_cast<size_t>(ways)) pools.push_back(std::move(classes));
  }
  if (pools.empty()) {
    throw InvalidArgumentError(std::to_string(ways) + "-way " + std::to_string(shots) + "-shot episodes with " +
                               std::to_string(queries) + " quer" + (queries == 1 ? "y" : "ies") + " a class need " +
                               std::to_string(ways) + " classes with " + std::to_string(perClass) + " images or more" +
                               (grouped ? " in one group" : "") + "; the set has none such");
  }

  // Draw every episode first: support [episodes, ways, shots], queries [episodes, ways, queries].
  Rng rng(options.seed, 0x05e5);
  const auto episodes = static_cast<size_t>(options.episodes);
  std::vector<int64_t> support;
  std::vector<int64_t> query;
  support.reserve(episodes * static_cast<size_t>(ways * shots));
  query.reserve(episodes * static_cast<size_t>(ways * queries));
  std::vector<size_t> picks;
  for (size_t e = 0; e < episodes; ++e) {
    std::vector<int> pool = pools[static_cast<size_t>(rng.below(pools.size()))];
    for (size_t w = 0; w < static_cast<size_t>(ways); ++w) {
      std::swap(pool[w], pool[w + static_cast<size_t>(rng.below(pool.size() - w))]);
      const auto& members = index.members(pool[w]);
      picks.clear();
      while (picks.size() < perClass) {  // distinct images of the class
        const auto pick = static_cast<size_t>(rng.below(members.size()));
        if (std::find(picks.begin(), picks.end(), pick) == picks.end()) picks.push_back(pick);
      }
      for (size_t k = 0; k < perClass; ++k)
        (k < static_cast<size_t>(shots) ? support : query).push_back(members[picks[k]]);
    }
  }

  torch::NoGradGuard noGrad;
  const auto device = embeddings.device();
  const int64_t dim = embeddings.size(1);
  const int64_t supportCount = ways * shots;
  const int64_t queryCount = ways * queries;
  const auto supportIndex = torch::tensor(support, torch::kLong).view({-1, supportCount}).to(device);
  const auto queryIndex = torch::tensor(query, torch::kLong).view({-1, queryCount}).to(device);
  // The class of each query of an episode: 0 0 .. 1 1 .. (queries of a class are together).
  const auto truth =
      torch::arange(ways, torch::TensorOptions().dtype(torch::kLong).device(device)).repeat_interleave(queries);
  const int64_t perEpisode = (queryCount + supportCount) * dim + queryCount * supportCount;
  const int64_t chunk = std::max<int64_t>(1, kWorkingElements / std::max<int64_t>(1, perEpisode));
  std::vector<torch::Tensor> correct;
  for (int64_t start = 0; start < options.episodes; start += chunk) {
    const int64_t count = std::min<int64_t>(chunk, options.episodes - start);
    const auto s =
        embeddings.index_select(0, supportIndex.narrow(0, start, count).reshape(-1)).view({count, ways, shots, dim});
    const auto q =
        embeddings.index_select(0, queryIndex.narrow(0, start, count).reshape(-1)).view({count, queryCount, dim});
    torch::Tensor scores;  // [count, queryCount, ways], higher: that class
    if (scorer.distance()) {
      scores = -torch::cdist(q, s.mean(2));
    } else {
      const auto p = torch::sigmoid(scorer.matrix(q, s.reshape({count, supportCount, dim})));
      scores = p.view({count, queryCount, ways, shots}).mean(3);
    }
    correct.push_back((scores.argmax(2) == truth).to(torch::kDouble).mean(1));
  }
  const auto perEpisodeAccuracy = torch::cat(correct).to(torch::kCPU);
  EpisodeResult out;
  out.accuracy = perEpisodeAccuracy.mean().item<double>();
  out.ci95 = options.episodes > 1
                 ? 1.96 * perEpisodeAccuracy.std().item<double>() / std::sqrt(static_cast<double>(options.episodes))
                 : 0;
  return out;
}

VerificationMetrics allPairsVerification(const PairScorer& scorer, const torch::Tensor& embeddings,
                                         const std::vector<int32_t>& labels) {
  const int64_t n = embeddings.size(0);
  if (static_cast<int64_t>(labels.size()) != n) throw InvalidArgumentError("one label an embedding");
  torch::NoGradGuard noGrad;
  const auto [lo, hi] = scorer.bounds(embeddings);
  ScoreHistogram histogram(lo, hi);
  const auto device = embeddings.device();
  const auto label = torch::tensor(labels, torch::kInt).to(device);
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(device);
  // Tiles of rows i against columns j, of at most kTile x kTile pairs (their scores, bins, masks
  // and copies stay within some 50 MB), aligned so that they come in four shapes at most: the
  // allocator reuses their buffers instead of mapping new ones. Only tiles with pairs i < j.
  constexpr int64_t kTile = 1024;
  for (int64_t r0 = 0; r0 < n; r0 += kTile) {
    const int64_t rows = std::min(kTile, n - r0);
    const auto a = embeddings.narrow(0, r0, rows);
    const auto i = torch::arange(r0, r0 + rows, longs).unsqueeze(1);
    const auto labelsI = label.narrow(0, r0, rows).unsqueeze(1);
    for (int64_t c0 = r0; c0 < n; c0 += kTile) {
      const int64_t columns = std::min(kTile, n - c0);
      const auto scores = scorer.matrix(a, embeddings.narrow(0, c0, columns));
      const auto same = labelsI == label.narrow(0, c0, columns).unsqueeze(0);
      if (c0 >= r0 + rows) {
        // Wholly above the diagonal: every pair counts, with no copy of the tile to select them.
        histogram.add(scores.flatten(), same.flatten());
        continue;
      }
      const auto upper = torch::arange(c0, c0 + columns, longs).unsqueeze(0) > i;
      histogram.add(scores.masked_select(upper), same.masked_select(upper));
    }
  }
  return histogram.metrics();
}

namespace {

// Whether `labels` make at least one same pair and one different pair.
bool bothKindsOfPair(const ClassIndex& index) {
  int withImages = 0;
  bool twice = false;
  for (int c = 0; c < index.numClasses(); ++c) {
    withImages += !index.members(c).empty();
    twice = twice || index.members(c).size() >= 2;
  }
  return twice && withImages >= 2;
}

}  // namespace

namespace {

// Gives the caching allocator's idle blocks back (cpu_allocator.h) when an evaluation that ran a
// phase beyond the fixed pairs ends, however it ends: all pairs, retrieval and episodes map
// buffers of their own sizes, hundreds of MB on a large set, which nothing else reuses.
class ReleaseIdleAtEnd {
 public:
  ReleaseIdleAtEnd() = default;
  ReleaseIdleAtEnd(const ReleaseIdleAtEnd&) = delete;
  ReleaseIdleAtEnd& operator=(const ReleaseIdleAtEnd&) = delete;
  ~ReleaseIdleAtEnd() {
    if (armed_) releaseIdleCpuMemory();
  }
  // Called before each such phase: gives back the blocks of the phases before it, and arms the end.
  void beforeOtherPhase() {
    releaseIdleCpuMemory();
    armed_ = true;
  }

 private:
  bool armed_ = false;
};

}  // namespace

SetEvaluation evaluateSet(Model& model, const ImageData& set, const EvaluationOptions& options) {
  // The embedding and the fixed pairs keep their buffers cached for the next call, as the
  // training steps do: an evaluation of the fixed pairs alone (the trainer's each epoch, or
  // allPairs, retrieval and episodes off) repeats at full speed. Giving them back after every call
  // cost conv4 at 64x64x3 a quarter of its evaluation time in page faults. The later phases (all
  // pairs, retrieval, episodes) allocate buffers of their own sizes: the idle blocks of the phases
  // before are given back before each runs, so that the process holds one phase's cache at a time,
  // and none once such an evaluation is over.
  ReleaseIdleAtEnd releaseAtEnd;
  const ClassIndex index(set.labels.data(), set.labels.size(), set.numClasses);
  const auto embeddings = model.embedImages(set.images);
  const Triplets triplets = balancedTriplets(index, options.testSeed, 0);
  SetEvaluation out;
  out.pairs = evaluatePairs(model, embeddings, triplets);

  const PairScorer scorer(model);
  const auto onDevice = embeddings.to(model.device());
  {
    const auto pick = [&](const std::vector<int64_t>& v) {
      return onDevice.index_select(0, torch::tensor(v, torch::kLong).to(onDevice.device()));
    };
    const auto anchors = pick(triplets.anchor);
    const auto positive = scorer.rows(anchors, pick(triplets.positive)).to(torch::kCPU).to(torch::kDouble).contiguous();
    const auto negative = scorer.rows(anchors, pick(triplets.negative)).to(torch::kCPU).to(torch::kDouble).contiguous();
    std::vector<double> scores(positive.data_ptr<double>(), positive.data_ptr<double>() + positive.numel());
    scores.insert(scores.end(), negative.data_ptr<double>(), negative.data_ptr<double>() + negative.numel());
    std::vector<uint8_t> same(scores.size(), 0);
    std::fill(same.begin(), same.begin() + positive.numel(), 1);
    out.fixedPairs = verificationMetrics(scores, same);
    useModelThresholds(out.fixedPairs, scorer);
  }
  if (options.allPairs && bothKindsOfPair(index)) {
    releaseAtEnd.beforeOtherPhase();
    out.allPairs = allPairsVerification(scorer, onDevice, set.labels);
    useModelThresholds(*out.allPairs, scorer);
  }
  if (options.retrieval) {
    releaseAtEnd.beforeOtherPhase();
    // Nearest neighbours by the embeddings' Euclidean distance, whatever the loss, as
    // metric-learning work measures them.
    out.retrieval = retrievalMetrics(onDevice, set.labels);
  }
  if (options.episodes.ways > 0) {
    releaseAtEnd.beforeOtherPhase();
    out.episodes = episodeAccuracy(scorer, onDevice, index, options.episodes);
  }
  return out;
}

}  // namespace siamese::core
