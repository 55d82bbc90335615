#include "metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "errors.h"

namespace siamese::core {

VerificationMetrics verificationMetrics(const std::vector<double>& scores, const std::vector<uint8_t>& same) {
  if (scores.size() != same.size()) throw InvalidArgumentError("one same/different label a score");
  for (const double score : scores) {
    if (!std::isfinite(score)) throw InvalidArgumentError("pair scores must be finite");
  }
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  // Pairs of one score enter the curve together, so a tie is a diagonal step (and counts half in
  // the area).
  std::vector<ScoreGroup> groups;
  for (const size_t i : order) {
    if (groups.empty() || groups.back().score != scores[i]) groups.push_back({scores[i], 0, 0});
    ++(same[i] ? groups.back().positives : groups.back().negatives);
  }
  return verificationFromGroups(groups);
}

VerificationMetrics verificationFromGroups(const std::vector<ScoreGroup>& groups) {
  VerificationMetrics out;
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g].negatives < 0 || groups[g].positives < 0 || (g > 0 && !(groups[g].score < groups[g - 1].score))) {
      throw InvalidArgumentError("score groups must be counts in decreasing order of score");
    }
    out.positives += groups[g].positives;
    out.negatives += groups[g].negatives;
  }
  if (out.positives == 0 || out.negatives == 0) {
    throw InvalidArgumentError("verification metrics need same pairs and different pairs");
  }
  const auto positives = static_cast<double>(out.positives);
  const auto negatives = static_cast<double>(out.negatives);

  // The curve, threshold going down: every pair of a score >= threshold is accepted.
  out.roc.push_back({std::nextafter(groups.front().score, std::numeric_limits<double>::infinity()), 0, 0});
  int64_t accepted[2] = {0, 0};  // different, same
  for (const ScoreGroup& g : groups) {
    accepted[0] += g.negatives;
    accepted[1] += g.positives;
    if (g.negatives == 0 && g.positives == 0) continue;
    out.roc.push_back(
        {g.score, static_cast<double>(accepted[0]) / negatives, static_cast<double>(accepted[1]) / positives});
  }

  out.auc = 0;
  for (size_t k = 1; k < out.roc.size(); ++k) {
    const RocPoint& a = out.roc[k - 1];
    const RocPoint& b = out.roc[k];
    out.auc += (b.falseAcceptRate - a.falseAcceptRate) * (a.trueAcceptRate + b.trueAcceptRate) / 2;
  }

  // FAR - FRR = FAR + TAR - 1 goes from -1 (nothing accepted) to +1 (everything): the equal error
  // rate is where it crosses 0, linear between the two points around it, as both rates are.
  for (size_t k = 1; k < out.roc.size(); ++k) {
    const RocPoint& a = out.roc[k - 1];
    const RocPoint& b = out.roc[k];
    const double da = a.falseAcceptRate + a.trueAcceptRate - 1;
    const double db = b.falseAcceptRate + b.trueAcceptRate - 1;
    if (db < 0) continue;
    const double t = db == da ? 1.0 : -da / (db - da);
    out.eer = a.falseAcceptRate + t * (b.falseAcceptRate - a.falseAcceptRate);
    out.eerThreshold = a.threshold + t * (b.threshold - a.threshold);
    break;
  }

  for (size_t f = 0; f < kTarFars.size(); ++f) {
    // A rate below 1 / negatives cannot be told from zero.
    if (negatives * kTarFars[f] < 1) continue;
    double best = 0;
    for (const RocPoint& p : out.roc) {
      if (p.falseAcceptRate <= kTarFars[f]) best = std::max(best, p.trueAcceptRate);
    }
    out.tarAtFar[f] = best;
  }
  return out;
}

RetrievalMetrics retrievalMetrics(const torch::Tensor& embeddings, const std::vector<int32_t>& labels,
                                  int64_t blockSize, const DistanceFunction& distance) {
  TORCH_CHECK(embeddings.dim() == 2, "embeddings must be [N, E]");
  const int64_t n = embeddings.size(0);
  if (static_cast<int64_t>(labels.size()) != n) throw InvalidArgumentError("one label an embedding");
  if (blockSize < 1) throw InvalidArgumentError("a block of at least one query");
  std::map<int32_t, int64_t> members;
  for (const int32_t label : labels) ++members[label];

  torch::NoGradGuard noGrad;
  const torch::Tensor all = embeddings.to(torch::kFloat);
  RetrievalMetrics out;
  double precisionAt1 = 0;
  double rPrecision = 0;
  double mapAtR = 0;
  for (int64_t start = 0; start < n; start += blockSize) {
    const int64_t end = std::min(n, start + blockSize);
    int64_t largestR = 0;
    for (int64_t q = start; q < end; ++q) largestR = std::max(largestR, members[labels[static_cast<size_t>(q)]] - 1);
    if (largestR == 0) continue;
    // Distances of this block's queries to every embedding, a query's own made infinite.
    const torch::Tensor queries = all.narrow(0, start, end - start);
    torch::Tensor distances = distance ? distance(queries, all).to(torch::kFloat) : euclideanDistances(queries, all);
    const auto rows = torch::arange(end - start, torch::TensorOptions().dtype(torch::kLong).device(all.device()));
    distances.index_put_({rows, rows + start}, std::numeric_limits<float>::infinity());
    const torch::Tensor nearest =
        std::get<1>(distances.topk(largestR, 1, /*largest=*/false, /*sorted=*/true)).to(torch::kCPU).contiguous();
    const int64_t* index = nearest.data_ptr<int64_t>();
    for (int64_t q = start; q < end; ++q) {
      const int32_t label = labels[static_cast<size_t>(q)];
      const int64_t r = members[label] - 1;
      if (r == 0) continue;
      const int64_t* row = index + (q - start) * largestR;
      int64_t hits = 0;
      double precisionSum = 0;
      for (int64_t k = 0; k < r; ++k) {
        if (labels[static_cast<size_t>(row[k])] != label) continue;
        ++hits;
        precisionSum += static_cast<double>(hits) / static_cast<double>(k + 1);
      }
      precisionAt1 += labels[static_cast<size_t>(row[0])] == label ? 1 : 0;
      rPrecision += static_cast<double>(hits) / static_cast<double>(r);
      mapAtR += precisionSum / static_cast<double>(r);
      ++out.queries;
    }
  }
  if (out.queries > 0) {
    const auto q = static_cast<double>(out.queries);
    out.precisionAt1 = precisionAt1 / q;
    out.rPrecision = rPrecision / q;
    out.mapAtR = mapAtR / q;
  }
  return out;
}

