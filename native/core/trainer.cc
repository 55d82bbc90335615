#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <type_traits>

#include "cpu_allocator.h"
#include "cpus.h"
#include "cuda_graph.h"
#include "errors.h"
#include "evaluate.h"
#include "json.h"
#include "precision.h"
#include "random.h"
#include "sampling.h"

namespace siamese::core {

namespace {

using Clock = std::chrono::steady_clock;
namespace F = torch::nn::functional;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ---- the optimiser and its state ----

// The optimiser's state map is keyed by the TensorImpl pointer: in LibTorch 1.x as the string
// c10::guts::to_string gives (the pointer streamed), in 2.x as the pointer itself.
template <typename Key>
Key stateKey(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << p.unsafeGetTensorImpl();
    return key.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

std::unique_ptr<torch::optim::Optimizer> makeOptimizer(Model& model, const TrainConfig& c) {
  switch (c.optimizer) {
    case Optimizer::Adam:
      return std::make_unique<torch::optim::Adam>(model.net()->parameters(),
                                                  torch::optim::AdamOptions(c.lr).weight_decay(c.weightDecay));
    case Optimizer::Sgd:
      return std::make_unique<torch::optim::SGD>(
          model.net()->parameters(), torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weightDecay));
  }
  throw InvalidArgumentError("unknown optimizer");
}

OptimizerSnapshot snapshot(Model& model, torch::optim::Optimizer& optimizer, Optimizer kind) {
  OptimizerSnapshot s;
  s.kind = kind;
  auto& state = optimizer.state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  for (const auto& item : model.net()->named_parameters()) {
    const auto it = state.find(stateKey<Key>(item.value()));
    if (it == state.end()) continue;
    if (kind == Optimizer::Adam) {
      const auto& adam = static_cast<const torch::optim::AdamParamState&>(*it->second);
      s.tensors[item.key() + ".exp_avg"] = adam.exp_avg();
      s.tensors[item.key() + ".exp_avg_sq"] = adam.exp_avg_sq();
      s.step = adam.step();
    } else {
      const auto& sgd = static_cast<const torch::optim::SGDParamState&>(*it->second);
      if (sgd.momentum_buffer().defined()) s.tensors[item.key() + ".momentum_buffer"] = sgd.momentum_buffer();
    }
  }
  return s;
}

void restore(Model& model, torch::optim::Optimizer& optimizer, Optimizer kind, const OptimizerSnapshot& s) {
  if (s.kind != kind) {
    throw InvalidArgumentError(std::string("the checkpoint was trained with ") + choiceName(s.kind) + ", not " +
                               choiceName(kind));
  }
  auto& state = optimizer.state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  const auto device = model.device();
  for (const auto& item : model.net()->named_parameters()) {
    const auto tensor = [&](const std::string& suffix) -> torch::Tensor {
      const auto it = s.tensors.find(item.key() + suffix);
      return it == s.tensors.end() ? torch::Tensor() : it->second.to(device);
    };
    if (kind == Optimizer::Adam) {
      auto avg = tensor(".exp_avg");
      auto avgSq = tensor(".exp_avg_sq");
      if (!avg.defined() || !avgSq.defined()) continue;
      auto st = std::make_unique<torch::optim::AdamParamState>();
      st->step(s.step);
      st->exp_avg(avg);
      st->exp_avg_sq(avgSq);
      state[stateKey<Key>(item.value())] = std::move(st);
    } else {
      auto buffer = tensor(".momentum_buffer");
      if (!buffer.defined()) continue;
      auto st = std::make_unique<torch::optim::SGDParamState>();
      st->momentum_buffer(buffer);
      state[stateKey<Key>(item.value())] = std::move(st);
    }
  }
}

// ---- losses and training accuracy of mined batches ----

// Mined triplet loss over a class-balanced batch (all pairwise distances of the batch).
torch::Tensor minedTripletLoss(const torch::Tensor& embeddings, const torch::Tensor& labels, double margin,
                               Mining mining) {
  const auto distances = torch::cdist(embeddings, embeddings);
  const auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  const auto eye = torch::eye(labels.size(0), torch::TensorOptions().dtype(torch::kBool).device(labels.device()));
  const auto positiveMask = same & ~eye;
  const auto negativeMask = ~same;
  const double big = 1e9;
  if (mining == Mining::BatchHard) {
    const auto hardestPositive = (distances * positiveMask).amax(1);
    const auto hardestNegative = (distances + big * (~negativeMask)).amin(1);
    return torch::relu(hardestPositive - hardestNegative + margin).mean();
  }
  // Semi-hard (FaceNet, as TensorFlow Addons defines it): for each (anchor, positive), the
  // closest negative that is farther than the positive; if none, the farthest negative.
  const auto dAP = distances.unsqueeze(2);           // [B, B(p), 1]
  const auto dAN = distances.unsqueeze(1);           // [B, 1, B(n)]
  const auto negatives = negativeMask.unsqueeze(1);  // [B, 1, B(n)]
  const auto farther = negatives & (dAN > dAP);      // [B, B, B]
  const auto closestFarther = (dAN + big * (~farther)).amin(2);
  const auto farthest = (dAN - big * (~negatives)).amax(2);
  const auto chosen = torch::where(farther.any(2), closestFarther, farthest);
  const auto losses = torch::relu(distances - chosen + margin);
  return (losses * positiveMask).sum() / positiveMask.sum().clamp_min(1);
}

// Training accuracy, measured on the batch as it was trained (no extra forward pass): for pair-ce
// the head's verdict on both pairs; for the distance losses a triplet counts as two right pairs
// when the positive is closer than the negative.
// A tensor on the device (a captured step cannot read it to the host).
torch::Tensor pairsDecidedRight(Model& model, const torch::Tensor& a, const torch::Tensor& p, const torch::Tensor& n) {
  torch::NoGradGuard noGrad;
  if (model.loss() == Loss::PairCE) {
    return (model.net()->head(a, p).argmax(1) == 1).sum() + (model.net()->head(a, n).argmax(1) == 0).sum();
  }
  return 2 * (F::pairwise_distance(a, p) < F::pairwise_distance(a, n)).sum();
}

// The same for a mined batch: anchors whose farthest positive is closer than their nearest negative.
int64_t hardestOrderedRight(const torch::Tensor& embeddings, const torch::Tensor& labels) {
  torch::NoGradGuard noGrad;
  const auto distances = torch::cdist(embeddings, embeddings);
  const auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  const auto farthestPositive = (distances * same).amax(1);
  const auto nearestNegative = (distances + 1e9 * same).amin(1);
  return (farthestPositive < nearestNegative).sum().item<int64_t>();
}

// NHWC weights and frozen stages while training; NCHW, nothing frozen, afterwards however
// training ends. The gradients go too: the next run starts from zero anyway, and kept, they
// doubled a trained model's memory.
class TrainingLayout {
 public:
  TrainingLayout(Model& model, int64_t freezeStages) : model_(model) {
    {
      std::lock_guard<std::mutex> lock(model_.weightsMutex());
      model_.net()->freezeStages(freezeStages);
    }
    model_.useForTraining(true);
  }
  ~TrainingLayout() {
    try {
      model_.useForTraining(false);
    } catch (...) {
      // Out of memory for the copy: the weights stay NHWC, which is slower, never wrong.
    }
    std::lock_guard<std::mutex> lock(model_.weightsMutex());
    model_.net()->freezeStages(0);
    for (auto& parameter : model_.net()->parameters()) parameter.mutable_grad().reset();
  }
  TrainingLayout(const TrainingLayout&) = delete;
  TrainingLayout& operator=(const TrainingLayout&) = delete;

