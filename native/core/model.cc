#include "model.h"

#include "cpus.h"
#include "errors.h"
#include "precision.h"

namespace siamese::core {

namespace {

// torch::manual_seed sets a process-wide generator: seeding and initialising happen together.
std::mutex& initMutex() {
  static std::mutex m;
  return m;
}

SiameseNet seededNet(const NetworkShape& shape, uint64_t seed, WeightInit init) {
  std::lock_guard<std::mutex> lock(initMutex());
  torch::manual_seed(seed);
  SiameseNet net(shape);
  net->initWeights(init);
  return net;
}

}  // namespace

Model::Model(const ModelConfig& config, torch::Device device, uint64_t seed, WeightInit init)
    : Model(config, device, seededNet(config.shape, seed, init)) {}

Model::Model(const ModelConfig& config, torch::Device device, SiameseNet net)
    : config_(config), device_(device), threshold_(config.threshold), net_(std::move(net)) {
  net_->to(device_);
  net_->eval();  // a model is used for inference unless it trains
}

ModelConfig Model::config() const {
  ModelConfig c = config_;
  c.threshold = threshold_.load();
  return c;
}

int Model::threads() const {
  const int set = threads_.load();
  return set > 0 ? set : sharedDefaultThreads();
}

void Model::useThreads() const {
  const int wanted = threads();
  if (at::get_num_threads() != wanted) at::set_num_threads(wanted);
}

void Model::setPrecision(Precision precision) {
  checkPrecision(precision, device_);
  precision_.store(precision);
}

void Model::useForTraining(bool training) {
  std::lock_guard<std::mutex> lock(weightsMutex_);
  net_->train(training);
  net_->useTrainingLayout(training);
}

namespace {

// Evaluation mode for one inference call on a network that is training (its BatchNorm layers use
// and keep their running statistics), training mode again afterwards. Under the weights lock,
// which a BatchNorm tower's training step holds throughout (trainer.cc).
class EvaluationMode {
 public:
  explicit EvaluationMode(SiameseNet& net) : net_(net), wasTraining_(net->hasBatchNorm() && net->is_training()) {
    if (wasTraining_) net_->train(false);
  }
  ~EvaluationMode() {
    if (wasTraining_) net_->train(true);
  }
  EvaluationMode(const EvaluationMode&) = delete;
  EvaluationMode& operator=(const EvaluationMode&) = delete;

 private:
  SiameseNet& net_;
  const bool wasTraining_;
};

}  // namespace

torch::Tensor Model::embedImages(const torch::Tensor& images, int64_t batchSize) {
  useThreads();
  torch::InferenceMode inference;
  std::lock_guard<std::mutex> lock(weightsMutex_);
  const EvaluationMode evaluation(net_);
  const int64_t n = images.size(0);
  std::vector<torch::Tensor> parts;
  // Uploaded once as uint8 (a quarter of float32), from pinned memory on a GPU; normalised there.
  const torch::Tensor source = device_.is_cuda() && images.is_cpu()
                                   ? images.pin_memory().to(device_, /*non_blocking=*/true)
                                   : images.to(device_);
  for (int64_t start = 0; start < n; start += batchSize) {
    const int64_t end = std::min(n, start + batchSize);
    const auto indices = torch::arange(start, end, torch::TensorOptions().dtype(torch::kLong).device(device_));
    const ComputeIn computeIn(precision(), device_);
    parts.push_back(net_->embedForInference(gatherNormalized(source, indices, config_.norm)).to(torch::kFloat));
  }
  return torch::cat(parts).to(torch::kCPU);
}

torch::Tensor Model::pairScores(const torch::Tensor& e1, const torch::Tensor& e2) {
  useThreads();
  torch::InferenceMode inference;
  std::lock_guard<std::mutex> lock(weightsMutex_);
  const auto a = e1.to(device_);
  const auto b = e2.to(device_);
  if (config_.loss == Loss::PairCE) return net_->head(a, b).to(torch::kCPU);
  return (a - b).norm(2, 1).to(torch::kCPU);
}

torch::Tensor Model::sameProbability(const torch::Tensor& e1, const torch::Tensor& e2) {
  const torch::Tensor scores = pairScores(e1, e2);
  if (config_.loss == Loss::PairCE) return torch::softmax(scores, 1).select(1, 1).contiguous();
  // Distances to a probability: 0.5 exactly at the decision threshold, steeper for small margins.
  const double scale = std::max(config_.margin, 1e-6) / 8.0;
  return torch::sigmoid((threshold_.load() - scores) / scale).contiguous();
}

Metadata Model::metadata() const {
  std::lock_guard<std::mutex> lock(metadataMutex_);
  return metadata_;
}

void Model::setMetadata(const Metadata& entries) {
  std::lock_guard<std::mutex> lock(metadataMutex_);
  for (const auto& [k, v] : entries) metadata_[k] = v;
}

}  // namespace siamese::core
