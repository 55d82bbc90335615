#include "gallery_index.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "contract.h"
#include "errors.h"
#include "evaluate.h"

#include <ATen/Parallel.h>

namespace siamese::core {

EmbeddingIndex::EmbeddingIndex(int64_t dims, int64_t capacity) : dims_(dims) {
  if (dims < 1 || capacity < 0) throw InvalidArgumentError("an embedding index needs at least one dimension");
  rows_ = torch::empty({capacity, dims}, torch::kFloat);
}

int64_t EmbeddingIndex::size() const {
  std::shared_lock lock(mutex_);
  return static_cast<int64_t>(ids_.size());
}

void EmbeddingIndex::add(const std::vector<int64_t>& ids, const torch::Tensor& rows) {
  const auto n = static_cast<int64_t>(ids.size());
  if (rows.dim() != 2 || rows.size(0) != n || rows.size(1) != dims_) {
    throw InvalidArgumentError("an index takes rows of " + std::to_string(dims_) + " values, one per id");
  }
  const torch::Tensor values = rows.to(torch::kCPU, torch::kFloat).contiguous();
  if (!torch::isfinite(values).all().item<bool>()) throw InvalidArgumentError("an embedding holds NaN or infinity");
  std::unique_lock lock(mutex_);
  std::unordered_set<int64_t> fresh;
  for (const int64_t id : ids) {
    if (positions_.count(id) > 0 || !fresh.insert(id).second) {
      throw InvalidArgumentError("id " + std::to_string(id) + " is in the index already");
    }
  }
  const auto size = static_cast<int64_t>(ids_.size());
  if (size + n > rows_.size(0)) {
    // Capacity grows by a quarter, so that adding N rows a request at a time copies O(N) in all,
    // and a large gallery never holds much more room than it uses.
    const int64_t capacity = std::max<int64_t>({size + n, rows_.size(0) + rows_.size(0) / 4, 1024});
    torch::Tensor grown = torch::empty({capacity, dims_}, torch::kFloat);
    grown.narrow(0, 0, size).copy_(rows_.narrow(0, 0, size));
    rows_ = grown;
  }
  rows_.narrow(0, size, n).copy_(values);
  for (int64_t i = 0; i < n; ++i) {
    positions_[ids[static_cast<size_t>(i)]] = size + i;
    ids_.push_back(ids[static_cast<size_t>(i)]);
  }
}

int64_t EmbeddingIndex::remove(const std::vector<int64_t>& ids) {
  std::unique_lock lock(mutex_);
  int64_t removed = 0;
  for (const int64_t id : ids) {
    const auto found = positions_.find(id);
    if (found == positions_.end()) continue;
    const int64_t hole = found->second;
    const auto last = static_cast<int64_t>(ids_.size()) - 1;
    if (hole != last) {
      rows_[hole].copy_(rows_[last]);
      ids_[static_cast<size_t>(hole)] = ids_[static_cast<size_t>(last)];
      positions_[ids_[static_cast<size_t>(hole)]] = hole;
    }
    ids_.pop_back();
    positions_.erase(id);
    ++removed;
  }
  return removed;
}

namespace {

// What a row is scored by: the squared Euclidean distance (distance losses; the nearer, the better)
// or the pair-ce head's weighted L1 distance, w . |q - r| (plus its bias: the logit of "same").
enum class Measure { SquaredL2, WeightedL1 };

constexpr int64_t kLanes = 16;              // values a step: one AVX-512 register, two AVX2 ones
constexpr int64_t kQueriesAtOnce = 4;       // a row is read once for this many queries
constexpr int64_t kTileBytes = 128 * 1024;  // rows that stay in a core's L2 cache while every query meets them

// sums[j * n + r] = the measure between queries[q0 + j] and rows[r], j < count <= kQueriesAtOnce.
// Written so that the compiler vectorises the lanes; built for AVX-512, AVX2 and the
// baseline, chosen at load time by the CPU (GCC's target_clones).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SIAMESE_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
// The kernels below are inlined into each clone, to be compiled for its instruction set.
#define SIAMESE_INLINE inline __attribute__((always_inline))
#else
#define SIAMESE_VECTOR_CLONES
#define SIAMESE_INLINE inline
#endif

template <Measure M>
SIAMESE_INLINE float measure(float d, float w) {
  if constexpr (M == Measure::SquaredL2) {
    return d * d;
  } else {
    return w * std::abs(d);
  }
}

#if defined(__GNUC__)
// kLanes floats as one value (GCC's and Clang's vector extension): each clone keeps them in its
// widest registers, the accumulators among them.
using Lanes = float __attribute__((vector_size(kLanes * sizeof(float))));
using LaneBits = int32_t __attribute__((vector_size(kLanes * sizeof(float))));

// Reads kLanes floats into `v` (unaligned; a reference, not a return value: a vector returned by
// value would have another ABI in each clone).
SIAMESE_INLINE void loadLanes(Lanes& v, const float* p) { std::memcpy(&v, p, sizeof v); }

// C queries at once (a constant, so that the accumulators stay in registers).
template <Measure M, int64_t C>
SIAMESE_INLINE void measureRowsFor(const float* queries, const float* weights, const float* rows, int64_t n,
                                   int64_t dims, float* sums) {
  const int64_t whole = dims - dims % kLanes;
  for (int64_t r = 0; r < n; ++r) {
    const float* row = rows + r * dims;
    Lanes acc[C] = {};
    for (int64_t k = 0; k < whole; k += kLanes) {
      Lanes x;
      loadLanes(x, row + k);
      for (int64_t j = 0; j < C; ++j) {
        Lanes d;
        loadLanes(d, queries + j * dims + k);
        d -= x;
        if constexpr (M == Measure::SquaredL2) {
          acc[j] += d * d;
        } else {
          const Lanes magnitude = reinterpret_cast<Lanes>(reinterpret_cast<LaneBits>(d) & 0x7fffffff);
          Lanes w;
          loadLanes(w, weights + k);
          acc[j] += w * magnitude;
        }
      }
    }
    for (int64_t j = 0; j < C; ++j) {
      float total = 0;
      for (int64_t l = 0; l < kLanes; ++l) total += acc[j][l];
      for (int64_t k = whole; k < dims; ++k)
        total += measure<M>(queries[j * dims + k] - row[k], M == Measure::SquaredL2 ? 0.0f : weights[k]);
      sums[j * n + r] = total;
    }
  }
}
#else
template <Measure M, int64_t C>
inline void measureRowsFor(const float* queries, const float* weights, const float* rows, int64_t n, int64_t dims,
                           float* sums) {
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < C; ++j) {
      float total = 0;
      for (int64_t k = 0; k < dims; ++k) {
        total += measure<M>(queries[j * dims + k] - rows[r * dims + k], M == Measure::SquaredL2 ? 0.0f : weights[k]);
      }
      sums[j * n + r] = total;
    }
  }
}
#endif

