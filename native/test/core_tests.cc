// Tests of native/core without Node: a plain executable (also the base of the sanitizer runs).
// Prints "N passed, N failed" and exits non-zero on any failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "../core/batch.h"
#include "../core/contract.h"
#include "../core/cpu_allocator.h"
#include "../core/cpus.h"
#include "../core/dataset.h"
#include "../core/distributed.h"
#include "../core/errors.h"
#include "../core/evaluate.h"
#include "../core/gallery_index.h"
#include "../core/inference.h"
#include "../core/json.h"
#include "../core/metrics.h"
#include "../core/model.h"
#include "../core/model_file.h"
#include "../core/network.h"
#include "../core/precision.h"
#include "../core/random.h"
#include "../core/safetensors.h"
#include "../core/sampling.h"
#include "../core/trainer.h"
#include "check.h"

namespace {

using siamese::test::check;
using siamese::test::checkThrows;

using namespace siamese::core;

void testRngIsPortable() {
  // Pinned: std::mt19937_64 is fixed by the standard and below() is ours, so these never change.
  Rng a(42, 7);
  Rng b(42, 7);
  std::vector<uint64_t> first;
  for (int i = 0; i < 5; ++i) first.push_back(a.below(1000));
  bool same = true;
  for (int i = 0; i < 5; ++i) same = same && b.below(1000) == first[static_cast<size_t>(i)];
  check(same, "same seed and stream, same numbers");
  check(first == std::vector<uint64_t>({458, 784, 168, 43, 914}), "the pinned sequence of Rng(42, 7)");
  Rng c(42, 8);
  bool differs = false;
  for (int i = 0; i < 5; ++i) differs = differs || c.below(1000) != first[static_cast<size_t>(i)];
  check(differs, "another stream, other numbers");
  // Uniformity of between(0, 8) over 90,000 draws: each value near 10,000.
  Rng d(1);
  std::vector<int> counts(9, 0);
  for (int i = 0; i < 90000; ++i) counts[static_cast<size_t>(d.between(0, 8))]++;
  bool uniform = true;
  for (int n : counts) uniform = uniform && std::abs(n - 10000) < 500;
  check(uniform, "between() is uniform");
}

void testGatherNormalized() {
  auto images = torch::tensor({0, 255, 128, 51, 10, 20, 30, 40}, torch::kUInt8).reshape({2, 2, 2, 1});
  const Normalization norm{{0.5}, {0.25}};
  auto batch = gatherNormalized(images, torch::tensor({1, 0, 1}, torch::kLong), norm);
  check(batch.sizes() == torch::IntArrayRef({3, 1, 2, 2}), "batch shape [B, 1, H, W]");
  check(batch.scalar_type() == torch::kFloat, "float32");
  const float expected = static_cast<float>((10 / 255.0 - 0.5) / 0.25);
  check(std::abs(batch[0][0][0][0].item<float>() - expected) < 1e-6f, "(x / 255 - mean) / std");
  check(std::abs(batch[1][0][0][1].item<float>() - 2.0f) < 1e-6f, "255 -> (1 - 0.5) / 0.25 = 2");

  // Colour: interleaved [N, H, W, 3] -> [B, 3, H, W], each channel with its own mean and std.
  auto colour = torch::arange(2 * 2 * 3 * 3, torch::kInt).to(torch::kUInt8).reshape({2, 2, 3, 3});  // N=2, H=2, W=3
  const Normalization perChannel{{0.1, 0.2, 0.3}, {0.5, 0.25, 0.125}};
  auto rgb = gatherNormalized(colour, torch::tensor({1}, torch::kLong), perChannel);
  check(rgb.sizes() == torch::IntArrayRef({1, 3, 2, 3}), "colour batch shape [B, 3, H, W]");
  bool right = true;
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 2; ++y) {
      for (int x = 0; x < 3; ++x) {
        const double pixel = colour[1][y][x][c].item<int>();
        const double want = (pixel / 255.0 - perChannel.mean[c]) / perChannel.std[c];
        right = right && std::abs(rgb[0][c][y][x].item<float>() - want) < 1e-5;
      }
    }
  }
  check(right, "channel c of pixel (y, x) is (x / 255 - mean[c]) / std[c]");
  checkThrows<c10::Error>([&] { gatherNormalized(colour, torch::tensor({0}, torch::kLong), norm); },
                          "a normalisation of another channel count is refused");
}

void testTripletBatch() {
  auto images = torch::arange(6, torch::kUInt8).reshape({6, 1, 1, 1});
  Triplets t;
  t.anchor = {0, 1};
  t.positive = {2, 3};
  t.negative = {4, 5};
  const Normalization identity{{0.0}, {1.0 / 255.0}};  // x' = x
  auto batch = tripletBatch(images, t, {1, 0}, 0, 2, identity);
  std::vector<float> got(batch.data_ptr<float>(), batch.data_ptr<float>() + batch.numel());
  check(got == std::vector<float>({1, 0, 3, 2, 5, 4}), "anchors, then positives, then negatives, in visit order");
  checkThrows<InvalidArgumentError>(
      [&] {
        tripletBatch(images, t, {0, 1}, 1, 3, identity);
      },
      "out-of-range batch refused");
}

void testSamplersAgainstLabels() {
  std::vector<int32_t> labels;
  for (int i = 0; i < 700 * 3; ++i) labels.push_back(i % 3);
  ClassIndex index(labels.data(), labels.size(), 3);
  const Triplets ref = referenceTriplets(index, 9);
  check(ref.size() == 1500, "reference: 500 anchors a class");
  bool ok = true;
  for (size_t i = 0; i < ref.size(); ++i) {
    const int c = static_cast<int>(i / 500);
    ok =
        ok && index.label(ref.anchor[i]) == c && index.label(ref.positive[i]) == c && index.label(ref.negative[i]) != c;
  }
  check(ok, "reference: classes of anchors, positives and negatives");
  checkThrows<InvalidArgumentError>([&] { ClassIndex bad(labels.data(), labels.size(), 2); },
                                    "labels beyond numClasses refused");
  const auto order = epochOrder(10, 1, 0);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  check(sorted == std::vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}), "epochOrder is a permutation");
  check(epochOrder(10, 1, 1) != order, "epochOrder changes with the epoch");
}

void testJson() {
  const Json v = parseJson(R"( {"a": [1, -2.5e3, true, null], "b": "x\u00e9\n", "c": {}} )");
  check(v.kind == Json::Kind::Object && v.object.size() == 3, "object with three keys");
  const Json* a = v.find("a");
  check(a != nullptr && a->array.size() == 4 && a->array[0].isInteger && a->array[0].integer == 1, "integers");
  check(!a->array[1].isInteger && a->array[1].number == -2500, "exponents");
  check(v.find("b")->string == "x\xc3\xa9\n", "escapes and UTF-8");
  for (const char* bad :
       {"", "{", "{\"a\":}", "[1,]", "{\"a\":1,\"a\":2}", "\"\\ud800\"", "01", "1 2", "nul", "\"\x01\"", "1e999"}) {
    checkThrows<std::invalid_argument>([&] { parseJson(bad); }, std::string("invalid JSON refused: ") + bad);
  }
  checkThrows<std::invalid_argument>([&] { parseJson(std::string(100, '[') + std::string(100, ']')); },
                                     "depth is bounded");
  // Found with the fuzz harness on large inputs: 0.5 MB of "0," parsed to 30 MB of values (100 MB of header: 6 GB), and
  // duplicate keys were found by a quadratic scan (1 MB of keys: 8 s).
  std::string zeros = "[0";
  for (int i = 0; i < (1 << 18); ++i) zeros += ",0";
  checkThrows<std::invalid_argument>([&] { parseJson(zeros + "]"); }, "the number of values is bounded");
  std::string keys = "{\"k0\":0";
  for (int i = 1; i < 200000; ++i) keys += ",\"k" + std::to_string(i) + "\":0";
  check(parseJson(keys + "}").object.size() == 200000, "200,000 keys parse (in linear time)");
  checkThrows<std::invalid_argument>([&] { parseJson(keys + ",\"k7\":1}"); }, "a duplicate among many keys refused");
  check(jsonQuote("a\"b\\\x01") == "\"a\\\"b\\\\\\u0001\"", "quoting");
}

