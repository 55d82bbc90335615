#include "inference.h"

#include "errors.h"

namespace siamese::core {

torch::Tensor predictPairs(Model& model, const torch::Tensor& left, const torch::Tensor& right) {
  if (left.size(0) != right.size(0)) throw InvalidArgumentError("predictPairs needs as many left images as right ones");
  // One embedding pass over both sides together.
  const auto e = model.embedImages(torch::cat({left, right}));
  return model.sameProbability(e.narrow(0, 0, left.size(0)), e.narrow(0, left.size(0), right.size(0)));
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
  // All (query, support) pairs at once: [q * s] probabilities.
  const auto p = model.sameProbability(eq.repeat_interleave(s, 0), es.repeat({q, 1})).view({q, s});
  auto scores = torch::full({q, numClasses}, -1.0f);
  const auto index = torch::tensor(std::vector<int64_t>(labels.begin(), labels.end()), torch::kLong);
  for (int64_t c = 0; c < numClasses; ++c) {
    const auto members = (index == c).nonzero().squeeze(1);
    if (members.numel() > 0) scores.select(1, c).copy_(p.index_select(1, members).amax(1));
  }
  return scores;
}

}  // namespace siamese::core