template <Measure M>
SIAMESE_INLINE void measureRows(const float* queries, int64_t count, const float* weights, const float* rows, int64_t n,
                                int64_t dims, float* sums) {
  switch (count) {
    case 4: measureRowsFor<M, 4>(queries, weights, rows, n, dims, sums); break;
    case 3: measureRowsFor<M, 3>(queries, weights, rows, n, dims, sums); break;
    case 2: measureRowsFor<M, 2>(queries, weights, rows, n, dims, sums); break;
    default: measureRowsFor<M, 1>(queries, weights, rows, n, dims, sums); break;
  }
}

SIAMESE_VECTOR_CLONES void squaredL2Rows(const float* queries, int64_t count, const float* rows, int64_t n,
                                         int64_t dims, float* sums) {
  measureRows<Measure::SquaredL2>(queries, count, nullptr, rows, n, dims, sums);
}

SIAMESE_VECTOR_CLONES void weightedL1Rows(const float* queries, int64_t count, const float* weights, const float* rows,
                                          int64_t n, int64_t dims, float* sums) {
  measureRows<Measure::WeightedL1>(queries, count, weights, rows, n, dims, sums);
}

// The best k (score, row) pairs seen, as a min-heap: the worst kept is on top.
class Best {
 public:
  explicit Best(int64_t k) : k_(static_cast<size_t>(k)) { heap_.reserve(k_); }
  void offer(float score, int64_t row) {
    if (heap_.size() < k_) {
      heap_.emplace_back(score, row);
      std::push_heap(heap_.begin(), heap_.end(), worse);
    } else if (score > heap_.front().first) {
      std::pop_heap(heap_.begin(), heap_.end(), worse);
      heap_.back() = {score, row};
      std::push_heap(heap_.begin(), heap_.end(), worse);
    }
  }
  const std::vector<std::pair<float, int64_t>>& items() const { return heap_; }

 private:
  // Lower score first; on a tie, the later row counts as worse, so that the earlier one stays.
  static bool worse(const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  }
  size_t k_;
  std::vector<std::pair<float, int64_t>> heap_;
};

}  // namespace

