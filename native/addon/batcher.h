// Concurrent predictPairs calls on one model, gathered into one forward pass.
//
// Why: at the sizes Siamese networks serve, a forward pass over dozens of pairs costs little more
// than one over a single pair (the weights are read once either way, and small batches leave the
// cores idle). Sixty-four callers each paying their own pass is sixty-four passes.
//
// How: a call (on the main thread) appends its pairs to the model's pending list and, unless a
// batch is already queued and waiting to start, queues one. A batch takes the pending calls when
// the compute thread starts it, not when it is queued, so every call made while the previous
// batch ran goes into it. There is no waiting window: a lone call costs what it did before. A
// batch takes whole calls, at most maxPairs pairs (at least one call); what is left, and whatever
// came meanwhile, goes into the next batch, queued when this one settles. Each call's promise
// settles with its own slice of the result, or with the batch's error.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include <napi.h>
#include <torch/torch.h>

#include "../core/inference.h"
#include "../core/model.h"
#include "compute_thread.h"
#include "convert.h"
#include "errors.h"

namespace siamese::addon {

class PairBatcher {
 public:
  struct Call {
    torch::Tensor left;  // [n, H, W, C] uint8, as predictPairs takes them
    torch::Tensor right;
    Napi::Promise::Deferred deferred;
    bool distances = false;  // comparePairs: P(same) then the distances; predictPairs: P(same)
  };

  // The most pairs a shared forward pass takes on `device`, unless set (setPredictBatch). On a CPU
  // a pass's time grows with its pairs from a few dozen on (the reference model does 96% of its
  // 64-pair rate in 32-pair passes): larger passes add only latency. Bounded at half of 64 calls
  // in flight, two passes alternate, each full; unbounded, their sizes swing between a few calls
  // and all of them, and the p99 latency is two to three times the p50 (scripts/bench/batching.mjs
  // and serve.mjs). A GPU's pass costs about the same from one pair to hundreds.
  static int64_t defaultMaxPairs(const torch::Device& device) { return device.is_cuda() ? 256 : 32; }

  explicit PairBatcher(int64_t maxPairs) : maxPairs_(maxPairs) {}

  int64_t maxPairs() {
    std::lock_guard<std::mutex> lock(mutex_);
    return maxPairs_;
  }
  void setMaxPairs(int64_t maxPairs) {
    std::lock_guard<std::mutex> lock(mutex_);
    maxPairs_ = maxPairs;
  }

  // Main thread: adds a call. True when the caller must queue a batch (none is waiting to start).
  bool add(Call call) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(call));
    if (queued_) return false;
    queued_ = true;
    return true;
  }

  // Compute thread, as a batch starts: the calls it serves (whole calls, at most maxPairs pairs,
  // at least one call).
  std::vector<Call> take() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Call> batch;
    int64_t pairs = 0;
    while (!pending_.empty() && (batch.empty() || pairs + pending_.front().left.size(0) <= maxPairs_)) {
      pairs += pending_.front().left.size(0);
      batch.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    queued_ = false;
    if (!batch.empty()) {
      ++stats_.passes;
      stats_.pairs += pairs;
      stats_.calls += static_cast<int64_t>(batch.size());
      int bucket = 0;
      while (bucket < kSizeBuckets && pairs > (int64_t{1} << bucket)) ++bucket;
      ++stats_.bySize[static_cast<size_t>(bucket)];
    }
    return batch;
  }

  // What the batches were, for /metrics: forward passes and the pairs and calls they served, the
  // passes by size (at most 1, 2, 4, ... 256 pairs, then more), and the calls waiting now.
  struct Stats {
    int64_t passes = 0;
    int64_t pairs = 0;
    int64_t calls = 0;
    std::vector<int64_t> bySize = std::vector<int64_t>(kSizeBuckets + 1, 0);
    int64_t waiting = 0;
  };
  static constexpr int kSizeBuckets = 9;  // 1, 2, 4, ..., 256
  Stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    Stats out = stats_;
    out.waiting = static_cast<int64_t>(pending_.size());
    return out;
  }

  // Main thread, after a batch settled: true when calls are left and no batch is queued for them
  // (the caller must queue one).
  bool needsBatch() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pending_.empty() || queued_) return false;
    queued_ = true;
    return true;
  }

 private:
  std::mutex mutex_;
  std::deque<Call> pending_;
  bool queued_ = false;  // a batch is queued and has not taken its calls yet
  int64_t maxPairs_;
  Stats stats_;
};

// One batch: takes its calls on the compute thread, runs one forward pass (comparePairs: its
// P(same) column is predictPairs' bit for bit), settles each call.
class PairBatchWorker : public Napi::AsyncWorker {
 public:
  // `settled(env, calls)`: on the main thread once every call of the batch has settled.
  using Settled = std::function<void(Napi::Env, size_t)>;

  PairBatchWorker(Napi::Env env, std::shared_ptr<PairBatcher> batcher, std::shared_ptr<core::Model> model,
                  Settled settled)
      : Napi::AsyncWorker(env, "siamese-torch predict batch"),
        batcher_(std::move(batcher)),
        model_(std::move(model)),
        settled_(std::move(settled)) {}

 protected:
  void Execute() override {
    try {
      ComputeThread::get().run([this] {
        batch_ = batcher_->take();
        if (batch_.empty()) return;
        if (batch_.size() == 1) {
          result_ = core::comparePairs(*model_, batch_[0].left, batch_[0].right);
          return;
        }
        std::vector<torch::Tensor> left;
        std::vector<torch::Tensor> right;
        for (const auto& call : batch_) {
          left.push_back(call.left);
          right.push_back(call.right);
        }
        result_ = core::comparePairs(*model_, torch::cat(left), torch::cat(right));
      });
    } catch (...) {
      error_ = describeCurrentException();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    // Settling fails only while the environment shuts down; nothing may escape into Node then.
    try {
      Napi::HandleScope scope(env);
      int64_t offset = 0;
      for (auto& call : batch_) {
        const int64_t n = call.left.size(0);
        if (error_) {
          call.deferred.Reject(makeError(env, *error_).Value());
        } else {
          const auto rows = result_.narrow(0, offset, n);
          call.deferred.Resolve(toFloat32Array(env, call.distances ? rows.t() : rows.select(1, 0)));
        }
        offset += n;
      }
    } catch (...) {
    }
    settled_(env, batch_.size());
  }

 private:
  std::shared_ptr<PairBatcher> batcher_;
  std::shared_ptr<core::Model> model_;
  Settled settled_;
  std::vector<PairBatcher::Call> batch_;
  torch::Tensor result_;
  std::optional<ErrorInfo> error_;
};

}  // namespace siamese::addon