 private:
  Model& model_;
};

// ---- one run ----

// The augmentation draws' own stream, apart from the pairs' (the same seed must not correlate them).
constexpr uint64_t kAugmentStream = 0xa06e'4e47'0000'0001ULL;

// The batches of one epoch: triplets in a visit order, or class-balanced batches for mining.
struct EpochPlan {
  Triplets triplets;
  std::vector<int64_t> order;
  std::vector<int64_t> mined;  // P * K image indices a batch, concatenated
  int64_t batches = 0;
};

// What one optimiser step did (over every rank in a distributed run).
struct StepResult {
  double loss = 0;
  int64_t pairs = 0;  // labelled pairs trained on
  int64_t right = 0;  // of which decided right
  bool stop = false;  // a rank was asked to stop: every rank stops after this step
};

// The figures a distributed step sums over the ranks beside its gradients (GradientAllReduce).
enum StepFigure : int64_t { kLossFigure, kRightFigure, kPairsFigure, kStopFigure, kStepFigures };

class Trainer {
 public:
  Trainer(Model& model, const ImageData& train, const ImageData& test, const TrainConfig& c, const TrainHooks& hooks,
          Group* group)
      : model_(model),
        c_(c),
        hooks_(hooks),
        group_(group),
        rank_(group != nullptr ? group->rank() : 0),
        worldSize_(group != nullptr ? group->worldSize() : 1),
        writes_(!c.outDir.empty() && rank_ == 0),
        reports_(rank_ == 0),
        device_(model.device()),
        norm_(model.config().norm),
        mined_(model.loss() == Loss::Triplet && c.mining != Mining::None),
        trainIndex_(train.labels.data(), train.labels.size(), train.numClasses),
        testImages_(test.images),
        testTriplets_(
            balancedTriplets(ClassIndex(test.labels.data(), test.labels.size(), test.numClasses), c.testSeed, 0)),
        trainImages_(train.images.to(device_)),
        trainLabels_(torch::tensor(train.labels, torch::kLong).to(device_)) {
    if (!mined_ && c.pairs == PairScheme::Reference) reference_ = referenceTriplets(trainIndex_, c.seed);
    if (c.cudaGraph && !mined_) graph_ = std::make_unique<GraphedStep>(device_);
    if (mined_) {
      // Class-balanced batches for mining: P classes (at most 16), K images each, P * K <= batch size.
      int eligible = 0;
      for (int k = 0; k < trainIndex_.numClasses(); ++k) eligible += trainIndex_.members(k).size() >= 2;
      classesPerBatch_ = std::min(eligible, 16);
      imagesPerClass_ = static_cast<int>(std::max<int64_t>(2, c.batchSize / std::max(classesPerBatch_, 1)));
    }
    if (group_ != nullptr) joinRanks();
  }