Neighbours EmbeddingIndex::search(Model& model, const torch::Tensor& queries, int64_t k, int64_t blockRows) const {
  if (queries.dim() != 2 || queries.size(1) != dims_) {
    throw InvalidArgumentError("queries of " + std::to_string(dims_) + " values each");
  }
  if (k < 1 || blockRows < 1) throw InvalidArgumentError("search needs k and blockRows of at least 1");
  torch::NoGradGuard noGrad;
  const torch::Tensor q = queries.to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t count = q.size(0);
  const PairScorer scorer(model);
  const torch::Tensor weights = scorer.distance() ? torch::Tensor() : scorer.weights().contiguous();
  const double bias = scorer.distance() ? 0.0 : scorer.bias();
  std::shared_lock lock(mutex_);
  const auto size = static_cast<int64_t>(ids_.size());
  const int64_t kept = std::min(k, size);
  Neighbours out{torch::empty({count, kept}, torch::kLong), torch::empty({count, kept}, torch::kFloat),
                 torch::empty({count, kept}, torch::kFloat)};
  if (kept == 0 || count == 0) return out;

  // Every row measured against every query, a block of rows per task; each block keeps its own
  // best k a query, merged below. A row is read once for up to kQueriesAtOnce queries.
  const int64_t blocks = (size + blockRows - 1) / blockRows;
  std::vector<std::vector<Best>> best(static_cast<size_t>(blocks));
  const float* base = rows_.data_ptr<float>();
  const float* query = q.data_ptr<float>();
  const float* w = weights.defined() ? weights.data_ptr<float>() : nullptr;
  // Rows go through the cache a tile at a time: every query meets a tile before the next is read.
  const int64_t tileRows = std::max<int64_t>(1, kTileBytes / (dims_ * static_cast<int64_t>(sizeof(float))));
  at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    std::vector<float> sums(static_cast<size_t>(kQueriesAtOnce * tileRows));
    for (int64_t b = first; b < last; ++b) {
      auto& mine = best[static_cast<size_t>(b)];
      mine.assign(static_cast<size_t>(count), Best(kept));
      const int64_t end = std::min(size, (b + 1) * blockRows);
      for (int64_t start = b * blockRows; start < end; start += tileRows) {
        const int64_t n = std::min(tileRows, end - start);
        for (int64_t q0 = 0; q0 < count; q0 += kQueriesAtOnce) {
          const int64_t c = std::min(kQueriesAtOnce, count - q0);
          if (w == nullptr) {
            squaredL2Rows(query + q0 * dims_, c, base + start * dims_, n, dims_, sums.data());
          } else {
            weightedL1Rows(query + q0 * dims_, c, w, base + start * dims_, n, dims_, sums.data());
          }
          for (int64_t j = 0; j < c; ++j) {
            Best& keep = mine[static_cast<size_t>(q0 + j)];
            const float* s = sums.data() + j * n;
            for (int64_t r = 0; r < n; ++r)
              keep.offer(w == nullptr ? -s[r] : static_cast<float>(bias) + s[r], start + r);
          }
        }
      }
    }
  });
  torch::Tensor positions = torch::empty({count * kept}, torch::kLong);
  auto* position = positions.data_ptr<int64_t>();
  for (int64_t j = 0; j < count; ++j) {
    std::vector<std::pair<float, int64_t>> all;
    for (const auto& block : best) {
      const auto& items = block[static_cast<size_t>(j)].items();
      all.insert(all.end(), items.begin(), items.end());
    }
    std::partial_sort(all.begin(), all.begin() + kept, all.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (int64_t i = 0; i < kept; ++i) position[j * kept + i] = all[static_cast<size_t>(i)].second;
  }
  const torch::Tensor found = rows_.index_select(0, positions);  // [Q * K, E]
  const torch::Tensor asked = q.repeat_interleave(kept, 0);      // [Q * K, E]
  out.distance = (asked - found).norm(2, 1).view({count, kept}).contiguous();
  out.pSame = model.sameProbability(asked.to(model.device()), found.to(model.device()))
                  .to(torch::kCPU, torch::kFloat)
                  .view({count, kept})
                  .contiguous();
  auto* idOf = out.ids.data_ptr<int64_t>();
  for (int64_t i = 0; i < count * kept; ++i) idOf[i] = ids_[static_cast<size_t>(position[i])];
  return out;
}

namespace {

// FNV-1a, 64 bits, over bytes.
struct Digest {
  uint64_t h = 0xcbf29ce484222325ULL;
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ULL;
    }
  }
  void text(const std::string& s) { bytes(s.data(), s.size() + 1); }
  void tensor(const std::string& name, const torch::Tensor& t) {
    const torch::Tensor values = t.detach().to(torch::kCPU).contiguous();
    text(name);
    text(std::string(c10::toString(values.scalar_type())));
    for (const int64_t d : values.sizes()) bytes(&d, sizeof d);
    bytes(values.data_ptr(), values.nbytes());
  }
};

}  // namespace

std::string modelFingerprint(Model& model) {
  Digest digest;
  const ModelConfig config = model.config();
  const NetworkShape& s = config.shape;
  digest.text(choiceName(s.tower));
  for (const int64_t v : {s.width, s.height, s.channels, s.embeddingSize}) digest.bytes(&v, sizeof v);
  for (const double v : config.norm.mean) digest.bytes(&v, sizeof v);
  for (const double v : config.norm.std) digest.bytes(&v, sizeof v);
  {
    std::lock_guard<std::mutex> lock(model.weightsMutex());
    for (const auto& item : model.net()->named_parameters()) digest.tensor(item.key(), item.value());
    for (const auto& item : model.net()->named_buffers()) digest.tensor(item.key(), item.value());
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(digest.h));
  return hex;
}

}  // namespace siamese::core
