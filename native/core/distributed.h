// Data-parallel training across processes and hosts on LibTorch's own distributed engine, c10d: a
// TCPStore for the meeting and a Gloo process group (NCCL in a CUDA build that has it) for the
// collectives. Nothing here is a transport of ours.
//
// The trainer sees only the narrow interface below (trainer.cc): a Group of ranks with three
// collectives, and a GradientAllReduce that sums the gradients of a step over the ranks. A run in
// one process has no Group at all and takes exactly the code path it took before distributed
// training existed.
//
// Every failure of a peer (killed, hung, unreachable, started with other settings) becomes a
// DistributedError naming the rank and the cause within the configured timeout; nothing waits
// forever. Without c10d (a LibTorch built without it, or without Gloo's headers at build time)
// joinGroup refuses with UnsupportedError.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace siamese::core {

// A distributed run that cannot go on: a peer died, hung or cannot be reached, or the ranks
// disagree. ERR_DISTRIBUTED.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DistributedConfig {
  int rank = 0;
  int worldSize = 1;
  std::string masterAddr = "127.0.0.1";
  int masterPort = 29500;
  // torchrun's agent already serves the store on masterAddr:masterPort (TORCHELASTIC_USE_AGENT_STORE):
  // every rank, rank 0 included, is then a client.
  bool agentStore = false;
  std::string backend = "auto";  // gloo, nccl, or auto (nccl for a CUDA model where built in, else gloo)
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // Prefix of our keys in the store, so that a restarted job (torchrun's restart count) never
  // reads an earlier attempt's keys.
  std::string runId = "0";
};

// Whether this build can train across processes, and which back-ends it has ("gloo", "gloo nccl").
bool distributedAvailable();
std::string distributedBackends();

// The ranks of one run. Every rank calls the same collectives in the same order.
class Group {
 public:
  virtual ~Group() = default;
  virtual int rank() const = 0;
  virtual int worldSize() const = 0;
  virtual std::string backend() const = 0;

  // Starts summing `tensor` in place over the ranks; the returned function waits for it.
  virtual std::function<void()> allReduceSum(torch::Tensor tensor) = 0;
  // Rank 0's values into every rank's `tensors`, in place.
  virtual void broadcast(std::vector<torch::Tensor>& tensors) = 0;
  // Every rank's `local` (the same trailing shape, any length), concatenated in rank order.
  virtual torch::Tensor allGather(const torch::Tensor& local) = 0;
};

// Meets the other ranks and opens the process group. `handshake`: "name=value" lines that every
// rank must agree on (world size, settings, the data's fingerprint); a rank that differs is named
// in the error, with the first line that differs.
std::unique_ptr<Group> joinGroup(const DistributedConfig& config, const torch::Device& device,
                                 const std::string& handshake);

// The share of rank `rank` of `n` items split over `worldSize` ranks: [begin, end), contiguous,
// sizes differing by one at most, in rank order (their union is [0, n)).
std::pair<int64_t, int64_t> shareOf(int64_t n, int rank, int worldSize);

// Sums the gradients of a step over the ranks, each multiplied by the step's scale first, so that
// the sum is the gradient one process would have computed on the whole batch. Bucketed as
// PyTorch's DistributedDataParallel does, in the order the backward pass produces gradients: a
// bucket's all-reduce starts as soon as the backward pass has written its last gradient, while
// the rest of the backward pass runs. DDP's buckets are 25 MiB (1 MiB the first); the reference
// network's gradients are 8.8 MB, which that puts in one bucket finished only by the last layer's
// backward pass, so nothing overlaps. Here a bucket is a quarter of the gradients (1 to 25 MiB):
// measured on the reference recipe, the wait after the backward pass fell from 7.7 to 4.5 ms
// (docs/performance.md, "Distributed training").
class GradientAllReduce {
 public:
  static constexpr int64_t kMaxBucketBytes = 25 << 20;
  static constexpr int64_t kMinBucketBytes = 1 << 20;
  static constexpr int kBucketsWanted = 4;

  // `parameters`: those that train (requires_grad). Hooks on them stay until destruction.
  // `bucketBytes` 0: a quarter of the gradients' bytes, within [kMinBucketBytes, kMaxBucketBytes].
  GradientAllReduce(Group& group, const std::vector<torch::Tensor>& parameters, int64_t bucketBytes = 0,
                    int64_t firstBucketBytes = kMinBucketBytes);
  ~GradientAllReduce();
  GradientAllReduce(const GradientAllReduce&) = delete;
  GradientAllReduce& operator=(const GradientAllReduce&) = delete;

  // Before a step's backward pass: the scale of this rank's gradients, and float64 figures to sum
  // alongside them (the loss, the pairs; their all-reduce starts now).
  void begin(double scale, const torch::Tensor& figures);
  // After the backward pass (or in its place, when this rank had no share of the batch): waits for
  // every bucket and writes the sums into the gradients. Returns the summed figures (on the CPU).
  torch::Tensor finish();

  // Seconds spent waiting in finish() since the last call (all-reduce time not hidden behind the
  // backward pass), and steps.
  double takeWaitSeconds();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace siamese::core
