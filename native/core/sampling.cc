#include "sampling.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "errors.h"
#include "random.h"

namespace siamese::core {

namespace {

// Distinct streams so that, e.g., the order of epoch 3 never equals the triplets of epoch 3.
enum Stream : uint64_t { kReference = 1, kBalanced = 2, kBatches = 3, kOrder = 4 };

uint64_t streamOf(Stream kind, uint64_t epoch) { return mixBits(static_cast<uint64_t>(kind)) ^ epoch; }

std::vector<int> classesWithAtLeast(const ClassIndex& index, size_t n) {
  std::vector<int> out;
  for (int c = 0; c < index.numClasses(); ++c) {
    if (index.members(c).size() >= n) out.push_back(c);
  }
  return out;
}

}  // namespace

ClassIndex::ClassIndex(const int32_t* labels, size_t count, int numClasses)
    : labels_(labels, labels + count), members_(static_cast<size_t>(std::max(numClasses, 0))), rank_(count) {
  if (numClasses < 1) throw InvalidArgumentError("a labelled set needs at least one class");
  for (size_t i = 0; i < count; ++i) {
    const int32_t l = labels[i];
    if (l < 0 || l >= numClasses) {
      throw InvalidArgumentError("label " + std::to_string(l) + " at index " + std::to_string(i) + " is outside 0.." +
                                 std::to_string(numClasses - 1));
    }
    auto& m = members_[static_cast<size_t>(l)];
    rank_[i] = static_cast<int64_t>(m.size());
    m.push_back(static_cast<int64_t>(i));
  }
}

Triplets referenceTriplets(const ClassIndex& index, uint64_t seed) {
  const int classes = index.numClasses();
  if (classes < 2) throw InvalidArgumentError("the 'reference' pair scheme needs at least two classes");
  for (int c = 0; c < classes; ++c) {
    const size_t have = index.members(c).size();
    if (have < kReferenceAnchors + kReferenceMaxOffset) {
      throw InvalidArgumentError("the 'reference' pair scheme needs at least " +
                                 std::to_string(kReferenceAnchors + kReferenceMaxOffset) +
                                 " images in every class (500 anchors, positives up to 100 further); class " +
                                 std::to_string(c) + " has " + std::to_string(have));
    }
  }
  Rng rng(seed, streamOf(kReference, 0));
  Triplets out;
  const size_t n = static_cast<size_t>(classes) * kReferenceAnchors;
  out.anchor.reserve(n);
  out.positive.reserve(n);
  out.negative.reserve(n);
  for (int c = 0; c < classes; ++c) {
    const auto& same = index.members(c);
    for (int j = 0; j < kReferenceAnchors; ++j) {
      // The reference draws the other class first (randint(0, C-2), shifted past c), then r.
      int other = static_cast<int>(rng.between(0, classes - 2));
      if (other >= c) ++other;
      const int64_t r = rng.between(0, kReferenceMaxOffset);
      out.anchor.push_back(same[static_cast<size_t>(j)]);
      out.positive.push_back(same[static_cast<size_t>(j + r)]);
      out.negative.push_back(index.members(other)[static_cast<size_t>(j)]);
    }
  }
  return out;
}

Triplets balancedTriplets(const ClassIndex& index, uint64_t seed, uint64_t epoch) {
  const std::vector<int> nonEmpty = classesWithAtLeast(index, 1);
  if (nonEmpty.size() < 2) throw InvalidArgumentError("pairs need images of at least two classes");
  std::vector<int64_t> anchors;
  for (int c : classesWithAtLeast(index, 2)) {
    const auto& m = index.members(c);
    anchors.insert(anchors.end(), m.begin(), m.end());
  }
  if (anchors.empty()) throw InvalidArgumentError("pairs need a class with at least two images");

  Rng rng(seed, streamOf(kBalanced, epoch));
  rng.shuffle(anchors);
  Triplets out;
  out.anchor = anchors;
  out.positive.reserve(anchors.size());
  out.negative.reserve(anchors.size());
  for (const int64_t a : anchors) {
    const int c = index.label(a);
    const auto& same = index.members(c);
    // Uniform over the class without the anchor itself.
    auto p = static_cast<int64_t>(rng.below(same.size() - 1));
    if (p >= index.rank(a)) ++p;
    out.positive.push_back(same[static_cast<size_t>(p)]);
    // Uniform over the other non-empty classes (skipping c's own place in the list), then
    // uniform within that class.
    const auto own = static_cast<size_t>(std::lower_bound(nonEmpty.begin(), nonEmpty.end(), c) - nonEmpty.begin());
    auto k = static_cast<size_t>(rng.below(nonEmpty.size() - 1));
    if (k >= own) ++k;
    const int other = nonEmpty[k];
    const auto& diff = index.members(other);
    out.negative.push_back(diff[static_cast<size_t>(rng.below(diff.size()))]);
  }
  return out;
}

std::vector<int64_t> classBalancedBatches(const ClassIndex& index, int classesPerBatch, int imagesPerClass,
                                          uint64_t seed, uint64_t epoch) {
  if (classesPerBatch < 2 || imagesPerClass < 2) {
    throw InvalidArgumentError("class-balanced batches need at least 2 classes a batch and 2 images a class");
  }
  const std::vector<int> eligible = classesWithAtLeast(index, 2);
  if (eligible.size() < static_cast<size_t>(classesPerBatch)) {
    throw InvalidArgumentError("class-balanced batches of " + std::to_string(classesPerBatch) +
                               " classes need that many classes with at least two images; the set has " +
                               std::to_string(eligible.size()));
  }
  size_t eligibleImages = 0;
  for (int c : eligible) eligibleImages += index.members(c).size();
  const size_t perBatch = static_cast<size_t>(classesPerBatch) * static_cast<size_t>(imagesPerClass);
  const size_t batches = std::max<size_t>(1, eligibleImages / perBatch);

  Rng rng(seed, streamOf(kBatches, epoch));
  // A shuffled queue per class, refilled with a new shuffle when it runs out.
  std::vector<std::vector<int64_t>> queues(static_cast<size_t>(index.numClasses()));
  std::vector<size_t> cursor(queues.size(), 0);
  for (int c : eligible) {
    queues[static_cast<size_t>(c)] = index.members(c);
    rng.shuffle(queues[static_cast<size_t>(c)]);
  }
  std::vector<int64_t> out;
  out.reserve(batches * perBatch);
  std::vector<int> pool = eligible;
  for (size_t b = 0; b < batches; ++b) {
    // P distinct classes: a partial Fisher-Yates over the eligible classes.
    for (size_t i = 0; i < static_cast<size_t>(classesPerBatch); ++i) {
      std::swap(pool[i], pool[i + static_cast<size_t>(rng.below(pool.size() - i))]);
      const auto c = static_cast<size_t>(pool[i]);
      for (int k = 0; k < imagesPerClass; ++k) {
        if (cursor[c] == queues[c].size()) {
          rng.shuffle(queues[c]);
          cursor[c] = 0;
        }
        out.push_back(queues[c][cursor[c]++]);
      }
    }
  }
  return out;
}

std::vector<int64_t> epochOrder(size_t n, uint64_t seed, uint64_t epoch) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  Rng rng(seed, streamOf(kOrder, epoch));
  rng.shuffle(order);
  return order;
}

}  // namespace siamese::core
