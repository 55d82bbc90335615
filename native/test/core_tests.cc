// Tests of native/core without Node: a plain executable (also the base of the sanitizer runs).
// Prints "N passed, N failed" and exits non-zero on any failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "../core/batch.h"
#include "../core/cpu_allocator.h"
#include "../core/errors.h"
#include "../core/evaluate.h"
#include "../core/json.h"
#include "../core/network.h"
#include "../core/random.h"
#include "../core/sampling.h"

namespace {

int passed = 0;
int failed = 0;

void check(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

template <typename Exception>
void checkThrows(const std::function<void()>& body, const std::string& what) {
  try {
    body();
    check(false, what + " (did not throw)");
  } catch (const Exception&) {
    check(true, what);
  }
}

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
  auto images = torch::tensor({0, 255, 128, 51, 10, 20, 30, 40}, torch::kUInt8).reshape({2, 2, 2});
  const Normalization norm{0.5, 0.25};
  auto batch = gatherNormalized(images, torch::tensor({1, 0, 1}, torch::kLong), norm);
  check(batch.sizes() == torch::IntArrayRef({3, 1, 2, 2}), "batch shape [B, 1, H, W]");
  check(batch.scalar_type() == torch::kFloat, "float32");
  const float expected = static_cast<float>((10 / 255.0 - 0.5) / 0.25);
  check(std::abs(batch[0][0][0][0].item<float>() - expected) < 1e-6f, "(x / 255 - mean) / std");
  check(std::abs(batch[1][0][0][1].item<float>() - 2.0f) < 1e-6f, "255 -> (1 - 0.5) / 0.25 = 2");
}

void testTripletBatch() {
  auto images = torch::arange(6, torch::kUInt8).reshape({6, 1, 1});
  Triplets t;
  t.anchor = {0, 1};
  t.positive = {2, 3};
  t.negative = {4, 5};
  const Normalization identity{0.0, 1.0 / 255.0};  // x' = x
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

void testParameterShapesMatchTheNetwork() {
  // loadModelFile checks a file against parameterShapes() before building the network.
  for (const NetworkShape shape : {NetworkShape{28, 28, 512}, NetworkShape{24, 40, 7}, NetworkShape{64, 32, 128}}) {
    SiameseNet net(shape);
    std::map<std::string, std::vector<int64_t>> fromNet;
    for (const auto& item : net->named_parameters()) fromNet[item.key()] = item.value().sizes().vec();
    std::map<std::string, std::vector<int64_t>> computed;
    for (const auto& [name, dims] : parameterShapes(shape)) computed[name] = dims;
    check(fromNet == computed, "parameterShapes() agrees with the network for " + std::to_string(shape.width) + "x" +
                                   std::to_string(shape.height) + ", embedding " + std::to_string(shape.embeddingSize));
  }
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
  // Mapped memory stays within 1.5x the high-water mark however the sizes vary.
  for (int64_t n = 1 << 18; n < (1 << 22); n += 1 << 17) auto t = torch::empty({n});
  const CpuAllocatorStats varied = cpuAllocatorStats();
  check(varied.liveBytes + varied.idleBytes <= varied.highWaterBytes + varied.highWaterBytes / 2 + (16 << 20),
        "idle blocks are evicted to stay within the budget");
  releaseIdleCpuMemory();
  check(cpuAllocatorStats().idleBytes == 0, "releaseIdleCpuMemory unmaps every idle block");
}

int main() {
  testRngIsPortable();
  testGatherNormalized();
  testTripletBatch();
  testSamplersAgainstLabels();
  testJson();
  testRoc();
  testParameterShapesMatchTheNetwork();
  testCachingAllocator();
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