  TrainOutcome run(int64_t startEpoch, const OptimizerSnapshot* resume) {
    optimizer_ = makeOptimizer(model_, c_);
    if (resume != nullptr) restore(model_, *optimizer_, c_.optimizer, *resume);
    if (writes_) std::filesystem::create_directories(c_.outDir);
    TrainingLayout layout(model_, c_.freezeStages);
    TrainOutcome outcome;
    outcome.rank = rank_;
    outcome.worldSize = worldSize_;
    if (group_ != nullptr) {
      std::vector<torch::Tensor> trained;
      for (const auto& parameter : model_.net()->parameters()) {
        if (parameter.requires_grad()) trained.push_back(parameter);
      }
      sync_ = std::make_unique<GradientAllReduce>(*group_, trained);
    }
    for (int64_t epoch = startEpoch + 1; epoch <= c_.epochs; ++epoch) {
      const bool completed = runEpoch(epoch, outcome);
      if (sync_ != nullptr) outcome.allReduceWaitSeconds += sync_->takeWaitSeconds();
      if (!completed) {
        outcome.stopped = true;
        return outcome;
      }
    }
    if (writes_) {
      const std::string path = (std::filesystem::path(c_.outDir) / "model.safetensors").string();
      saveModelFile(model_, path, {{"epoch", std::to_string(c_.epochs)}});
      if (hooks_.onFile) hooks_.onFile("model", path);
    }
    return outcome;
  }