void testRoc() {
  const RocSummary perfect = rocSummary({0.9, 0.8, 0.2, 0.1}, {1, 1, 0, 0});
  check(perfect.auc == 1.0 && perfect.bestAccuracy == 1.0, "separable scores: AUC 1, accuracy 1");
  check(perfect.bestThreshold > 0.2 && perfect.bestThreshold < 0.8, "threshold between the classes");
  const RocSummary ties = rocSummary({0.5, 0.5, 0.5, 0.5}, {1, 0, 1, 0});
  check(ties.auc == 0.5, "ties count half");
  const RocSummary inverted = rocSummary({0.1, 0.2, 0.8, 0.9}, {1, 1, 0, 0});
  check(inverted.auc == 0.0, "inverted scores: AUC 0");
}

}  // namespace

void testStateShapesMatchTheNetwork() {
  // loadModelFile checks a file against stateShapes() before building the network.
  const std::vector<NetworkShape> shapes{{Tower::Reference, 28, 28, 1, 512}, {Tower::Reference, 24, 40, 3, 7},
                                         {Tower::Reference, 64, 32, 1, 128}, {Tower::Conv4, 16, 16, 1, 8},
                                         {Tower::Conv4, 84, 60, 3, 64},      {Tower::ResNet18, 16, 16, 3, 32},
                                         {Tower::ResNet18, 64, 48, 1, 128},  {Tower::ResNet18, 224, 224, 3, 512}};
  for (const NetworkShape& shape : shapes) {
    SiameseNet net(shape);
    using State = std::map<std::string, std::tuple<std::vector<int64_t>, bool, torch::Dtype>>;
    State fromNet;
    for (const auto& item : net->named_parameters())
      fromNet[item.key()] = {item.value().sizes().vec(), true, item.value().scalar_type()};
    for (const auto& item : net->named_buffers())
      fromNet[item.key()] = {item.value().sizes().vec(), false, item.value().scalar_type()};
    State computed;
    for (const auto& t : stateShapes(shape)) computed[t.name] = {t.shape, t.parameter, t.dtype};
    check(fromNet == computed, std::string("stateShapes() agrees with the network for ") + choiceName(shape.tower) +
                                   " " + std::to_string(shape.width) + "x" + std::to_string(shape.height) + "x" +
                                   std::to_string(shape.channels) + ", embedding " +
                                   std::to_string(shape.embeddingSize));
    const auto out = net->embed(torch::randn({2, shape.channels, shape.height, shape.width}));
    check(out.sizes() == torch::IntArrayRef({2, shape.embeddingSize}), "the tower gives [N, E]");
  }
  // torchvision's ResNet-18 has 11,689,512 parameters with its 1000-class fc (512 * 1000 + 1000).
  int64_t count = 0;
  for (const auto& t : stateShapes({Tower::ResNet18, 224, 224, 3, 1000})) {
    if (t.parameter && t.name.rfind("linear2", 0) != 0) count += c10::multiply_integers(t.shape);
  }
  check(count == 11689512, "resnet18 has torchvision's parameter count (" + std::to_string(count) + ")");
  checkThrows<InvalidArgumentError>(
      [] {
        SiameseNet(NetworkShape{Tower::Reference, 16, 16, 1, 8});
      },
      "the reference tower refuses 16x16");
  checkThrows<InvalidArgumentError>(
      [] {
        SiameseNet(NetworkShape{Tower::Conv4, 15, 16, 1, 8});
      },
      "conv4 refuses a side under 16");
  checkThrows<InvalidArgumentError>(
      [] {
        SiameseNet(NetworkShape{Tower::Conv4, 16, 16, 2, 8});
      },
      "2 channels are refused");
}

// resnet18's inference with BatchNorm folded into its convolutions gives embed()'s values, and is
// made again when a weight or a running statistic changes.
void testFoldedInference() {
  torch::manual_seed(11);
  SiameseNet net(NetworkShape{Tower::ResNet18, 48, 40, 3, 24});
  net->train();
  net->embed(torch::randn({6, 3, 40, 48}));  // running statistics away from (0, 1)
  net->eval();
  const auto images = torch::randn({5, 3, 40, 48});
  torch::InferenceMode inference;
  const auto plain = net->embed(images);
  const auto folded = net->embedForInference(images);
  check(folded.sizes() == plain.sizes(), "folded inference: the same shape");
  check(torch::allclose(folded, plain, 1e-4, 1e-4), "folded inference: embed()'s values (largest difference " +
                                                        std::to_string((folded - plain).abs().max().item<double>()) +
                                                        ")");
  check(torch::allclose(net->embedForInference(images.narrow(0, 1, 1)), plain.narrow(0, 1, 1), 1e-4, 1e-4),
        "folded inference: one image");
  {
    // A change in place (as an optimiser step or a file's copy makes): folded again.
    auto& mean = net->named_buffers()["layer2.0.bn1.running_mean"];
    mean.add_(0.5);
  }
  const auto changed = net->embed(images);
  check(!torch::allclose(changed, plain, 1e-4, 1e-4), "a changed running mean changes the embeddings");
  check(torch::allclose(net->embedForInference(images), changed, 1e-4, 1e-4), "folded inference follows the change");
}

// The reference tower runs a grey first layer NHWC in inference (network.cc): the embeddings must
// be those of the plain NCHW layers, bit for bit, whatever the batch size.
void testGreyFirstLayerLayout() {
  torch::manual_seed(12);
  SiameseNet net(NetworkShape{});
  if (!net->usesOneDnn()) return;
  net->eval();
  torch::InferenceMode inference;
  auto modules = net->named_modules();
  auto& conv1 = *modules["conv1"]->as<torch::nn::Conv2d>();
  auto& conv2 = *modules["conv2"]->as<torch::nn::Conv2d>();
  auto& conv3 = *modules["conv3"]->as<torch::nn::Conv2d>();
  auto& linear1 = *modules["linear1"]->as<torch::nn::Linear>();
  for (const int64_t n : {1, 7, 192}) {
    const auto images = torch::randn({n, 1, 28, 28});
    auto x = torch::max_pool2d(conv1.forward(images).relu_(), 2);
    x = conv3.forward(conv2.forward(x).relu_()).relu_();
    // linear1 as network.cc computes it: a whole-map convolution, a single image as two.
    const auto kernel = linear1.weight.view({linear1.weight.size(0), x.size(1), x.size(2), x.size(3)});
    auto plain = torch::conv2d(n == 1 ? x.repeat({2, 1, 1, 1}) : x, kernel, linear1.bias).relu_().flatten(1);
    if (n == 1) plain = plain.narrow(0, 0, 1);
    check(torch::equal(net->embed(images), plain),
          "the NHWC grey first layer is bit-identical, batch " + std::to_string(n));
  }
}

// The reference tower's inference path (conv2, conv3 and linear1 on weights reordered once for
// oneDNN) gives embed()'s embeddings bit for bit for two images or more, a lone image its row of a
// batch, for grey and colour, square and not; and it follows a change to the weights. In bfloat16
// (where the CPU has it) the same, against embed() under autocast.
void checkReferenceFoldedInference(Precision precision) {
  const std::string in = precision == Precision::Bf16 ? " in bf16, " : ", ";
  for (const auto& shape : {NetworkShape{}, NetworkShape{Tower::Reference, 36, 28, 3, 16}}) {
    SiameseNet net(shape);
    if (!net->usesOneDnn()) return;
    net->eval();
    torch::InferenceMode inference;
    const std::string what = in + std::to_string(shape.width) + "x" + std::to_string(shape.height) + "x" +
                             std::to_string(shape.channels) + ", batch ";
    const auto batch = torch::randn({64, shape.channels, shape.height, shape.width});
    const ComputeIn computeIn(precision, torch::kCPU);
    const auto whole = net->embedForInference(batch);
    check(whole.scalar_type() == (precision == Precision::Bf16 ? torch::kBFloat16 : torch::kFloat),
          "inference computes in the precision asked" + what + "64");
    for (const int64_t n : {2, 7, 64}) {
      const auto images = batch.narrow(0, 0, n);
      check(torch::equal(net->embedForInference(images), net->embed(images)),
            "reference inference path is embed() bit for bit" + what + std::to_string(n));
      check(torch::equal(net->embedForInference(images), whole.narrow(0, 0, n)),
            "and does not depend on the batch" + what + std::to_string(n));
    }
    check(torch::equal(net->embedForInference(batch.narrow(0, 5, 1)), whole.narrow(0, 5, 1)),
          "a lone image gets its row of the batch" + what + "1");
    {
      torch::NoGradGuard noGrad;
      net->named_parameters()[precision == Precision::Bf16 ? "linear1.weight" : "conv3.weight"].mul_(1.5);
    }
    check(torch::equal(net->embedForInference(batch), net->embed(batch)), "and follows a weight change" + what + "64");
    check(!torch::equal(net->embedForInference(batch), whole), "which changes the embeddings" + what + "64");
  }
}

