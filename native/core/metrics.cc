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
  VerificationMetrics out;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) throw InvalidArgumentError("pair scores must be finite");
    ++(same[i] ? out.positives : out.negatives);
  }
  if (out.positives == 0 || out.negatives == 0) {
    throw InvalidArgumentError("verification metrics need same pairs and different pairs");
  }
  const auto positives = static_cast<double>(out.positives);
  const auto negatives = static_cast<double>(out.negatives);
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });

  // The curve, threshold going down: every pair of a score >= threshold is accepted. Pairs of one
  // score enter together, so a tie is a diagonal step (and counts half in the area).
  const double top = scores[order[0]];
  out.roc.push_back({std::nextafter(top, std::numeric_limits<double>::infinity()), 0, 0});
  int64_t accepted[2] = {0, 0};  // different, same
  for (size_t i = 0; i < order.size();) {
    const double score = scores[order[i]];
    for (; i < order.size() && scores[order[i]] == score; ++i) ++accepted[same[order[i]] ? 1 : 0];
    out.roc.push_back(
        {score, static_cast<double>(accepted[0]) / negatives, static_cast<double>(accepted[1]) / positives});
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
                                  int64_t blockSize) {
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
    torch::Tensor distances = torch::cdist(all.narrow(0, start, end - start), all);
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

}  // namespace siamese::core
