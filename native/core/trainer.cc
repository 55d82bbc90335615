#include "trainer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <type_traits>

#include "errors.h"
#include "evaluate.h"
#include "random.h"

namespace siamese::core {

namespace {

using Clock = std::chrono::steady_clock;
namespace F = torch::nn::functional;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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
  if (c.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(model.net()->parameters(),
                                                torch::optim::AdamOptions(c.lr).weight_decay(c.weightDecay));
  }
  if (c.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        model.net()->parameters(), torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weightDecay));
  }
  throw InvalidArgumentError("unknown optimizer \"" + c.optimizer + "\"");
}

OptimizerSnapshot snapshot(Model& model, torch::optim::Optimizer& optimizer, const TrainConfig& c) {
  OptimizerSnapshot s;
  s.kind = c.optimizer;
  auto& state = optimizer.state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  int64_t step = 0;
  for (const auto& item : model.net()->named_parameters()) {
    const auto it = state.find(stateKey<Key>(item.value()));
    if (it == state.end()) continue;
    if (c.optimizer == "adam") {
      const auto& adam = static_cast<const torch::optim::AdamParamState&>(*it->second);
      s.tensors[item.key() + ".exp_avg"] = adam.exp_avg();
      s.tensors[item.key() + ".exp_avg_sq"] = adam.exp_avg_sq();
      step = adam.step();
    } else {
      const auto& sgd = static_cast<const torch::optim::SGDParamState&>(*it->second);
      if (sgd.momentum_buffer().defined()) s.tensors[item.key() + ".momentum_buffer"] = sgd.momentum_buffer();
    }
  }
  s.settings["step"] = std::to_string(step);
  return s;
}