void testReferenceFoldedInference() {
  torch::manual_seed(13);
  checkReferenceFoldedInference(Precision::Fp32);
  try {
    checkPrecision(Precision::Bf16, torch::kCPU);
  } catch (const UnsupportedError&) {
    std::printf("skip: this CPU has no bfloat16 (the reference tower's bf16 inference path)\n");
    return;
  }
  checkReferenceFoldedInference(Precision::Bf16);
  // fp32 after bf16 and back: each precision gets its own weights, not the other's cached ones.
  SiameseNet net(NetworkShape{});
  net->eval();
  torch::InferenceMode inference;
  const auto images = torch::randn({8, 1, 28, 28});
  const auto fp32 = net->embedForInference(images);
  torch::Tensor bf16;
  {
    const ComputeIn lower(Precision::Bf16, torch::kCPU);
    bf16 = net->embedForInference(images);
  }
  check(torch::equal(net->embedForInference(images), fp32), "fp32 inference after bf16 is fp32's again");
  check(fp32.scalar_type() == torch::kFloat && !torch::equal(bf16.to(torch::kFloat), fp32) &&
            torch::allclose(bf16.to(torch::kFloat), fp32, 0.05, 0.05),
        "and bf16's embeddings are close to fp32's, not equal");
}

void testBatchNormModesAndFreezing() {
  torch::manual_seed(3);
  SiameseNet net(NetworkShape{Tower::Conv4, 16, 16, 3, 8});
  const auto images = torch::randn({6, 3, 16, 16}) * 3 + 1;
  const auto runningMean = [&] { return net->named_buffers()["layer1.bn.running_mean"].clone(); };
  net->eval();
  const auto before = runningMean();
  const auto a = net->embed(images);
  const auto b = net->embed(images);
  check(torch::equal(runningMean(), before), "evaluation mode leaves the running statistics alone");
  check(torch::equal(a, b), "evaluation mode is deterministic");
  check(torch::allclose(net->embed(images.narrow(0, 0, 1)), a.narrow(0, 0, 1), 1e-4, 1e-5),
        "evaluation mode: an image's embedding does not depend on its batch");
  net->train();
  net->embed(images);
  check(!torch::equal(runningMean(), before), "training mode updates the running statistics");
  check(net->named_buffers()["layer1.bn.num_batches_tracked"].item<int64_t>() == 1, "and counts the batch");

  net->freezeStages(2);
  const auto frozenMean = runningMean();
  const auto layer3Mean = net->named_buffers()["layer3.bn.running_mean"].clone();
  net->train();
  const auto out = net->embed(images);
  check(torch::equal(runningMean(), frozenMean), "a frozen stage's BatchNorm keeps its statistics in training");
  check(!torch::equal(net->named_buffers()["layer3.bn.running_mean"], layer3Mean), "an unfrozen stage's does not");
  out.sum().backward();
  const auto params = net->named_parameters();
  check(!params["layer1.conv.weight"].grad().defined() && !params["layer2.bn.weight"].grad().defined(),
        "frozen stages get no gradients");
  check(params["layer3.conv.weight"].grad().defined() && params["fc.weight"].grad().defined(),
        "the stages above and the embedding layer do");
  net->freezeStages(0);
  check(params["layer1.conv.weight"].requires_grad(), "unfreezing gives the gradients back");
  checkThrows<InvalidArgumentError>([&] { net->freezeStages(5); }, "conv4 has 4 stages to freeze");
}

void testContract() {
  check(parseChoice<Loss>("triplet") == Loss::Triplet && choiceName(Loss::Contrastive) == std::string("contrastive"),
        "loss names both ways");
  check(parseChoice<Mining>("semi-hard") == Mining::SemiHard && parseChoice<Optimizer>("sgd") == Optimizer::Sgd &&
            parseChoice<PairScheme>("reference") == PairScheme::Reference,
        "mining, optimizer and pair scheme names");
  checkThrows<InvalidArgumentError>([] { parseChoice<Loss>("hinge"); }, "an unknown name is refused");
  bool roundTrip = true;
  for (const auto& [value, name] : Choices<Mining>::values) roundTrip = roundTrip && parseChoice<Mining>(name) == value;
  check(roundTrip, "every mining name parses back to its value");
}

// A small labelled set: `perClass` images of each of `classes` classes, each class a shade of gray.
ImageData shadedSet(int classes, int perClass, int64_t side = 28) {
  ImageData set;
  set.images = torch::empty({classes * perClass, side, side, 1}, torch::kUInt8);
  for (int c = 0; c < classes; ++c) {
    for (int i = 0; i < perClass; ++i) {
      set.images[c * perClass + i].fill_(20 + 40 * c + i);
      set.labels.push_back(c);
    }
  }
  set.numClasses = classes;
  return set;
}

void testDataFingerprint() {
  const ImageData train = shadedSet(3, 4);
  const ImageData test = shadedSet(3, 2);
  const std::string f = dataFingerprint(train, test);
  ImageData grey3d = shadedSet(3, 4);
  grey3d.images = grey3d.images.squeeze(3);
  ImageData test3d = shadedSet(3, 2);
  test3d.images = test3d.images.squeeze(3);
  check(dataFingerprint(grey3d, test3d) == f,
        "grey [N, H, W, 1] has the fingerprint [N, H, W] had (older checkpoints)");
  check(f.size() == 16 && f == dataFingerprint(shadedSet(3, 4), shadedSet(3, 2)),
        "the same data, the same fingerprint");
  ImageData pixel = shadedSet(3, 4);
  pixel.images[5][27][27][0] = 0;
  check(dataFingerprint(pixel, test) != f, "one pixel changes it");
  ImageData label = shadedSet(3, 4);
  label.labels[0] = 1;
  check(dataFingerprint(label, test) != f, "one label changes it");
  ImageData classes = shadedSet(3, 4);
  classes.numClasses = 4;
  check(dataFingerprint(classes, test) != f, "the class count changes it");
  check(dataFingerprint(test, train) != f, "the splits are not interchangeable");
}

// A model trained with a distance loss (its pairs scored by distance, its classes by prototype).
Model contrastiveModel() {
  ModelConfig config;
  config.loss = Loss::Contrastive;
  return Model(config, torch::kCPU, 3);
}

// Episodes of `ways` x (`shots` + `queries`) images, `count` of them.
EpisodeOptions episodes(int ways, int shots, int queries, int count, uint64_t seed = 0) {
  EpisodeOptions o;
  o.ways = ways;
  o.shots = shots;
  o.queries = queries;
  o.episodes = count;
  o.seed = seed;
  return o;
}

