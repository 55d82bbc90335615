// The benchmark's plain C++ side: the same work as scripts/bench/ours.mjs, done by native/core
// directly, without Node. Comparing the two gives the addon's overhead.
// Usage: core_bench DATA_DIR THREADS SEED   (DATA_DIR holds the four IDX files, gzipped)
// Prints one JSON line.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../core/cpu_allocator.h"
#include "../core/evaluate.h"
#include "../core/idx.h"
#include "../core/inference.h"
#include "../core/model.h"
#include "../core/sampling.h"
#include "../core/trainer.h"

namespace {

using namespace siamese::core;
using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

ImageData load(const std::string& dir, const std::string& images, const std::string& labels) {
  IdxSplit split = readIdxSplit(dir + "/" + images, dir + "/" + labels, 10);
  ImageData out;
  out.images = torch::from_blob(split.images.pixels.data(),
                                {static_cast<int64_t>(split.images.count), static_cast<int64_t>(split.images.rows),
                                 static_cast<int64_t>(split.images.cols), 1},
                                torch::kUInt8)
                   .clone();
  out.labels.assign(split.labels.labels.begin(), split.labels.labels.end());
  out.numClasses = 10;
  return out;
}

double percentile(std::vector<double> xs, double q) {
  std::sort(xs.begin(), xs.end());
  return xs[static_cast<size_t>(q * static_cast<double>(xs.size() - 1))];
}

// One epoch of the reference recipe, as ours.mjs trains it.
EpochMetrics trainOneEpoch(Model& model, const ImageData& train, const ImageData& test, int threads, uint64_t seed) {
  TrainConfig c;
  c.epochs = 1;
  c.pairs = PairScheme::Reference;
  c.seed = seed;
  c.threads = threads;
  c.saveEvery = 0;
  torch::AutoGradMode grad(true);
  return trainModel(model, train, test, c, TrainHooks{}).history.at(0);
}

// Single-pair predict latencies (ms), one call after the other, as predict() computes them.
std::vector<double> predictLatencies(Model& model, const ImageData& test) {
  std::vector<double> latencies;
  for (int64_t i = 0; i < 300; ++i) {
    const auto t0 = Clock::now();
    (void)predictPairs(model, test.images.slice(0, i, i + 1), test.images.slice(0, i + 1, i + 2))[0].item<float>();
    latencies.push_back(msSince(t0));
  }
  return latencies;
}

// Batch-1024 predict throughput (pairs/s), after one warm-up batch.
double batchPredictThroughput(Model& model, const ImageData& test) {
  const auto left = test.images.slice(0, 0, 1024);
  const auto right = test.images.slice(0, 900, 1924);
  predictPairs(model, left, right);
  const auto started = Clock::now();
  const int batches = 5;
  for (int b = 0; b < batches; ++b) predictPairs(model, left, right);
  return batches * 1024.0 / (msSince(started) / 1000);
}

// One-shot classification of 100 queries against 10 classes x 5 support images (ms), as classify() does it.
double classifyMs(Model& model, const ImageData& test) {
  std::vector<int32_t> supportLabels;
  std::vector<int64_t> supportIndex;
  for (int32_t k = 0; k < 10; ++k) {
    int found = 0;
    for (size_t i = 0; i < test.labels.size() && found < 5; ++i) {
      if (test.labels[i] == k) {
        supportIndex.push_back(static_cast<int64_t>(i));
        supportLabels.push_back(k);
        ++found;
      }
    }
  }
  const auto support = test.images.index_select(0, torch::tensor(supportIndex, torch::kLong));
  const auto started = Clock::now();
  (void)classScores(model, test.images.slice(0, 1000, 1100), support, supportLabels, 10);
  return msSince(started);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: core_bench DATA_DIR THREADS SEED\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int threads = std::atoi(argv[2]);
  const uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  installCachingCpuAllocator();  // as the addon does
  try {
    const ImageData train = load(dir, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz");
    const ImageData test = load(dir, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz");
    Model model(ModelConfig{}, torch::kCPU, seed);
    model.setThreads(threads);
    const EpochMetrics m = trainOneEpoch(model, train, test, threads, seed);

    // Evaluation throughput on the fixed test pairs, as model.evaluate() computes it (no one-shot).
    const auto started = Clock::now();
    const SetEvaluation eval = evaluateSet(model, test, EvaluationOptions{});
    const double evalPairsPerSecond = static_cast<double>(eval.pairs.pairs) / (msSince(started) / 1000);

    const std::vector<double> latencies = predictLatencies(model, test);
    const double batchPairsPerSecond = batchPredictThroughput(model, test);
    const double classify = classifyMs(model, test);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf(
        "{\"tool\":\"core_bench\",\"threads\":%d,\"trainPairsPerSecond\":%.3f,\"testAccuracy\":%.6f,"
        "\"evalPairsPerSecond\":%.3f,\"evalAccuracy\":%.6f,\"predictMedianMs\":%.4f,\"predictP99Ms\":%.4f,"
        "\"batch1024PairsPerSecond\":%.3f,\"classify100Ms\":%.3f,\"maxRssMiB\":%.1f}\n",
        threads, m.pairsPerSecond, m.testAccuracy, evalPairsPerSecond, eval.pairs.accuracy, percentile(latencies, 0.5),
        percentile(latencies, 0.99), batchPairsPerSecond, classify, static_cast<double>(usage.ru_maxrss) / 1024);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "core_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