void restore(Model& model, torch::optim::Optimizer& optimizer, const TrainConfig& c, const OptimizerSnapshot& s) {
  if (s.kind != c.optimizer) {
    throw InvalidArgumentError("the checkpoint was trained with " + s.kind + ", not " + c.optimizer);
  }
  auto& state = optimizer.state();
  using Key = typename std::decay_t<decltype(state)>::key_type;
  const auto stepIt = s.settings.find("step");
  const int64_t step = stepIt == s.settings.end() ? 0 : std::stoll(stepIt->second);
  const auto device = model.device();
  for (const auto& item : model.net()->named_parameters()) {
    const auto tensor = [&](const std::string& suffix) -> torch::Tensor {
      const auto it = s.tensors.find(item.key() + suffix);
      return it == s.tensors.end() ? torch::Tensor() : it->second.to(device);
    };
    if (c.optimizer == "adam") {
      auto avg = tensor(".exp_avg");
      auto avgSq = tensor(".exp_avg_sq");
      if (!avg.defined() || !avgSq.defined()) continue;
      auto st = std::make_unique<torch::optim::AdamParamState>();
      st->step(step);
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
int64_t pairsDecidedRight(Model& model, const torch::Tensor& a, const torch::Tensor& p, const torch::Tensor& n) {
  torch::NoGradGuard noGrad;
  if (model.config().loss == Loss::PairCE) {
    return (model.net()->head(a, p).argmax(1) == 1).sum().item<int64_t>() +
           (model.net()->head(a, n).argmax(1) == 0).sum().item<int64_t>();
  }
  return 2 * (F::pairwise_distance(a, p) < F::pairwise_distance(a, n)).sum().item<int64_t>();
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

}  // namespace

Mining parseMining(const std::string& name) {
  if (name == "none") return Mining::None;
  if (name == "batch-hard") return Mining::BatchHard;
  if (name == "semi-hard") return Mining::SemiHard;
  throw InvalidArgumentError("unknown mining \"" + name + "\"");
}

TrainOutcome trainModel(Model& model, const ImageData& train, const ImageData& test, const TrainConfig& c,
                        const TrainHooks& hooks, int64_t startEpoch, const OptimizerSnapshot* resume) {
  if (c.threads > 0) model.setThreads(c.threads);
  model.useThreads();  // per thread with OpenMP: set it on the training thread
  const auto device = model.device();
  // cuDNN autotuning: the batch shape is fixed, so the fastest algorithm found once is reused.
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  const Normalization norm = model.config().norm;
  const bool mined = model.config().loss == Loss::Triplet && c.mining != Mining::None;

  const ClassIndex trainIndex(train.labels.data(), train.labels.size(), train.numClasses);
  const ClassIndex testIndex(test.labels.data(), test.labels.size(), test.numClasses);
  const Triplets testTriplets = balancedTriplets(testIndex, c.testSeed, 0);
  const torch::Tensor trainImages = train.images.to(device);
  const torch::Tensor trainLabels = torch::tensor(train.labels, torch::kLong).to(device);
  Triplets reference;
  if (!mined && c.pairs == "reference") reference = referenceTriplets(trainIndex, c.seed);

  // Class-balanced batches for mining: P classes (at most 16), K images each, P * K <= batch size.
  int classesPerBatch = 0;
  int imagesPerClass = 0;
  if (mined) {
    int eligible = 0;
    for (int k = 0; k < trainIndex.numClasses(); ++k) eligible += trainIndex.members(k).size() >= 2;
    classesPerBatch = std::min(eligible, 16);
    imagesPerClass = static_cast<int>(std::max<int64_t>(2, c.batchSize / std::max(classesPerBatch, 1)));
  }

  auto optimizer = makeOptimizer(model, c);
  if (resume != nullptr) restore(model, *optimizer, c, *resume);
  if (!c.outDir.empty()) std::filesystem::create_directories(c.outDir);

  // NHWC weights while training, NCHW again afterwards however training ends. The gradients go
  // too: the next run starts from zero anyway, and kept, they doubled a trained model's memory.
  struct TrainingLayout {
    Model& model;
    explicit TrainingLayout(Model& m) : model(m) { model.useTrainingLayout(true); }
    ~TrainingLayout() {
      try {
        model.useTrainingLayout(false);
      } catch (...) {
        // Out of memory for the copy: the weights stay NHWC, which is slower, never wrong.
      }
      for (auto& parameter : model.net()->parameters()) parameter.mutable_grad().reset();
    }
  } layout(model);

  TrainOutcome outcome;
  model.net()->train();
  for (int64_t epoch = startEpoch + 1; epoch <= c.epochs; ++epoch) {
    const auto epochStart = Clock::now();
    const auto epochIndex = static_cast<uint64_t>(epoch - 1);
    Triplets triplets;
    std::vector<int64_t> order;
    std::vector<int64_t> batchesFlat;
    int64_t batches = 0;
    if (mined) {
      batchesFlat = classBalancedBatches(trainIndex, classesPerBatch, imagesPerClass, c.seed, epochIndex);
      batches = static_cast<int64_t>(batchesFlat.size()) / (classesPerBatch * imagesPerClass);
    } else {
      triplets = c.pairs == "reference" ? reference : balancedTriplets(trainIndex, c.seed, epochIndex);
      order = epochOrder(triplets.size(), c.seed, epochIndex);
      batches = (static_cast<int64_t>(triplets.size()) + c.batchSize - 1) / c.batchSize;
    }

    double lossSum = 0;
    int64_t pairsDone = 0;
    int64_t pairsRight = 0;
    auto lastReport = Clock::now();
    for (int64_t b = 0; b < batches; ++b) {
      if (hooks.stop != nullptr && hooks.stop->load()) {
        outcome.stopped = true;
        return outcome;
      }
      torch::Tensor loss;
      int64_t pairs = 0;
      if (mined) {
        const int64_t per = classesPerBatch * imagesPerClass;
        const auto begin = batchesFlat.begin() + b * per;
        const auto indices = torch::tensor(std::vector<int64_t>(begin, begin + per), torch::kLong).to(device);
        const auto embeddings = model.net()->embed(gatherNormalized(trainImages, indices, norm));
        const auto labels = trainLabels.index_select(0, indices);
        loss = minedTripletLoss(embeddings, labels, model.config().margin, c.mining);
        pairs = 2 * per;
        pairsRight += 2 * hardestOrderedRight(embeddings.detach(), labels);
      } else {
        const size_t begin = static_cast<size_t>(b * c.batchSize);
        const size_t end = std::min(triplets.size(), begin + static_cast<size_t>(c.batchSize));
        // One batched forward pass for anchors, positives and negatives together.
        const auto embeddings = model.net()->embed(tripletBatch(trainImages, triplets, order, begin, end, norm));
        const auto parts = embeddings.chunk(3);
        loss = tripletLoss(model, parts[0], parts[1], parts[2]);
        pairs = 2 * static_cast<int64_t>(end - begin);
        pairsRight += pairsDecidedRight(model, parts[0].detach(), parts[1].detach(), parts[2].detach());
      }
      optimizer->zero_grad();
      loss.backward();
      {
        std::lock_guard<std::mutex> lock(model.weightsMutex());
        optimizer->step();
      }
      lossSum += loss.item<double>();
      pairsDone += pairs;
      if (hooks.onBatch && (secondsSince(lastReport) >= 0.1 || b + 1 == batches)) {
        lastReport = Clock::now();
        const double elapsed = secondsSince(epochStart);
        BatchProgress p;
        p.epoch = epoch;
        p.epochs = c.epochs;
        p.batch = b + 1;
        p.batches = batches;
        p.loss = loss.item<double>();
        p.pairsPerSecond = static_cast<double>(pairsDone) / std::max(elapsed, 1e-9);
        p.etaSeconds = elapsed / static_cast<double>(b + 1) * static_cast<double>(batches - b - 1);
        hooks.onBatch(p);
      }
    }
    const double trainSeconds = secondsSince(epochStart);

    // Evaluate in the inference layout, as evaluate() and predict() do: the same numbers, and NHWC
    // weights make small inference batches several times slower.
    model.net()->eval();
    model.useTrainingLayout(false);
    const torch::Tensor testEmbeddings = model.embedImages(test.images);
    const PairMetrics m = evaluatePairs(model, testEmbeddings, testTriplets);
    model.useTrainingLayout(true);
    model.net()->train();
    if (model.config().loss != Loss::PairCE) model.setThreshold(m.threshold);

    EpochMetrics metrics;
    metrics.epoch = epoch;
    metrics.trainLoss = lossSum / static_cast<double>(std::max<int64_t>(batches, 1));
    metrics.trainAccuracy = static_cast<double>(pairsRight) / static_cast<double>(std::max<int64_t>(pairsDone, 1));
    metrics.testLoss = m.loss;
    metrics.testAccuracy = m.accuracy;
    metrics.auc = m.auc;
    metrics.threshold = m.threshold;
    metrics.seconds = secondsSince(epochStart);
    metrics.pairsPerSecond = static_cast<double>(pairsDone) / std::max(trainSeconds, 1e-9);
    outcome.history.push_back(metrics);
    if (hooks.onEpoch) hooks.onEpoch(metrics);

    if (!c.outDir.empty() && c.saveEvery > 0 && epoch % c.saveEvery == 0) {
      const std::string path =
          (std::filesystem::path(c.outDir) / ("checkpoint-epoch-" + std::to_string(epoch) + ".safetensors")).string();
      OptimizerSnapshot s = snapshot(model, *optimizer, c);
      s.settings["lr"] = std::to_string(c.lr);
      saveCheckpointFile(model, s, path, {{"epoch", std::to_string(epoch)}});
      if (hooks.onFile) hooks.onFile("checkpoint", path);
    }
  }
  if (!c.outDir.empty()) {
    const std::string path = (std::filesystem::path(c.outDir) / "model.safetensors").string();
    saveModelFile(model, path, {{"epoch", std::to_string(c.epochs)}});
    if (hooks.onFile) hooks.onFile("model", path);
  }
  return outcome;
}

}  // namespace siamese::core