void testInference() {
  Model model(ModelConfig{}, torch::kCPU, 3);
  const ImageData set = shadedSet(3, 3);
  const auto left = set.images.slice(0, 0, 4);
  const auto right = set.images.slice(0, 4, 8);
  const auto p = predictPairs(model, left, right);
  check(p.sizes() == torch::IntArrayRef({4}), "predictPairs: one probability a pair");
  const auto e = model.embedImages(torch::cat({left, right}));
  const auto direct = model.sameProbability(e.slice(0, 0, 4), e.slice(0, 4, 8));
  check(torch::allclose(p, direct), "predictPairs: P(same) of the pairs' embeddings");
  checkThrows<InvalidArgumentError>([&] { predictPairs(model, left, right.slice(0, 0, 3)); }, "unequal sides refused");

  // classScores (pair-ce): per class, the mean P(same) of the query with that class's support images.
  const auto queries = set.images.slice(0, 0, 2);
  const std::vector<int32_t> labels = {0, 1, 1, 2};
  const auto support = set.images.index_select(0, torch::tensor({1, 3, 5, 7}, torch::kLong));
  const auto scores = classScores(model, queries, support, labels, 4);
  check(scores.sizes() == torch::IntArrayRef({2, 4}), "classScores: [queries, classes]");
  bool mean = true;
  for (int64_t q = 0; q < 2; ++q) {
    const auto pq = predictPairs(model, queries[q].unsqueeze(0).expand({4, 28, 28, 1}).contiguous(), support);
    mean = mean && std::abs(scores[q][1].item<float>() - (pq[1].item<float>() + pq[2].item<float>()) / 2) < 1e-5f &&
           std::abs(scores[q][0].item<float>() - pq[0].item<float>()) < 1e-5f;
  }
  check(mean, "classScores: the mean P(same) over a class's examples (pair-ce)");
  check(scores[0][3].item<float>() == -1.0f, "a class without support scores -1");
  checkThrows<InvalidArgumentError>(
      [&] {
        classScores(model, queries, support, {0, 1, 1, 9}, 4);
      },
      "a support label outside the classes refused");

  // A distance loss: P(same) of the query and each class's prototype (mean support embedding).
  Model distanceModel = contrastiveModel();
  const auto dScores = classScores(distanceModel, queries, support, labels, 4);
  const auto es = distanceModel.embedImages(support);
  const auto prototypes = torch::stack({es[0], (es[1] + es[2]) / 2, es[3]});
  const auto eq = distanceModel.embedImages(queries);
  const auto expected =
      distanceModel.sameProbability(eq.repeat_interleave(3, 0), prototypes.repeat({2, 1})).view({2, 3});
  check(torch::allclose(dScores.slice(1, 0, 3), expected, 1e-5, 1e-6) && dScores[1][3].item<float>() == -1.0f,
        "classScores: P(same) with the nearest prototype (distance losses)");

  // PairScorer: the head's logit of same over different, or the negated distance.
  const auto e1 = model.embedImages(set.images.slice(0, 0, 5));
  const auto e2 = model.embedImages(set.images.slice(0, 4, 9));
  const PairScorer scorer(model);
  const auto logits = model.pairScores(e1, e2);
  const auto logit = logits.select(1, 1) - logits.select(1, 0);
  check(torch::allclose(scorer.rows(e1, e2), logit, 1e-4, 1e-5) &&
            torch::allclose(scorer.matrix(e1, e2).diagonal(), logit, 1e-4, 1e-5),
        "PairScorer (pair-ce): the head's logit difference, row by row and as a matrix");
  check(std::abs(scorer.threshold(0.0) - 0.5) < 1e-12, "PairScorer: a logit of 0 is P(same) 0.5");
  const auto all = torch::cat({e1, e2});
  const auto [lo, hi] = scorer.bounds(all);
  const auto every = scorer.matrix(all, all);
  check(every.min().item<double>() >= lo && every.max().item<double>() <= hi, "PairScorer: bounds hold every score");
  const PairScorer distanceScorer(distanceModel);
  // |a|^2 + |b|^2 - 2 a.b cancels for near pairs (e1's last image is e2's first): compared as
  // squares, to a rounding error of the squared norms.
  const double squaredNorms = torch::cat({e1, e2}).pow(2).sum(1).max().item<double>();
  check(torch::allclose(distanceScorer.matrix(e1, e2).pow(2), torch::cdist(e1, e2).pow(2), 1e-4, 1e-5 * squaredNorms) &&
            distanceScorer.threshold(-2.5) == 2.5,
        "PairScorer (distance losses): negated distances; thresholds are distances");

  // evaluateSet: the fixed test pairs of the set, all pairs, retrieval and episodes, from one
  // embedding of each image.
  const ImageData evalSet = shadedSet(4, 5);
  EvaluationOptions options;
  options.episodes.ways = 3;
  options.episodes.episodes = 50;
  const SetEvaluation r = evaluateSet(model, evalSet, options);
  const ClassIndex index(evalSet.labels.data(), evalSet.labels.size(), evalSet.numClasses);
  const auto embeddings = model.embedImages(evalSet.images);
  const PairMetrics pairs = evaluatePairs(model, embeddings, balancedTriplets(index, 0, 0));
  check(r.pairs.pairs == 40 && r.pairs.auc == pairs.auc && r.pairs.accuracy == pairs.accuracy,
        "evaluateSet: the pair metrics of the set's fixed test pairs");
  check(r.fixedPairs.positives == 20 && r.fixedPairs.negatives == 20 && std::abs(r.fixedPairs.auc - pairs.auc) < 0.03,
        "evaluateSet: verification metrics of the same pairs");
  check(r.allPairs && r.allPairs->positives == 4 * 10 && r.allPairs->negatives == 190 - 40,
        "evaluateSet: all 190 pairs of 20 images, 40 of them same");
  check(r.retrieval && r.retrieval->queries == 20, "evaluateSet: every image a retrieval query");
  check(r.episodes && r.episodes->accuracy >= 0 && r.episodes->accuracy <= 1, "evaluateSet: 3-way one-shot accuracy");
  check(evaluateSet(model, evalSet, options).episodes->accuracy == r.episodes->accuracy, "seeded: the same again");
}

// Episodes on embeddings made to order: classes as points on a line.
void testEpisodes() {
  Model model = contrastiveModel();
  const PairScorer scorer(model);
  // Classes 0, 1 and 2 at 0, 10 and 20, each image +-0.1; class 3 at 0.05, on top of class 0.
  std::vector<int32_t> labels;
  std::vector<float> points;
  for (int c = 0; c < 4; ++c) {
    for (int i = 0; i < 6; ++i) {
      labels.push_back(c);
      points.push_back((c == 3 ? 0.05f : 10.0f * static_cast<float>(c)) + 0.1f * static_cast<float>(i % 3 - 1));
    }
  }
  const auto embeddings = torch::tensor(points).view({-1, 1});
  const ClassIndex index(labels.data(), labels.size(), 4);
  EpisodeOptions o = episodes(2, 2, 3, 400, 9);
  const EpisodeResult mixed = episodeAccuracy(scorer, embeddings, index, o);
  check(mixed.accuracy < 0.99 && mixed.accuracy > 0.6 && mixed.ci95 > 0,
        "episodes: classes 0 and 3 confused when drawn together");
  check(episodeAccuracy(scorer, embeddings, index, o).accuracy == mixed.accuracy, "episodes: seeded");
  o.seed = 10;
  check(episodeAccuracy(scorer, embeddings, index, o).accuracy != mixed.accuracy, "episodes: another seed, others");
  // Groups: 0 and 3 never meet when each is in its own group, with one far class each.
  o.classGroups = {0, 0, 1, 1};
  const EpisodeResult grouped = episodeAccuracy(scorer, embeddings, index, o);
  check(grouped.accuracy == 1 && grouped.ci95 == 0, "episodes within groups: classes of one group only");
  o.classGroups = {0, 1, 2, 3};
  checkThrows<InvalidArgumentError>([&] { episodeAccuracy(scorer, embeddings, index, o); },
                                    "no group with two classes: refused");
  o.classGroups.clear();
  o.shots = 5;
  o.queries = 2;
  checkThrows<InvalidArgumentError>([&] { episodeAccuracy(scorer, embeddings, index, o); },
                                    "7 images a class needed, 6 there: refused");
  // Prototype, not nearest neighbour: class 0 at -0.1, 0.1 and -0.3, class 1 at -0.35, 5 and 2.4.
  // Over the 9 equally likely choices of the two queries, the nearest prototype is right for 15
  // of the 18 queries (0.833), the nearest shot for 10 (0.556).
  const auto line = torch::tensor({-0.1f, 0.1f, -0.3f, -0.35f, 5.0f, 2.4f}).view({-1, 1});
  const std::vector<int32_t> two = {0, 0, 0, 1, 1, 1};
  const ClassIndex twoIndex(two.data(), two.size(), 2);
  const double prototypeAccuracy = episodeAccuracy(scorer, line, twoIndex, episodes(2, 2, 1, 4000)).accuracy;
  check(std::abs(prototypeAccuracy - 15.0 / 18) < 0.03, "episodes (distance losses): nearest prototype");
}