 private:
  // One epoch: its batches, then evaluation and a checkpoint. False when asked to stop.
  bool runEpoch(int64_t epoch, TrainOutcome& outcome) {
    const auto started = Clock::now();
    const EpochPlan plan = planEpoch(epoch);
    // Each rank of a distributed run draws its own images' augmentation from its own stream.
    augmentRng_ = Rng(c_.seed ^ kAugmentStream, static_cast<uint64_t>((epoch - 1) * worldSize_ + rank_));
    double lossSum = 0;
    int64_t pairsDone = 0;
    int64_t pairsRight = 0;
    auto lastReport = Clock::now();
    for (int64_t b = 0; b < plan.batches; ++b) {
      // A distributed run stops after the step in which any rank was asked to (every rank must
      // take part in every step); one process stops before the next.
      if (group_ == nullptr && stopAsked()) return false;
      const double lr = setLr((epoch - 1) * plan.batches + b, plan.batches);
      const StepResult step = group_ != nullptr ? distributedStep(plan, b) : trainStep(plan, b);
      lossSum += step.loss;
      pairsDone += step.pairs;
      pairsRight += step.right;
      if (step.stop) return false;
      if (reports_ && hooks_.onBatch && (secondsSince(lastReport) >= 0.1 || b + 1 == plan.batches)) {
        lastReport = Clock::now();
        reportBatch(epoch, b, plan.batches, step.loss, lr, pairsDone, started);
      }
    }
    const double trainSeconds = secondsSince(started);
    // The steps' buffers and the evaluation's are of other sizes: each phase starts with the
    // other's idle blocks given back (cpu_allocator.h), so that the process does not hold both.
    // Mapping them again costs a few tens of milliseconds an epoch.
    releaseIdleCpuMemory();
    const PairMetrics m = evaluate();
    releaseIdleCpuMemory();

    EpochMetrics metrics;
    metrics.epoch = epoch;
    metrics.trainLoss = lossSum / static_cast<double>(std::max<int64_t>(plan.batches, 1));
    metrics.trainAccuracy = static_cast<double>(pairsRight) / static_cast<double>(std::max<int64_t>(pairsDone, 1));
    metrics.testLoss = m.loss;
    // A distance model has just taken the best threshold as its own: its accuracy is at that one.
    metrics.testAccuracy = model_.loss() == Loss::PairCE ? m.accuracy : m.bestAccuracy;
    metrics.auc = m.auc;
    metrics.threshold = m.threshold;
    metrics.seconds = secondsSince(started);
    metrics.pairsPerSecond = static_cast<double>(pairsDone) / std::max(trainSeconds, 1e-9);
    model_.setMetadata({{"metrics", metricsJson(metrics)}});
    outcome.history.push_back(metrics);
    if (reports_ && hooks_.onEpoch) hooks_.onEpoch(metrics);
    if (writes_ && c_.saveEvery > 0 && epoch % c_.saveEvery == 0) checkpoint(epoch);
    return true;
  }

  bool stopAsked() const { return hooks_.stop != nullptr && hooks_.stop->load(); }

  // The learning rate of the run's step `step` (0-based over the whole run), set on every parameter
  // group. The step count comes from the epoch and the batch alone (every epoch of a run has the
  // same number of batches), so a resumed run continues the schedule as if uninterrupted. A
  // constant rate without warm-up is never set: the optimiser keeps the rate it was made with.
  double setLr(int64_t step, int64_t batchesPerEpoch) {
    if (c_.lrSchedule == LrSchedule::Constant && c_.warmup <= 0) return c_.lr;
    const int64_t totalSteps = c_.epochs * batchesPerEpoch;
    const auto warmupSteps =
        std::min<int64_t>(totalSteps, std::llround(c_.warmup * static_cast<double>(batchesPerEpoch)));
    const double lr = scheduledLr(c_.lrSchedule, c_.lr, step, totalSteps, warmupSteps);
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
    return lr;
  }

  EpochPlan planEpoch(int64_t epoch) const {
    const auto epochIndex = static_cast<uint64_t>(epoch - 1);
    EpochPlan plan;
    if (mined_) {
      plan.mined = classBalancedBatches(trainIndex_, classesPerBatch_, imagesPerClass_, c_.seed, epochIndex);
      plan.batches = static_cast<int64_t>(plan.mined.size()) / (classesPerBatch_ * imagesPerClass_);
    } else {
      plan.triplets =
          c_.pairs == PairScheme::Reference ? reference_ : balancedTriplets(trainIndex_, c_.seed, epochIndex);
      plan.order = epochOrder(plan.triplets.size(), c_.seed, epochIndex);
      plan.batches = (static_cast<int64_t>(plan.triplets.size()) + c_.batchSize - 1) / c_.batchSize;
    }
    return plan;
  }

  // Forward, backward and one optimiser step (under the weights lock) on batch b of the plan. A
  // tower with BatchNorm updates its running statistics in the forward pass, so its whole step
  // holds the lock: inference during training then sees the weights and statistics of the last
  // completed step, never half-updated ones. The reference tower holds it for the update only.
  StepResult trainStep(const EpochPlan& plan, int64_t b) {
    model_.useThreads();  // the default count follows the training runs going in this process
    std::unique_lock<std::mutex> wholeStep(model_.weightsMutex(), std::defer_lock);
    if (model_.net()->hasBatchNorm()) wholeStep.lock();
    StepResult r;
    if (mined_) {
      const int64_t per = classesPerBatch_ * imagesPerClass_;
      const auto begin = plan.mined.begin() + b * per;
      const auto indices = torch::tensor(std::vector<int64_t>(begin, begin + per), torch::kLong).to(device_);
      const auto embeddings = embedBatch(batchImages(indices));
      const auto labels = trainLabels_.index_select(0, indices);
      const auto loss = minedTripletLoss(embeddings, labels, model_.config().margin, c_.mining);
      r.loss = loss.item<double>();
      r.pairs = 2 * per;
      r.right = 2 * hardestOrderedRight(embeddings.detach(), labels);
      dropGradients();
      loss.backward();
    } else {
      const size_t begin = static_cast<size_t>(b * c_.batchSize);
      const size_t end = std::min(plan.triplets.size(), begin + static_cast<size_t>(c_.batchSize));
      const auto images = batchImages(tripletIndices(plan.triplets, plan.order, begin, end).to(device_));
      const std::vector<torch::Tensor> out = graph_ != nullptr ? graphedTripletStep(images) : eagerTripletStep(images);
      r.loss = out[0].item<double>();
      r.pairs = 2 * static_cast<int64_t>(end - begin);
      r.right = out[1].item<int64_t>();
    }
    optimizerStep(wholeStep);
    return r;
  }

