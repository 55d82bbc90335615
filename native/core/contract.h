// The C++ side of the one contract (lib/contract.ts): the enums of every choice, their names as
// JavaScript spells them, and the defaults native code falls back on. JavaScript validates every
// option against lib/contract.ts before a call; the addon turns names into these enums once, at
// the boundary (parseChoice), and native/core works with the enums only. test/contract.test.mjs
// checks that this list and lib/contract.ts agree.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "errors.h"

namespace siamese::core {

enum class Loss { PairCE, Contrastive, Triplet };
enum class Mining { None, BatchHard, SemiHard };
enum class Optimizer { Adam, Sgd };
enum class PairScheme { Reference, Balanced };
enum class Tower { Reference, Conv4, ResNet18 };
enum class Precision { Fp32, Bf16 };
enum class LrSchedule { Constant, Cosine };
enum class WeightInit { Torch, Xavier };

// Each enum's values with their names, in the order lib/contract.ts lists them.
template <typename Enum>
struct Choices;

template <>
struct Choices<Loss> {
  static constexpr const char* kind = "loss";
  static constexpr std::array<std::pair<Loss, std::string_view>, 3> values{
      {{Loss::PairCE, "pair-ce"}, {Loss::Contrastive, "contrastive"}, {Loss::Triplet, "triplet"}}};
};
template <>
struct Choices<Mining> {
  static constexpr const char* kind = "mining";
  static constexpr std::array<std::pair<Mining, std::string_view>, 3> values{
      {{Mining::None, "none"}, {Mining::BatchHard, "batch-hard"}, {Mining::SemiHard, "semi-hard"}}};
};
template <>
struct Choices<Optimizer> {
  static constexpr const char* kind = "optimizer";
  static constexpr std::array<std::pair<Optimizer, std::string_view>, 2> values{
      {{Optimizer::Adam, "adam"}, {Optimizer::Sgd, "sgd"}}};
};
template <>
struct Choices<PairScheme> {
  static constexpr const char* kind = "pair scheme";
  static constexpr std::array<std::pair<PairScheme, std::string_view>, 2> values{
      {{PairScheme::Reference, "reference"}, {PairScheme::Balanced, "balanced"}}};
};
template <>
struct Choices<Tower> {
  static constexpr const char* kind = "tower";
  static constexpr std::array<std::pair<Tower, std::string_view>, 3> values{
      {{Tower::Reference, "reference"}, {Tower::Conv4, "conv4"}, {Tower::ResNet18, "resnet18"}}};
};
template <>
struct Choices<Precision> {
  static constexpr const char* kind = "precision";
  static constexpr std::array<std::pair<Precision, std::string_view>, 2> values{
      {{Precision::Fp32, "fp32"}, {Precision::Bf16, "bf16"}}};
};

template <>
struct Choices<LrSchedule> {
  static constexpr const char* kind = "learning-rate schedule";
  static constexpr std::array<std::pair<LrSchedule, std::string_view>, 2> values{
      {{LrSchedule::Constant, "constant"}, {LrSchedule::Cosine, "cosine"}}};
};

template <>
struct Choices<WeightInit> {
  static constexpr const char* kind = "weight initialisation";
  static constexpr std::array<std::pair<WeightInit, std::string_view>, 2> values{
      {{WeightInit::Torch, "torch"}, {WeightInit::Xavier, "xavier"}}};
};

// The enum value named `name`; InvalidArgumentError for an unknown name.
template <typename Enum>
Enum parseChoice(std::string_view name) {
  for (const auto& [value, text] : Choices<Enum>::values) {
    if (text == name) return value;
  }
  throw InvalidArgumentError("unknown " + std::string(Choices<Enum>::kind) + " \"" + std::string(name) + "\"");
}

// The name of an enum value, as JavaScript and the model files spell it.
template <typename Enum>
const char* choiceName(Enum value) {
  for (const auto& [v, text] : Choices<Enum>::values) {
    if (v == value) return text.data();
  }
  return "?";
}

// Defaults, the same as lib/contract.ts's (native code uses them when a caller leaves a field).
namespace defaults {
constexpr int64_t kWidth = 28;
constexpr int64_t kHeight = 28;
constexpr int64_t kChannels = 1;
constexpr Tower kTower = Tower::Reference;
constexpr int64_t kEmbeddingSize = 512;
constexpr Loss kLoss = Loss::PairCE;
constexpr double kMargin = 1.0;
constexpr double kMean = 0.1307;  // MNIST's, as in the reference recipe
constexpr double kStd = 0.3081;
constexpr PairScheme kPairs = PairScheme::Balanced;
constexpr Mining kMining = Mining::None;
constexpr Optimizer kOptimizer = Optimizer::Adam;
// lr, lrSchedule, warmup and batchSize: measured best for the balanced scheme (docs/performance.md);
// the reference scheme and mining take the recipe's (namespace recipe below).
constexpr double kLr = 3e-3;
constexpr LrSchedule kLrSchedule = LrSchedule::Cosine;
constexpr double kWarmup = 0.25;  // epochs
constexpr double kWeightDecay = 1e-4;
constexpr double kMomentum = 0.9;
constexpr int64_t kEpochs = 10;
constexpr int64_t kBatchSize = 32;
constexpr uint64_t kSeed = 0;
constexpr int64_t kSaveEvery = 2;
}  // namespace defaults

// The reference recipe's values where the defaults differ (lib/contract.ts, recipeTrainingDefaults):
// a run with pairs 'reference' or with mining takes these. lib/ resolves them before a call.
namespace recipe {
constexpr double kLr = 1e-3;
constexpr LrSchedule kLrSchedule = LrSchedule::Constant;
constexpr double kWarmup = 0;
constexpr int64_t kBatchSize = 64;
}  // namespace recipe

}  // namespace siamese::core