// The histogram's metrics against the exact ones on the same scores.
void testScoreHistogram() {
  torch::manual_seed(11);
  const int64_t n = 20000;
  const auto same = torch::rand({n}) < 0.2;
  const auto scores = torch::randn({n}) + same.to(torch::kFloat) * 1.5f;
  std::vector<double> exactScores(static_cast<size_t>(n));
  std::vector<uint8_t> exactSame(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    exactScores[static_cast<size_t>(i)] = scores[i].item<float>();
    exactSame[static_cast<size_t>(i)] = same[i].item<bool>();
  }
  const VerificationMetrics exact = verificationMetrics(exactScores, exactSame);
  ScoreHistogram histogram(scores.min().item<double>() - 1e-3, scores.max().item<double>() + 1e-3);
  histogram.add(scores.slice(0, 0, 7000), same.slice(0, 0, 7000));
  histogram.add(scores.slice(0, 7000), same.slice(0, 7000));
  const VerificationMetrics binned = histogram.metrics();
  check(binned.positives == exact.positives && binned.negatives == exact.negatives, "histogram: every pair counted");
  check(std::abs(binned.auc - exact.auc) < 1e-4 && std::abs(binned.eer - exact.eer) < 1e-3,
        "histogram: AUC and EER as exact");
  bool tars = true;
  for (size_t f = 0; f < kTarFars.size(); ++f) {
    tars = tars && binned.tarAtFar[f].has_value() == exact.tarAtFar[f].has_value() &&
           (!binned.tarAtFar[f] || std::abs(*binned.tarAtFar[f] - *exact.tarAtFar[f]) < 2e-3);
  }
  check(tars, "histogram: TAR at each FAR as exact");
  // At a bin's edge the rates are exact: count the pairs at or above it.
  const RocPoint& mid = binned.roc[binned.roc.size() / 2];
  const auto accepted = scores.to(torch::kDouble) >= mid.threshold;
  const double far = (accepted & ~same).sum().item<double>() / static_cast<double>(exact.negatives);
  const double tar = (accepted & same).sum().item<double>() / static_cast<double>(exact.positives);
  check(std::abs(far - mid.falseAcceptRate) < 1e-12 && std::abs(tar - mid.trueAcceptRate) < 1e-12,
        "histogram: exact rates at a bin's edge");
  checkThrows<InvalidArgumentError>([] { ScoreHistogram(1, 1); }, "histogram: an empty range refused");

  const auto thin = thinRoc(exact.roc, 200);
  check(thin.size() < exact.roc.size() && thin.size() <= 3 * 200 &&
            thin.front().threshold == exact.roc.front().threshold &&
            thin.back().threshold == exact.roc.back().threshold,
        "thinRoc: a few hundred points, the ends kept");
  check(thinRoc(exact.roc, 1000000).size() == exact.roc.size(), "thinRoc: a short curve as it is");

  // All pairs of a set, through the histogram, against every pair's exact score.
  Model model = contrastiveModel();
  const PairScorer scorer(model);
  const auto embeddings = torch::randn({300, 8});
  std::vector<int32_t> labels;
  for (int i = 0; i < 300; ++i) labels.push_back(i % 7);
  for (int i = 0; i < 300; ++i) embeddings[i] += static_cast<float>(labels[static_cast<size_t>(i)]) * 0.3f;
  const auto d = scorer.matrix(embeddings, embeddings);
  std::vector<double> pairScores;
  std::vector<uint8_t> pairSame;
  for (int i = 0; i < 300; ++i) {
    for (int j = i + 1; j < 300; ++j) {
      pairScores.push_back(d[i][j].item<double>());
      pairSame.push_back(labels[static_cast<size_t>(i)] == labels[static_cast<size_t>(j)]);
    }
  }
  const VerificationMetrics direct = verificationMetrics(pairScores, pairSame);
  const VerificationMetrics streamed = allPairsVerification(scorer, embeddings, labels);
  check(streamed.positives == direct.positives && streamed.negatives == direct.negatives &&
            std::abs(streamed.auc - direct.auc) < 1e-4 && std::abs(streamed.eer - direct.eer) < 1e-3 &&
            std::abs(streamed.eerThreshold - direct.eerThreshold) < 1e-2,
        "allPairsVerification: every pair i < j, as scored one by one");
}

void testModelFileRoundTrip() {
  char dir[] = "/tmp/siamese-core-tests-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    check(false, "a scratch folder");
    return;
  }
  ModelConfig config;
  config.loss = Loss::Contrastive;
  config.threshold = 0.75;
  Model model(config, torch::kCPU, 5);
  model.setMetadata({{"classes", "[\"a\"]"}});
  model.setThreshold(0.5);
  const std::string file = std::string(dir) + "/m.safetensors";
  saveModelFile(model, file, {{"epoch", "3"}});
  const LoadedModel back = loadModelFile(file, torch::kCPU);
  check(!back.checkpoint && back.model->config().loss == Loss::Contrastive, "a model file loads back with its loss");
  check(back.model->threshold() == 0.5, "the threshold written is the current one");
  const Metadata m = back.model->metadata();
  check(m.at("classes") == "[\"a\"]" && m.at("epoch") == "3", "metadata and extra entries are carried");

  OptimizerSnapshot state;
  state.kind = Optimizer::Sgd;
  for (const auto& item : model.net()->named_parameters())
    state.tensors[item.key() + ".momentum_buffer"] = item.value().detach() * 2;
  const std::string checkpoint = std::string(dir) + "/c.safetensors";
  saveCheckpointFile(model, state, checkpoint, {});
  const LoadedModel plain = loadModelFile(checkpoint, torch::kCPU);
  check(plain.checkpoint && plain.optimizer.tensors.empty(),
        "a checkpoint is known as one; its state read only when asked");
  const LoadedModel full = loadModelFile(checkpoint, torch::kCPU, true);
  check(full.optimizer.kind == Optimizer::Sgd && full.optimizer.tensors.size() == state.tensors.size(),
        "with its state: the optimizer and every tensor");
  check(torch::equal(full.optimizer.tensors.at("conv1.weight.momentum_buffer"),
                     state.tensors.at("conv1.weight.momentum_buffer")),
        "the state's values");
  std::remove(file.c_str());
  std::remove(checkpoint.c_str());
  rmdir(dir);
}

// A ResNet-18 and a conv4 model file: every parameter and buffer comes back (BatchNorm's running
// statistics and its int64 batch count), and so do the embeddings; init reads weights by name.
void testTowerFilesAndInit() {
  char dir[] = "/tmp/siamese-core-tests-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    check(false, "a scratch folder");
    return;
  }
  const std::string file = std::string(dir) + "/r.safetensors";
  ModelConfig config;
  config.shape = {Tower::ResNet18, 32, 24, 3, 16};
  config.norm = {{0.4, 0.5, 0.6}, {0.2, 0.25, 0.3}};
  Model model(config, torch::kCPU, 7);
  {
    // Non-trivial running statistics: one training-mode pass.
    model.net()->train();
    model.net()->embed(torch::randn({4, 3, 24, 32}));
    model.net()->eval();
  }
  saveModelFile(model, file, {});
  const LoadedModel back = loadModelFile(file, torch::kCPU);
  check(back.model->shape().tower == Tower::ResNet18 && back.model->shape().channels == 3 &&
            back.model->config().norm.std == config.norm.std,
        "tower, channels and per-channel normalisation come back");
  bool same = true;
  const auto theirs = back.model->net()->named_buffers();
  for (const auto& item : model.net()->named_buffers()) same = same && torch::equal(item.value(), theirs[item.key()]);
  check(same && theirs["bn1.num_batches_tracked"].scalar_type() == torch::kLong &&
            theirs["bn1.num_batches_tracked"].item<int64_t>() == 1,
        "every buffer comes back, running statistics and int64 batch counts");
  const auto pixels = torch::randint(0, 256, {3, 24, 32, 3}, torch::kUInt8);
  check(torch::equal(model.embedImages(pixels), back.model->embedImages(pixels)), "the same embeddings");

  // init: the file's tensors under a prefix, a classifier fc of another shape, an extra tensor.
  const std::string weights = std::string(dir) + "/w.safetensors";
  {
    std::vector<torch::Tensor> keep;
    std::vector<TensorBytes> tensors;
    const auto add = [&](const std::string& name, const torch::Tensor& t) {
      keep.push_back(t.contiguous());
      tensors.push_back({name, t.scalar_type() == torch::kLong ? DType::I64 : DType::F32, t.sizes().vec(),
                         static_cast<const uint8_t*>(keep.back().data_ptr()), static_cast<size_t>(t.nbytes())});
    };
    for (const auto& item : back.model->net()->named_parameters()) {
      if (item.key().rfind("fc.", 0) == 0 || item.key().rfind("linear2.", 0) == 0) continue;
      add("backbone." + item.key(), item.value().detach() + 1);
    }
    for (const auto& item : back.model->net()->named_buffers()) add("backbone." + item.key(), item.value());
    add("backbone.fc.weight", torch::zeros({1000, 512}));
    add("backbone.fc.bias", torch::zeros({1000}));
    add("head.extra", torch::zeros({2}));
    writeSafetensorsAtomic(weights, tensors, {});
  }
  Model fresh(config, torch::kCPU, 8);
  const auto fcBefore = fresh.net()->named_parameters()["fc.weight"].clone();
  const InitReport report = initFromFile(fresh.net(), weights, "backbone.");
  check(torch::equal(fresh.net()->named_parameters()["layer2.0.conv1.weight"],
                     back.model->net()->named_parameters()["layer2.0.conv1.weight"].detach() + 1),
        "init: the tower's weights are the file's");
  check(torch::equal(fresh.net()->named_parameters()["fc.weight"], fcBefore), "init: a 1000-class fc is left alone");
  check(report.skipped.size() == 2 && report.skipped[0].first == "fc.bias",
        "init: the fc of another shape is reported");
  std::vector<std::string> missing = report.missing;
  check(missing == std::vector<std::string>({"linear2.bias", "linear2.weight"}), "init: the head is missing");
  check(report.unexpected == std::vector<std::string>({"head.extra"}), "init: the extra tensor is unexpected");
  check(report.loaded.size() == stateShapes(config.shape).size() - 4, "init: every tower tensor is loaded");
  const Json json = parseJson(initReportJson(report, weights, "backbone."));
  check(json.find("loaded")->array.size() == report.loaded.size(), "init: the report as JSON");

  // A tower tensor of another shape (a grey conv1 for a colour model) is refused, and changes nothing.
  ModelConfig greyConfig;
  greyConfig.shape = {Tower::ResNet18, 32, 24, 1, 16};
  Model grey(greyConfig, torch::kCPU, 9);
  const auto greyBefore = grey.net()->named_parameters()["layer1.0.conv1.weight"].clone();
  bool named = false;
  try {
    initFromFile(grey.net(), weights, "backbone.");
  } catch (const BadFileError& e) {
    named = std::string(e.what()).find("backbone.conv1.weight") != std::string::npos;
  }
  check(named, "init: a tower tensor of another shape is refused, naming it");
  check(torch::equal(grey.net()->named_parameters()["layer1.0.conv1.weight"], greyBefore),
        "init: a refused file changes nothing");
  std::remove(file.c_str());
  std::remove(weights.c_str());
  rmdir(dir);
}

