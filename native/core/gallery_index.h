// A gallery's embeddings in memory, searched exactly: every query is scored against every row, by
// the model's own pair score (the head's logit for pair-ce, the Euclidean distance otherwise), in
// parallel blocks, keeping the best k; a vectorised scan, each row read once for four queries. The rows are keyed by
// the ids of the database that holds them (lib/gallery.ts); this is its in-memory mirror, rebuilt from it when a
// gallery opens.
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "model.h"

namespace siamese::core {

// The k nearest rows of each query: [Q, K] with K = min(k, rows), best first.
struct Neighbours {
  torch::Tensor ids;       // int64
  torch::Tensor pSame;     // float: the model's P(same) of the query and the row (compare()'s)
  torch::Tensor distance;  // float: their embeddings' Euclidean distance
};

// Thread-safe: searches share the rows; add and remove wait for the searches in progress.
class EmbeddingIndex {
 public:
  // `capacity`: rows to make room for at once (a gallery being read back knows how many).
  explicit EmbeddingIndex(int64_t dims, int64_t capacity = 0);

  int64_t dims() const { return dims_; }
  int64_t size() const;

  // Rows float [n, dims] under ids not yet present (distinct): all are added, or none.
  void add(const std::vector<int64_t>& ids, const torch::Tensor& rows);
  // The rows of those ids that are present; returns how many. The last row fills each hole.
  int64_t remove(const std::vector<int64_t>& ids);
  // queries float [Q, dims], k >= 1. The rows are scanned in blocks of `blockRows`, in parallel,
  // each block keeping its own best k.
  Neighbours search(Model& model, const torch::Tensor& queries, int64_t k, int64_t blockRows = 16384) const;

 private:
  mutable std::shared_mutex mutex_;
  const int64_t dims_;
  torch::Tensor rows_;        // float [capacity, dims]; rows [0, size) are live
  std::vector<int64_t> ids_;  // the id of each live row
  std::unordered_map<int64_t, int64_t> positions_;
};

// A digest of what decides a model's embeddings: its input shape, normalisation, tower and every
// weight and buffer, bit for bit. 16 hex digits. Takes the model's weights lock: not on the main thread.
std::string modelFingerprint(Model& model);

}  // namespace siamese::core
