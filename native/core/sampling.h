// Pair and triplet sampling over a labelled image set, seeded and reproducible. Indices refer to
// images in the set's order. Pairs are derived from triplets: (anchor, positive) is a "same" pair
// and (anchor, negative) a "different" one, as in the reference recipe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace siamese::core {

// The images of each class, in set order.
class ClassIndex {
 public:
  // labels[i] in [0, numClasses); throws InvalidArgumentError otherwise.
  ClassIndex(const int32_t* labels, size_t count, int numClasses);

  int numClasses() const { return static_cast<int>(members_.size()); }
  size_t size() const { return labels_.size(); }
  int32_t label(int64_t image) const { return labels_[static_cast<size_t>(image)]; }
  const std::vector<int64_t>& members(int cls) const { return members_[static_cast<size_t>(cls)]; }
  // Where image sits in members(label(image)).
  int64_t rank(int64_t image) const { return rank_[static_cast<size_t>(image)]; }

 private:
  std::vector<int32_t> labels_;
  std::vector<std::vector<int64_t>> members_;
  std::vector<int64_t> rank_;
};

struct Triplets {
  std::vector<int64_t> anchor;
  std::vector<int64_t> positive;  // same class as anchor
  std::vector<int64_t> negative;  // another class
  size_t size() const { return anchor.size(); }
};

// The reference recipe (docs/recipe.md), class by class: for each class c and j in 0..499, anchor =
// image j of c, positive = image j + r of c with r uniform in 0..100, negative = image j of a
// uniformly chosen other class. Needs 600 images in every class. Drawn once: no epoch.
constexpr int kReferenceAnchors = 500;
constexpr int kReferenceMaxOffset = 100;
Triplets referenceTriplets(const ClassIndex& index, uint64_t seed);

// Every image of a class with at least two images is an anchor once, in shuffled order; the
// positive is another image of its class (never itself); the negative a uniform image of a
// uniformly chosen other class. Fresh for every epoch.
Triplets balancedTriplets(const ClassIndex& index, uint64_t seed, uint64_t epoch);

// Class-balanced batches for online mining: each batch holds K images of each of P distinct
// classes (chosen uniformly among classes with at least two images), P*K indices a batch,
// concatenated. A class with fewer than K images repeats some. floor(eligible images / (P*K))
// batches, at least one.
std::vector<int64_t> classBalancedBatches(const ClassIndex& index, int classesPerBatch, int imagesPerClass,
                                          uint64_t seed, uint64_t epoch);

// Visit order of n items for an epoch (a seeded shuffle of 0..n-1).
std::vector<int64_t> epochOrder(size_t n, uint64_t seed, uint64_t epoch);

}  // namespace siamese::core