void testVerificationMetrics() {
  // Two same pairs (0.9, 0.7), two different (0.8, 0.6).
  const VerificationMetrics m = verificationMetrics({0.9, 0.8, 0.7, 0.6}, {1, 0, 1, 0});
  check(m.positives == 2 && m.negatives == 2 && m.roc.size() == 5, "one ROC point a distinct score, and the origin");
  check(m.roc.front().falseAcceptRate == 0 && m.roc.front().trueAcceptRate == 0 && m.roc.front().threshold > 0.9,
        "the curve starts with nothing accepted");
  check(m.roc[2].threshold == 0.8 && m.roc[2].falseAcceptRate == 0.5 && m.roc[2].trueAcceptRate == 0.5,
        "at 0.8: one of each accepted");
  check(m.roc.back().falseAcceptRate == 1 && m.roc.back().trueAcceptRate == 1, "and ends with everything accepted");
  check(std::abs(m.auc - 0.75) < 1e-12, "AUC: 3 of the 4 (same, different) orderings right");
  check(std::abs(m.eer - 0.5) < 1e-12 && std::abs(m.eerThreshold - 0.8) < 1e-12, "EER 0.5, where FAR = FRR");
  check(!m.tarAtFar[0] && !m.tarAtFar[1] && !m.tarAtFar[2], "two different pairs: no TAR at FAR 0.1 or below");

  // 20 same pairs scored 1..20 and 1000 different pairs 0..0.999: separable.
  std::vector<double> scores;
  std::vector<uint8_t> same;
  for (int i = 1; i <= 20; ++i) {
    scores.push_back(i);
    same.push_back(1);
  }
  for (int i = 0; i < 1000; ++i) {
    scores.push_back(i / 1000.0);
    same.push_back(0);
  }
  const VerificationMetrics separable = verificationMetrics(scores, same);
  check(separable.auc == 1 && separable.eer == 0, "separable: AUC 1, EER 0");
  check(separable.tarAtFar[0] == 1.0 && separable.tarAtFar[1] == 1.0 && separable.tarAtFar[2] == 1.0,
        "separable: TAR 1 at every FAR (1000 different pairs tell 1e-3)");
  // Two different pairs above every same pair (FAR 2/1002 there): FAR 1e-3 keeps no same pair,
  // 1e-2 all of them.
  for (const double above : {30.0, 31.0}) {
    scores.push_back(above);
    same.push_back(0);
  }
  const VerificationMetrics one = verificationMetrics(scores, same);
  check(one.tarAtFar[2] == 0.0 && one.tarAtFar[1] == 1.0, "TAR at FAR: the best TAR within the rate");
  check(!verificationMetrics({0.5, 0.5, 0.5}, {1, 0, 1}).tarAtFar[0] &&
            verificationMetrics({0.5, 0.5, 0.5}, {1, 0, 1}).auc == 0.5,
        "ties count half");
  checkThrows<InvalidArgumentError>([] { verificationMetrics({0.1, 0.2}, {1, 1}); }, "no different pair: refused");
}

// The retrieval metrics against a plain all-pairs computation, for several block sizes.
void testRetrievalMetrics() {
  torch::manual_seed(5);
  const int64_t n = 37;
  const auto embeddings = torch::randn({n, 4});
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(static_cast<int32_t>(i % 5 == 4 ? 9 + i : i % 3));  // some alone
  // Reference: sort every other embedding by distance.
  const auto d = torch::cdist(embeddings, embeddings);
  double p1 = 0;
  double rp = 0;
  double map = 0;
  int64_t queries = 0;
  for (int64_t q = 0; q < n; ++q) {
    int64_t r = 0;
    for (int64_t j = 0; j < n; ++j) r += j != q && labels[j] == labels[q];
    if (r == 0) continue;
    std::vector<int64_t> others;
    for (int64_t j = 0; j < n; ++j) {
      if (j != q) others.push_back(j);
    }
    std::sort(others.begin(), others.end(),
              [&](int64_t a, int64_t b) { return d[q][a].item<float>() < d[q][b].item<float>(); });
    int64_t hits = 0;
    double sum = 0;
    for (int64_t k = 0; k < r; ++k) {
      if (labels[others[k]] != labels[q]) continue;
      ++hits;
      sum += static_cast<double>(hits) / static_cast<double>(k + 1);
    }
    p1 += labels[others[0]] == labels[q];
    rp += static_cast<double>(hits) / static_cast<double>(r);
    map += sum / static_cast<double>(r);
    ++queries;
  }
  for (const int64_t block : {int64_t{1}, int64_t{4}, int64_t{256}}) {
    const RetrievalMetrics m = retrievalMetrics(embeddings, labels, block);
    const RetrievalMetrics l2 = retrievalMetrics(
        embeddings, labels, block, [](const torch::Tensor& q, const torch::Tensor& a) { return torch::cdist(q, a); });
    check(l2.mapAtR == m.mapAtR && l2.precisionAt1 == m.precisionAt1, "retrieval: a distance function given");
    check(m.queries == queries && std::abs(m.precisionAt1 - p1 / queries) < 1e-12 &&
              std::abs(m.rPrecision - rp / queries) < 1e-12 && std::abs(m.mapAtR - map / queries) < 1e-12,
          "retrieval metrics match all pairs, in blocks of " + std::to_string(block));
  }
  // Classes in tight, far-apart clusters: everything right.
  const auto clustered = torch::tensor({0.0f, 0.1f, 0.2f, 10.0f, 10.1f, 20.0f}).view({6, 1});
  const RetrievalMetrics perfect = retrievalMetrics(clustered, {0, 0, 0, 1, 1, 2});
  check(perfect.queries == 5 && perfect.precisionAt1 == 1 && perfect.rPrecision == 1 && perfect.mapAtR == 1,
        "separated classes: P@1, R-precision and MAP@R all 1; a class of one is no query");
  // On a line: A at 0, 1 and 3.5, B at 2.2 (alone: no query). The queries' two nearest: 0 -> (A,
  // B), 1 -> (A, B), 3.5 -> (B, A): P@1 2/3, R-precision 1/2, MAP@R (1/2 + 1/2 + 1/4) / 3.
  const auto line = torch::tensor({0.0f, 1.0f, 2.2f, 3.5f}).view({4, 1});
  const RetrievalMetrics worked = retrievalMetrics(line, {0, 0, 1, 0});
  check(worked.queries == 3 && std::abs(worked.precisionAt1 - 2.0 / 3) < 1e-12 &&
            std::abs(worked.rPrecision - 0.5) < 1e-12 && std::abs(worked.mapAtR - 1.25 / 3) < 1e-12,
        "a worked example of P@1, R-precision and MAP@R");
}