torch::Tensor euclideanDistances(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1), "rows of one length");
  torch::NoGradGuard noGrad;
  if (!(a.is_cpu() && a.scalar_type() == torch::kFloat && at::hasMKLDNN() && at::globalContext().userEnabledMkldnn()) ||
      a.size(0) < 2 || b.size(0) < 2) {
    return torch::cdist(a, b);
  }
  // |a - b|^2 = |a|^2 + |b|^2 - 2 a . b, the products as a convolution of A one-pixel images of E
  // channels with B one-pixel kernels (what cdist does with a matrix product).
  const auto products = torch::conv2d(a.contiguous().view({a.size(0), a.size(1), 1, 1}),
                                      b.contiguous().view({b.size(0), b.size(1), 1, 1}))
                            .view({a.size(0), b.size(0)});
  const auto squared = a.pow(2).sum(1, true) + b.pow(2).sum(1).unsqueeze(0) - 2 * products;
  return squared.clamp_min_(0).sqrt_();
}

ScoreHistogram::ScoreHistogram(double lo, double hi, int64_t bins) : lo_(lo), width_(0), bins_(bins) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi) || bins < 1) {
    throw InvalidArgumentError("a score histogram needs finite lo < hi and at least one bin");
  }
  width_ = (hi - lo) / static_cast<double>(bins);
  counts_ = torch::zeros({2 * bins}, torch::kLong);
}

void ScoreHistogram::add(const torch::Tensor& scores, const torch::Tensor& same) {
  TORCH_CHECK(scores.dim() == 1 && same.sizes() == scores.sizes(), "one same/different flag a score");
  if (scores.numel() == 0) return;
  torch::NoGradGuard noGrad;
  if (!torch::isfinite(scores).all().item<bool>()) throw InvalidArgumentError("pair scores must be finite");
  // In double: a float's rounding must not move a score below the edge of its own bin. In place,
  // in one copy of the scores (the same arithmetic as (s - lo) / width): a tile of a million pairs
  // needs two 8 MB buffers, not five.
  torch::Tensor bin = scores.to(torch::kDouble, /*non_blocking=*/false, /*copy=*/true);
  bin.sub_(lo_).div_(width_).floor_().clamp_(0, static_cast<double>(bins_ - 1));
  torch::Tensor slot = bin.to(torch::kLong);
  bin = torch::Tensor();
  slot.add_(same.to(torch::kLong).mul_(bins_));
  counts_ += torch::bincount(slot, {}, 2 * bins_).to(torch::kCPU);
}

VerificationMetrics ScoreHistogram::metrics() const {
  const int64_t* counts = counts_.data_ptr<int64_t>();
  std::vector<ScoreGroup> groups;
  for (int64_t b = bins_ - 1; b >= 0; --b) {
    if (counts[b] == 0 && counts[bins_ + b] == 0) continue;
    groups.push_back({lo_ + static_cast<double>(b) * width_, counts[b], counts[bins_ + b]});
  }
  if (groups.empty()) throw InvalidArgumentError("verification metrics need same pairs and different pairs");
  return verificationFromGroups(groups);
}

std::vector<RocPoint> thinRoc(const std::vector<RocPoint>& roc, size_t points) {
  if (roc.size() <= points || points < 2) return roc;
  const double step = 1.0 / static_cast<double>(points);
  // The logarithm of the false-accept rate, from its smallest non-zero value to 0.
  double smallest = 1;
  for (const RocPoint& p : roc) {
    if (p.falseAcceptRate > 0) smallest = std::min(smallest, p.falseAcceptRate);
  }
  const double logRange = std::max(-std::log10(smallest), 1e-12);
  const auto logFar = [&](double far) { return far > 0 ? std::log10(far) / logRange : -1.0 - step; };
  std::vector<RocPoint> out{roc.front()};
  for (size_t k = 1; k + 1 < roc.size(); ++k) {
    const RocPoint& last = out.back();
    const RocPoint& p = roc[k];
    if (std::abs(p.falseAcceptRate - last.falseAcceptRate) >= step ||
        std::abs(p.trueAcceptRate - last.trueAcceptRate) >= step ||
        std::abs(logFar(p.falseAcceptRate) - logFar(last.falseAcceptRate)) >= step) {
      out.push_back(p);
    }
  }
  out.push_back(roc.back());
  return out;
}

}  // namespace siamese::core
