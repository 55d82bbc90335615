#include "inference.h"

#include "errors.h"
#include "evaluate.h"

namespace siamese::core {

torch::Tensor predictPairs(Model& model, const torch::Tensor& left, const torch::Tensor& right) {
  if (left.size(0) != right.size(0)) throw InvalidArgumentError("predictPairs needs as many left images as right ones");
  // One embedding pass over both sides together.
  const auto e = model.embedImages(torch::cat({left, right}));
  return model.sameProbability(e.narrow(0, 0, left.size(0)), e.narrow(0, left.size(0), right.size(0)));
}

torch::Tensor comparePairs(Model& model, const torch::Tensor& left, const torch::Tensor& right) {
  if (left.size(0) != right.size(0)) throw InvalidArgumentError("comparePairs needs as many left images as right ones");
  const auto e = model.embedImages(torch::cat({left, right}));
  const auto l = e.narrow(0, 0, left.size(0));
  const auto r = e.narrow(0, left.size(0), right.size(0));
  return torch::stack({model.sameProbability(l, r), (l - r).norm(2, 1).to(torch::kCPU, torch::kFloat)}, 1);
}

torch::Tensor classScores(Model& model, const torch::Tensor& queries, const torch::Tensor& support,
                          const std::vector<int32_t>& labels, int64_t numClasses) {
  const int64_t q = queries.size(0);
  const int64_t s = support.size(0);
  if (static_cast<int64_t>(labels.size()) != s)
    throw InvalidArgumentError("classScores needs one label per support image");
  for (const int32_t label : labels) {
    if (label < 0 || label >= numClasses)
      throw InvalidArgumentError("a support label is outside 0.." + std::to_string(numClasses - 1));
  }
  const auto e = model.embedImages(torch::cat({queries, support}));
  const auto eq = e.narrow(0, 0, q);
  const auto es = e.narrow(0, q, s);
  const auto index = torch::tensor(std::vector<int64_t>(labels.begin(), labels.end()), torch::kLong);
  auto scores = torch::full({q, numClasses}, -1.0f);
  const PairScorer scorer(model);
  torch::NoGradGuard noGrad;
  if (!scorer.distance()) {
    // Every (query, support) pair at once: [q, s] probabilities, averaged over each class's.
    const auto p = torch::sigmoid(scorer.matrix(eq, es));
    for (int64_t c = 0; c < numClasses; ++c) {
      const auto members = (index == c).nonzero().squeeze(1);
      if (members.numel() > 0) scores.select(1, c).copy_(p.index_select(1, members).mean(1));
    }
    return scores;
  }
  std::vector<int64_t> present;
  std::vector<torch::Tensor> prototypes;
  for (int64_t c = 0; c < numClasses; ++c) {
    const auto members = (index == c).nonzero().squeeze(1);
    if (members.numel() == 0) continue;
    present.push_back(c);
    prototypes.push_back(es.index_select(0, members).mean(0));
  }
  const auto k = static_cast<int64_t>(present.size());
  const auto p =
      model.sameProbability(eq.repeat_interleave(k, 0), torch::stack(prototypes).repeat({q, 1})).view({q, k});
  scores.index_copy_(1, torch::tensor(present, torch::kLong), p);
  return scores;
}

}  // namespace siamese::core