void testMetricsJson() {
  EpochMetrics m;
  m.epoch = 2;
  m.trainLoss = 0.25;
  m.testAccuracy = 0.9375;
  const Json j = parseJson(metricsJson(m));
  std::vector<std::string> keys;
  for (const auto& item : j.object) keys.push_back(item.first);
  check(keys == std::vector<std::string>({"epoch", "trainLoss", "trainAccuracy", "testLoss", "testAccuracy", "auc",
                                          "threshold", "seconds", "pairsPerSecond"}),
        "metricsJson: the keys of JavaScript's EpochMetrics, in its order");
  check(j.find("epoch")->integer == 2 && j.find("testAccuracy")->number == 0.9375, "metricsJson: the values");
}

// A group of two ranks as seen from one, the other holding the same values: every sum doubles.
class MirroredGroup final : public Group {
 public:
  int rank() const override { return 0; }
  int worldSize() const override { return 2; }
  std::string backend() const override { return "mirror"; }
  std::function<void()> allReduceSum(torch::Tensor tensor) override {
    ++reductions;
    return [tensor]() mutable { tensor.mul_(2); };
  }
  void broadcast(std::vector<torch::Tensor>&) override {}
  torch::Tensor allGather(const torch::Tensor& local) override { return torch::cat({local, local}); }
  int reductions = 0;
};

void testDistributedShares() {
  // Shares are contiguous, in rank order, differ by one at most, and cover [0, n).
  for (int64_t n : {0, 1, 5, 64, 65, 1000}) {
    for (int world : {1, 2, 3, 7}) {
      int64_t next = 0;
      int64_t smallest = n;
      int64_t largest = 0;
      for (int r = 0; r < world; ++r) {
        const auto [begin, end] = shareOf(n, r, world);
        check(begin == next, "shareOf: contiguous");
        smallest = std::min(smallest, end - begin);
        largest = std::max(largest, end - begin);
        next = end;
      }
      check(next == n && largest - smallest <= 1, "shareOf: covers [0, n) evenly");
    }
  }

  // GradientAllReduce: each gradient scaled, summed (here: doubled), written back, in several
  // buckets, channels-last gradients included; figures summed alongside.
  torch::manual_seed(0);
  auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3));
  auto linear = torch::nn::Linear(8 * 6 * 6, 4);
  conv->weight.set_data(conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
  std::vector<torch::Tensor> parameters = conv->parameters();
  for (const auto& p : linear->parameters()) parameters.push_back(p);
  const auto input = torch::randn({5, 3, 8, 8}).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto loss = [&] { return linear->forward(conv->forward(input).relu().flatten(1)).pow(2).mean(); };
  loss().backward();
  std::vector<torch::Tensor> expected;
  for (auto& p : parameters) {
    expected.push_back(p.grad().clone());
    p.mutable_grad().reset();
  }
  MirroredGroup group;
  {
    GradientAllReduce sync(group, parameters, /*bucketBytes=*/1024, /*firstBucketBytes=*/512);
    for (int step = 0; step < 2; ++step) {
      for (auto& p : parameters) p.mutable_grad().reset();
      group.reductions = 0;
      sync.begin(0.5, torch::tensor({1.5, 2.0}, torch::kDouble));
      loss().backward();
      const auto figures = sync.finish();
      check(figures[0].item<double>() == 3.0 && figures[1].item<double>() == 4.0, "GradientAllReduce: figures summed");
      check(group.reductions > 2, "GradientAllReduce: several buckets (" + std::to_string(group.reductions) + ")");
      for (size_t i = 0; i < parameters.size(); ++i) {
        check(torch::allclose(parameters[i].grad(), expected[i], 1e-6, 1e-7),
              "GradientAllReduce: gradient " + std::to_string(i));
      }
    }
    // A rank with no share of a batch runs no backward pass: its expected gradients are zeros in
    // the sum, and it receives the sum.
    for (auto& p : parameters) p.mutable_grad().reset();
    sync.begin(0.0, torch::zeros({2}, torch::kDouble));
    sync.finish();
    for (const auto& p : parameters)
      check(p.grad().defined() && p.grad().abs().sum().item<double>() == 0, "GradientAllReduce: empty share");
  }
  // Destroyed, the hooks are gone: a backward pass just accumulates.
  for (auto& p : parameters) p.mutable_grad().reset();
  loss().backward();
  check(torch::allclose(parameters[0].grad(), expected[0], 1e-6, 1e-7), "GradientAllReduce: hooks removed");
}

void testLrSchedule() {
  const double lr = 0.002;
  const auto near = [](double a, double b) { return std::abs(a - b) <= 1e-15; };
  bool constant = true;
  for (int64_t step = 0; step < 20; ++step)
    constant = constant && scheduledLr(LrSchedule::Constant, lr, step, 20, 0) == lr;
  check(constant, "constant, no warm-up: lr at every step, exactly");
  check(near(scheduledLr(LrSchedule::Constant, lr, 0, 20, 4), lr / 4) &&
            near(scheduledLr(LrSchedule::Constant, lr, 2, 20, 4), 3 * lr / 4) &&
            scheduledLr(LrSchedule::Constant, lr, 3, 20, 4) == lr &&
            scheduledLr(LrSchedule::Constant, lr, 19, 20, 4) == lr,
        "constant with 4 warm-up steps: lr/4, 2lr/4, 3lr/4, then lr");
  check(scheduledLr(LrSchedule::Cosine, lr, 0, 10, 0) == lr &&
            near(scheduledLr(LrSchedule::Cosine, lr, 5, 10, 0), lr / 2) &&
            near(scheduledLr(LrSchedule::Cosine, lr, 9, 10, 0), lr * 0.5 * (1 + std::cos(0.9 * M_PI))),
        "cosine over 10 steps: lr, half way lr/2, the last step near 0");
  bool falling = true;
  for (int64_t step = 1; step < 10; ++step) {
    falling = falling &&
              scheduledLr(LrSchedule::Cosine, lr, step, 10, 0) < scheduledLr(LrSchedule::Cosine, lr, step - 1, 10, 0);
  }
  check(falling, "cosine falls at every step");
  check(near(scheduledLr(LrSchedule::Cosine, lr, 0, 10, 2), lr / 2) &&
            scheduledLr(LrSchedule::Cosine, lr, 1, 10, 2) == lr &&
            scheduledLr(LrSchedule::Cosine, lr, 2, 10, 2) == lr &&
            near(scheduledLr(LrSchedule::Cosine, lr, 6, 10, 2), lr / 2),
        "cosine after 2 warm-up steps: lr/2, lr, then the half cosine over the 8 steps left");
  check(near(scheduledLr(LrSchedule::Cosine, lr, 3, 4, 4), lr) && scheduledLr(LrSchedule::Cosine, lr, 7, 4, 0) == 0,
        "all warm-up, and a step past the end, stay in [0, lr]");
  check(parseChoice<LrSchedule>("cosine") == LrSchedule::Cosine &&
            choiceName(LrSchedule::Constant) == std::string("constant"),
        "schedule names both ways");
}