  void optimizerStep(std::unique_lock<std::mutex>& wholeStep) {
    if (wholeStep.owns_lock()) {
      optimizer_->step();
    } else {
      std::lock_guard<std::mutex> lock(model_.weightsMutex());
      optimizer_->step();
    }
  }

  // ---- distributed runs ----

  // Before the first step: the ranks agree on the batches' shares, and every rank takes rank 0's
  // weights (and BatchNorm statistics), so that all start from the same model.
  void joinRanks() {
    const int64_t batch = mined_ ? static_cast<int64_t>(classesPerBatch_) * imagesPerClass_ : c_.batchSize;
    if (batch < worldSize_) {
      throw InvalidArgumentError("a batch of " + std::to_string(batch) + " cannot be shared by " +
                                 std::to_string(worldSize_) + " ranks: use a batch size of at least the world size");
    }
    torch::NoGradGuard noGrad;
    std::vector<torch::Tensor> state;
    for (const auto& p : model_.net()->parameters()) state.push_back(p);
    for (const auto& b : model_.net()->buffers()) state.push_back(b);
    std::vector<torch::Tensor> flat{torch::cat([&] {
      std::vector<torch::Tensor> parts;
      for (const auto& t : state) parts.push_back(t.reshape(-1).to(torch::kFloat));
      return parts;
    }())};
    group_->broadcast(flat);
    std::lock_guard<std::mutex> lock(model_.weightsMutex());
    int64_t offset = 0;
    for (auto& t : state) {
      t.copy_(flat[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }

  // One step of a distributed run: this rank's share of batch b, its gradients summed with the
  // other ranks' (each scaled by its share of the batch: the sum is the whole batch's mean), then
  // the same optimiser step on every rank.
  StepResult distributedStep(const EpochPlan& plan, int64_t b) {
    model_.useThreads();
    std::unique_lock<std::mutex> wholeStep(model_.weightsMutex(), std::defer_lock);
    if (model_.net()->hasBatchNorm()) wholeStep.lock();
    dropGradients();
    auto figures = torch::zeros({kStepFigures}, torch::kDouble);
    double scale = 1;
    torch::Tensor loss;
    if (mined_) {
      loss = minedSharedStep(plan, b, figures);
    } else {
      const int64_t begin = b * c_.batchSize;
      const int64_t n = std::min<int64_t>(static_cast<int64_t>(plan.triplets.size()) - begin, c_.batchSize);
      const auto [lo, hi] = shareOf(n, rank_, worldSize_);
      scale = static_cast<double>(hi - lo) / static_cast<double>(n);
      if (hi > lo) {
        const auto images = batchImages(
            tripletIndices(plan.triplets, plan.order, static_cast<size_t>(begin + lo), static_cast<size_t>(begin + hi))
                .to(device_));
        const auto parts = embedBatch(images).chunk(3);
        loss = tripletLoss(model_, parts[0], parts[1], parts[2]);
        const auto right = pairsDecidedRight(model_, parts[0].detach(), parts[1].detach(), parts[2].detach());
        figures[kLossFigure] = loss.item<double>() * scale;
        figures[kRightFigure] = static_cast<double>(right.item<int64_t>());
        figures[kPairsFigure] = static_cast<double>(2 * (hi - lo));
      }
    }
    figures[kStopFigure] = stopAsked() ? 1.0 : 0.0;
    sync_->begin(scale, figures);
    if (loss.defined()) loss.backward();
    const auto summed = sync_->finish();
    optimizerStep(wholeStep);
    StepResult r;
    r.loss = summed[kLossFigure].item<double>();
    r.right = std::llround(summed[kRightFigure].item<double>());
    r.pairs = std::llround(summed[kPairsFigure].item<double>());
    r.stop = summed[kStopFigure].item<double>() > 0;
    return r;
  }

  // A mined batch shared by the ranks: each embeds its share, the embeddings are gathered so that
  // mining sees the whole batch (as one process would), and each rank's backward pass reaches its
  // own share's embeddings only; the gradients' sum is the whole batch's. Every rank computes the
  // same loss: rank 0 alone counts it in the figures.
  torch::Tensor minedSharedStep(const EpochPlan& plan, int64_t b, torch::Tensor& figures) {
    const int64_t per = classesPerBatch_ * imagesPerClass_;
    const auto batch =
        torch::tensor(std::vector<int64_t>(plan.mined.begin() + b * per, plan.mined.begin() + (b + 1) * per),
                      torch::kLong)
            .to(device_);
    const auto [lo, hi] = shareOf(per, rank_, worldSize_);
    const auto local = embedBatch(batchImages(batch.slice(0, lo, hi)));
    const auto gathered = group_->allGather(local.detach());
    const auto embeddings = torch::cat({gathered.slice(0, 0, lo), local, gathered.slice(0, hi)});
    const auto labels = trainLabels_.index_select(0, batch);
    auto loss = minedTripletLoss(embeddings, labels, model_.config().margin, c_.mining);
    if (rank_ == 0) {
      figures[kLossFigure] = loss.item<double>();
      figures[kRightFigure] = static_cast<double>(2 * hardestOrderedRight(embeddings.detach(), labels));
      figures[kPairsFigure] = static_cast<double>(2 * per);
    }
    return loss;
  }

  // Gradients dropped rather than zeroed: the backward pass then writes them fresh instead of
  // filling zeros and adding to them (two passes over every parameter saved; the same values).
  void dropGradients() {
    for (auto& parameter : model_.net()->parameters()) parameter.mutable_grad().reset();
  }

  // A triplet batch's forward and backward passes: one batched forward pass for anchors, positives
  // and negatives together. Returns the loss and the pairs decided right (a tensor).
  std::vector<torch::Tensor> tripletPasses(const torch::Tensor& images) {
    const auto parts = embedBatch(images).chunk(3);
    auto loss = tripletLoss(model_, parts[0], parts[1], parts[2]);
    auto right = pairsDecidedRight(model_, parts[0].detach(), parts[1].detach(), parts[2].detach());
    loss.backward();
    return {loss, right};
  }

  std::vector<torch::Tensor> eagerTripletStep(const torch::Tensor& images) {
    dropGradients();
    return tripletPasses(images);
  }

  // The same through the captured graph (cuda_graph.h). The gradients are dropped before each
  // eager warm-up step and before the capture, so that the graph owns the ones it writes; after
  // it, they stay. A batch of another shape (an epoch's last, shorter one) runs eagerly, and its
  // gradients are copied into the graph's before the optimiser reads them.
  std::vector<torch::Tensor> graphedTripletStep(const torch::Tensor& images) {
    const auto passes = [this](const torch::Tensor& input) { return tripletPasses(input); };
    if (graph_->fits(images)) {
      if (!graph_->captured()) dropGradients();
      return graph_->run(images, passes);
    }
    if (!graph_->captured()) return eagerTripletStep(images);
    std::vector<torch::Tensor> graphGradients;
    for (const auto& parameter : model_.net()->parameters()) graphGradients.push_back(parameter.grad());
    auto out = eagerTripletStep(images);
    size_t i = 0;
    for (auto& parameter : model_.net()->parameters()) {
      auto& kept = graphGradients[i++];
      if (!kept.defined() || !parameter.grad().defined()) continue;
      kept.copy_(parameter.grad());
      parameter.mutable_grad() = kept;
    }
    return out;
  }

  // The tower's forward pass in the model's precision; the embeddings, the head, the loss and the
  // metrics are fp32 (bf16 casts its gradients back in the backward pass).
  torch::Tensor embedBatch(const torch::Tensor& images) {
    const ComputeIn computeIn(model_.precision(), device_);
    return model_.net()->embed(images).to(torch::kFloat);
  }

  // The normalised images of a batch, augmented when asked (pixels first, then normalisation).
  torch::Tensor batchImages(const torch::Tensor& indices) {
    if (!c_.augment.enabled()) return gatherNormalized(trainImages_, indices, norm_);
    torch::Tensor pixels = augmentBatch(gatherPixels(trainImages_, indices), c_.augment, augmentRng_);
    return normalize_(pixels, norm_);
  }

  void reportBatch(int64_t epoch, int64_t b, int64_t batches, double loss, double lr, int64_t pairsDone,
                   Clock::time_point started) {
    const double elapsed = secondsSince(started);
    BatchProgress p;
    p.epoch = epoch;
    p.epochs = c_.epochs;
    p.batch = b + 1;
    p.batches = batches;
    p.loss = loss;
    p.lr = lr;
    p.pairsPerSecond = static_cast<double>(pairsDone) / std::max(elapsed, 1e-9);
    p.etaSeconds = elapsed / static_cast<double>(b + 1) * static_cast<double>(batches - b - 1);
    hooks_.onBatch(p);
  }

  // Metrics on the fixed test pairs, in the inference layout, as evaluate() and predict() compute
  // them: the same numbers, and NHWC weights make small inference batches several times slower. A
  // distance model takes the best threshold as its decision threshold.
  PairMetrics evaluate() {
    model_.useForTraining(false);
    const torch::Tensor embeddings = group_ != nullptr ? sharedTestEmbeddings() : model_.embedImages(testImages_);
    releaseIdleCpuMemory();  // the embedding batches' buffers: the pairs' are of other sizes
    const PairMetrics m = evaluatePairs(model_, embeddings, testTriplets_);
    model_.useForTraining(true);
    if (model_.loss() != Loss::PairCE) model_.setThreshold(m.threshold);
    return m;
  }

  // A distributed run's test embeddings: each rank embeds its share of the test images, and every
  // rank gathers them all (the metrics and the threshold are then the same on every rank).
  torch::Tensor sharedTestEmbeddings() {
    const auto [lo, hi] = shareOf(testImages_.size(0), rank_, worldSize_);
    const torch::Tensor local =
        hi > lo ? model_.embedImages(testImages_.slice(0, lo, hi))
                : torch::empty({0, model_.shape().embeddingSize}, torch::TensorOptions().device(device_));
    return group_->allGather(local);
  }

  void checkpoint(int64_t epoch) {
    const std::string path =
        (std::filesystem::path(c_.outDir) / ("checkpoint-epoch-" + std::to_string(epoch) + ".safetensors")).string();
    saveCheckpointFile(model_, snapshot(model_, *optimizer_, c_.optimizer), path, {{"epoch", std::to_string(epoch)}});
    if (hooks_.onFile) hooks_.onFile("checkpoint", path);
  }

  Model& model_;
  const TrainConfig& c_;
  const TrainHooks& hooks_;
  Group* const group_;  // none: this process alone
  const int rank_;
  const int worldSize_;
  const bool writes_;   // checkpoints and the final model: rank 0's
  const bool reports_;  // progress: rank 0's
  const torch::Device device_;
  const Normalization norm_;
  const bool mined_;
  const ClassIndex trainIndex_;
  const torch::Tensor testImages_;
  const Triplets testTriplets_;
  const torch::Tensor trainImages_;
  const torch::Tensor trainLabels_;
  Triplets reference_;
  int classesPerBatch_ = 0;
  int imagesPerClass_ = 0;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  // The captured triplet step (cudaGraph); mined batches run eagerly.
  std::unique_ptr<GraphedStep> graph_;
  // The gradients' sum over the ranks (distributed runs).
  std::unique_ptr<GradientAllReduce> sync_;
  Rng augmentRng_{0};
};

}  // namespace

double scheduledLr(LrSchedule schedule, double lr, int64_t step, int64_t totalSteps, int64_t warmupSteps) {
  if (step < warmupSteps) return lr * static_cast<double>(step + 1) / static_cast<double>(warmupSteps);
  if (schedule == LrSchedule::Constant) return lr;
  constexpr double kPi = 3.14159265358979323846;
  const double progress =
      static_cast<double>(step - warmupSteps) / static_cast<double>(std::max<int64_t>(1, totalSteps - warmupSteps));
  return lr * 0.5 * (1.0 + std::cos(kPi * std::min(progress, 1.0)));
}

namespace {

// What every rank of a distributed run must agree on: the model, the settings, the data, where it
// starts (distributed.h, joinGroup). One "name=value" a line.
std::string handshake(Model& model, const TrainConfig& c, const std::string& dataFingerprint, int64_t startEpoch) {
  std::ostringstream out;
  int64_t numbers = 0;
  for (const auto& p : model.net()->parameters()) numbers += p.numel();
  out << "model=" << choiceName(model.shape().tower) << " " << choiceName(model.loss()) << ", " << numbers
      << " parameters\n";
  out << "device=" << model.device().type() << "\n";
  out << "data=" << dataFingerprint << "\n";
  out << "start epoch=" << startEpoch << "\n";
  out << "epochs=" << c.epochs << "\nbatch size=" << c.batchSize << "\nseed=" << c.seed << "\n";
  out << "pairs=" << choiceName(c.pairs) << "\nmining=" << choiceName(c.mining) << "\n";
  out << "optimizer=" << choiceName(c.optimizer) << "\nlr=" << jsonNumber(c.lr)
      << "\nlr schedule=" << choiceName(c.lrSchedule) << "\nwarmup=" << jsonNumber(c.warmup)
      << "\nweight decay=" << jsonNumber(c.weightDecay) << "\nmomentum=" << jsonNumber(c.momentum) << "\n";
  out << "precision=" << choiceName(c.precision.value_or(model.precision())) << "\n";
  out << "freeze stages=" << c.freezeStages << "\nsave every=" << c.saveEvery << "\n";
  const AugmentConfig& a = c.augment;
  out << "augment=crop " << jsonNumber(a.cropScaleMin) << "-" << jsonNumber(a.cropScaleMax) << " ratio "
      << jsonNumber(a.ratioMin) << "-" << jsonNumber(a.ratioMax) << " flip " << a.flip << " rotate "
      << jsonNumber(a.rotate) << " translate " << jsonNumber(a.translate) << " scale " << jsonNumber(a.scaleMin) << "-"
      << jsonNumber(a.scaleMax) << " shear " << jsonNumber(a.shear) << " brightness " << jsonNumber(a.brightness)
      << " contrast " << jsonNumber(a.contrast) << "\n";
  return out.str();
}

}  // namespace

std::string metricsJson(const EpochMetrics& m) {
  return "{\"epoch\":" + std::to_string(m.epoch) + ",\"trainLoss\":" + jsonNumber(m.trainLoss) +
         ",\"trainAccuracy\":" + jsonNumber(m.trainAccuracy) + ",\"testLoss\":" + jsonNumber(m.testLoss) +
         ",\"testAccuracy\":" + jsonNumber(m.testAccuracy) + ",\"auc\":" + jsonNumber(m.auc) +
         ",\"threshold\":" + jsonNumber(m.threshold) + ",\"seconds\":" + jsonNumber(m.seconds) +
         ",\"pairsPerSecond\":" + jsonNumber(m.pairsPerSecond) + "}";
}

TrainOutcome trainModel(Model& model, const ImageData& train, const ImageData& test, const TrainConfig& c,
                        const TrainHooks& hooks, int64_t startEpoch, const OptimizerSnapshot* resume) {
  if (c.threads > 0) model.setThreads(c.threads);
  if (c.precision.has_value()) model.setPrecision(*c.precision);
  const TrainingRunCount counted;  // models on the default thread count share the CPUs between runs
  model.useThreads();              // per thread with OpenMP: set it on the training thread
  checkAugmentConfig(c.augment);
  if (c.cudaGraph) checkCudaGraphs(model.device());
  const std::string fingerprint = dataFingerprint(train, test);
  if (!c.expectedDataFingerprint.empty() && c.expectedDataFingerprint != fingerprint) {
    throw InvalidArgumentError(
        "the data is not the data the checkpoint was trained on (its images, labels or classes differ): resume with "
        "the same data, or start a new run");
  }
  model.setMetadata({{"data_fingerprint", fingerprint}});
  // cuDNN autotuning: the batch shape is fixed, so the fastest algorithm found once is reused.
  if (model.device().is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  std::unique_ptr<Group> group;
  if (c.distributed.has_value() && c.distributed->worldSize > 1) {
    if (c.cudaGraph) throw UnsupportedError("cudaGraph is not supported in distributed training yet");
    group = joinGroup(*c.distributed, model.device(), handshake(model, c, fingerprint, startEpoch));
  }
  Trainer trainer(model, train, test, c, hooks, group.get());
  return trainer.run(startEpoch, resume);
}

}  // namespace siamese::core
