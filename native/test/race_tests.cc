// The values a model shares between threads, under ThreadSanitizer (scripts/sanitize.sh): a
// training thread sets the threshold and the metadata after each epoch while the compute thread
// reads both to answer predict() and the main thread reads the metadata for model.metadata. Any
// access without a lock or an atomic is a data race that TSan reports; the run then fails.
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include <torch/torch.h>

#include "../core/model.h"

using namespace siamese::core;

int main() {
  at::set_num_threads(1);  // no OpenMP team: the only threads are the ones below
  ModelConfig config;
  config.loss = Loss::Contrastive;
  Model model(config, torch::kCPU, 1);
  const torch::Tensor a = torch::rand({4, config.shape.embeddingSize});
  const torch::Tensor b = torch::rand({4, config.shape.embeddingSize});
  std::atomic<int> reads{0};

  // The training thread's side of an epoch's end.
  std::thread trainer([&] {
    for (int epoch = 0; epoch < 200; ++epoch) {
      model.setThreshold(0.5 + 0.001 * epoch);
      model.setMetadata({{"metrics", std::to_string(epoch)}, {"data_fingerprint", "0123456789abcdef"}});
    }
  });
  // The compute thread's predict(), and the main thread's model.metadata and model.config.
  std::thread inference([&] {
    for (int i = 0; i < 200; ++i) {
      const torch::Tensor p = model.sameProbability(a, b);
      if (p.size(0) == 4 && model.metadata().size() <= 2 && model.config().threshold >= 0.5) reads++;
    }
  });
  trainer.join();
  inference.join();
  std::printf("race_tests: %d reads alongside 200 writes\n", reads.load());
  return reads.load() == 200 ? 0 : 1;
}