void testCachingAllocator() {
  if (!installCachingCpuAllocator()) {
    std::printf("caching allocator off (SIAMESE_TORCH_CPU_ALLOCATOR=system or a sanitizer build)\n");
    return;
  }
  releaseIdleCpuMemory();
  const CpuAllocatorStats before = cpuAllocatorStats();
  check(before.installed, "the caching allocator is installed");
  {
    auto small = torch::ones({1000});  // 4 KB: LibTorch's own allocator
    check(cpuAllocatorStats().liveBytes == before.liveBytes, "small tensors are not cached");
    auto big = torch::full({1 << 20}, 2.0f);  // 4 MiB
    check(cpuAllocatorStats().liveBytes == before.liveBytes + (4 << 20), "a large tensor is live");
    check(big.sum().item<float>() == 2.0f * (1 << 20) && small.sum().item<float>() == 1000.0f, "values are right");
  }
  const CpuAllocatorStats freed = cpuAllocatorStats();
  check(freed.liveBytes == before.liveBytes && freed.idleBytes == before.idleBytes + (4 << 20),
        "a freed block is kept");
  {
    auto again = torch::zeros({1 << 20});
    check(cpuAllocatorStats().hits == freed.hits + 1, "the same size reuses the block");
    check(again.abs().sum().item<float>() == 0.0f, "a reused block is written, not assumed zero");
  }
  // 100 steps of the same shapes: three blocks mapped in the first step (a, relu(a), b), none after.
  const uint64_t misses = cpuAllocatorStats().misses;
  for (int step = 0; step < 100; ++step) {
    auto a = torch::randn({512, 1024});
    auto b = torch::relu(a) * 2;
    check(b.size(0) == 512, "a step computes");
  }
  check(cpuAllocatorStats().misses == misses + 3, "steady steps hit the cache");
  // Mapped memory stays within 3x the high-water mark however the sizes vary.
  for (int64_t n = 1 << 18; n < (1 << 22); n += 1 << 17) auto t = torch::empty({n});
  const CpuAllocatorStats varied = cpuAllocatorStats();
  check(varied.liveBytes + varied.idleBytes <= 3 * varied.highWaterBytes + (16 << 20),
        "idle blocks are evicted to stay within the budget");
  releaseIdleCpuMemory();
  check(cpuAllocatorStats().idleBytes == 0, "releaseIdleCpuMemory unmaps every idle block");

  // A loop whose sizes need more than 1.5x its high-water mark kept mapped (a bfloat16 step, with
  // its casts in both precisions, needs ~1.8x) maps nothing after its first two passes: x, then two
  // halves live together, then a little less than x, about 3x the high-water mark in all. The first
  // pass learns the sizes' demand (and evicts x before it is known), the second maps x again.
  const int64_t x =
      static_cast<int64_t>(std::max<uint64_t>(cpuAllocatorStats().highWaterBytes, 16 << 20) / 4 + (1 << 18));
  const auto pass = [x] {
    { auto whole = torch::empty({x}); }
    {
      auto half = torch::empty({x / 2});
      auto otherHalf = torch::empty({x / 2});
    }
    { auto less = torch::empty({x - (1 << 18)}); }
  };
  pass();
  pass();
  const uint64_t learnt = cpuAllocatorStats().misses;
  for (int i = 0; i < 5; ++i) pass();
  check(cpuAllocatorStats().misses == learnt, "a loop that needs 3x its high-water mark in distinct sizes hits");
  releaseIdleCpuMemory();

  // evaluateSet keeps the embedding's buffers cached after it when it scores the fixed pairs
  // alone, and gives everything back once a later phase (all pairs, retrieval) has run.
  Model model(ModelConfig{}, torch::kCPU, 3);
  const ImageData set = shadedSet(4, 64);  // 256 images: conv1's output is 32 MB
  EvaluationOptions pairsOnly;
  pairsOnly.allPairs = false;
  pairsOnly.retrieval = false;
  evaluateSet(model, set, pairsOnly);
  check(cpuAllocatorStats().idleBytes > (8 << 20), "evaluateSet (fixed pairs alone) keeps its buffers cached");
  evaluateSet(model, set, EvaluationOptions{});
  check(cpuAllocatorStats().idleBytes == 0, "after all pairs and retrieval, nothing idle stays mapped");
}

void testThreadDefault() {
  check(cpusFromCgroupMax("max 100000\n") == 0, "cgroup cpu.max: no quota");
  check(cpusFromCgroupMax("200000 100000\n") == 2, "cgroup cpu.max: two CPUs");
  check(cpusFromCgroupMax("150000 100000") == 2, "cgroup cpu.max: a part-CPU quota rounds up");
  check(cpusFromCgroupMax("50000 100000") == 1, "cgroup cpu.max: under one CPU is one");
  check(cpusFromCgroupMax("") == 0 && cpusFromCgroupMax("garbage") == 0, "cgroup cpu.max: unreadable");
  const ThreadDefault& d = threadDefault();
  check(d.cpus >= 1 && d.threads >= 1 && !d.basis.empty(), "a thread default with its basis");
  const int alone = sharedDefaultThreads();
  {
    const TrainingRunCount one;
    const TrainingRunCount two;
    check(sharedDefaultThreads() == std::max(1, d.threads / 2), "two runs share the default threads");
  }
  check(sharedDefaultThreads() == alone, "the share comes back when the runs end");
}

// The gallery index: exact top-k against a brute-force ranking by the model's own pair score,
// across blocks, after removals (the last row fills each hole), for pair-ce and a distance loss.
void testEmbeddingIndex() {
  for (const Loss loss : {Loss::PairCE, Loss::Contrastive}) {
    ModelConfig config;
    config.loss = loss;
    config.threshold = loss == Loss::PairCE ? 0.5 : 1.0;
    Model model(config, torch::kCPU, 5);
    const int64_t dims = config.shape.embeddingSize;
    torch::manual_seed(11);
    const auto rows = torch::randn({300, dims});
    const auto queries = torch::randn({4, dims});
    EmbeddingIndex index(dims);
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < 300; ++i) ids.push_back(1000 + 3 * i);
    index.add(std::vector<int64_t>(ids.begin(), ids.begin() + 100), rows.slice(0, 0, 100));
    index.add(std::vector<int64_t>(ids.begin() + 100, ids.end()), rows.slice(0, 100, 300));
    check(index.size() == 300, "index: rows added in two calls");
    checkThrows<InvalidArgumentError>([&] { index.add({1000}, rows.slice(0, 0, 1)); }, "index: an id present refused");
    checkThrows<InvalidArgumentError>(
        [&] {
          index.add({1, 1}, rows.slice(0, 0, 2));
        },
        "index: twice the same id refused");
    check(index.size() == 300, "index: nothing added by a refused call");
    const std::vector<int64_t> gone = {1000 + 3 * 7, 1000 + 3 * 299, 1000 + 3 * 150, 42};
    check(index.remove(gone) == 3, "index: removes the ids present, says how many");

    // Brute force: every live row scored, ids ordered by score.
    const PairScorer scorer(model);
    const auto all = scorer.matrix(queries, rows);
    bool same = true;
    bool pSameRight = true;
    for (const int64_t block : {int64_t{7}, int64_t{64}, int64_t{65536}}) {
      const Neighbours n = index.search(model, queries, 10, block);
      same = same && n.ids.sizes() == torch::IntArrayRef({4, 10});
      for (int64_t q = 0; q < 4; ++q) {
        std::vector<std::pair<float, int64_t>> ranked;
        for (int64_t i = 0; i < 300; ++i) {
          if (i == 7 || i == 299 || i == 150) continue;
          ranked.emplace_back(all[q][i].item<float>(), ids[static_cast<size_t>(i)]);
        }
        std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        for (int64_t j = 0; j < 10; ++j) {
          same = same && n.ids[q][j].item<int64_t>() == ranked[static_cast<size_t>(j)].second;
          const int64_t row = (ranked[static_cast<size_t>(j)].second - 1000) / 3;
          const auto p = model.sameProbability(queries[q].unsqueeze(0), rows[row].unsqueeze(0));
          const float d = (queries[q] - rows[row]).norm().item<float>();
          pSameRight = pSameRight && std::abs(p.item<float>() - n.pSame[q][j].item<float>()) < 1e-5f &&
                       std::abs(d - n.distance[q][j].item<float>()) < 1e-4f;
        }
      }
    }
    const std::string name = loss == Loss::PairCE ? "pair-ce" : "contrastive";
    check(same, "index (" + name + "): the top 10 of a brute-force ranking, in blocks of 7, 64 and 65536");
    check(pSameRight, "index (" + name + "): P(same) and the distance of each neighbour, as the model gives them");
    const Neighbours few = index.search(model, queries, 1000);
    check(few.ids.size(1) == 297, "index: k above the rows gives every row");
    EmbeddingIndex empty(dims);
    check(empty.search(model, queries, 3).ids.size(1) == 0, "index: an empty index finds nothing");
  }
  checkThrows<InvalidArgumentError>([] { EmbeddingIndex bad(0); }, "index: no dimensions refused");
}

int main() {
  testThreadDefault();
  testRngIsPortable();
  testGatherNormalized();
  testTripletBatch();
  testSamplersAgainstLabels();
  testJson();
  testRoc();
  testStateShapesMatchTheNetwork();
  testBatchNormModesAndFreezing();
  testFoldedInference();
  testReferenceFoldedInference();
  testGreyFirstLayerLayout();
  testTowerFilesAndInit();
  testContract();
  testDataFingerprint();
  testInference();
  testEpisodes();
  testScoreHistogram();
  testModelFileRoundTrip();
  testMetricsJson();
  testVerificationMetrics();
  testRetrievalMetrics();
  testCachingAllocator();
  testLrSchedule();
  testDistributedShares();
  testEmbeddingIndex();
  return siamese::test::summary();
}
