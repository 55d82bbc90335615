// This machine's fp32 and bf16 peak, measured (scripts/bench/peak.mjs runs it).
//   a. FMA throughput loops per ISA level (AVX2 FMA on 256 bits, AVX-512 FMA, AVX512_BF16 dot
//      products), on 1 thread and on one thread per CPU this process may use, each thread pinned
//      to its CPU. Each kernel is compiled for its ISA with a target attribute, so the file builds
//      with the project's flags, and runs only where the CPU has that ISA.
//   b. LibTorch's own kernels on large problems: fp32 and bf16 GEMMs (torch::mm, and a 1x1
//      convolution through oneDNN, which is the same arithmetic), 3x3 and 5x5 convolutions
//      forward in fp32 and bf16 (channels-last), at 1 thread and at that many threads.
// Usage: peak_bench                       one JSON object on stdout, a table on stderr (~30 s)
//        peak_bench --probe               each LibTorch measurement once, after a marker line
//                                         "peak_bench,op,NAME" (run it with ONEDNN_VERBOSE=1 to see
//                                         which oneDNN kernel each one runs)
//        peak_bench --train STEPS THREADS  STEPS training steps of the reference recipe (reference
//                                         tower and pairs, batch 64, Adam) on random 28x28 images,
//                                         through native/core's trainer as the addon runs it; prints
//                                         one JSON line last
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>
#include <torch/version.h>

#include "../core/cpu_allocator.h"
#include "../core/json.h"
#include "../core/model.h"
#include "../core/trainer.h"

namespace {

using Clock = std::chrono::steady_clock;
using siamese::core::jsonNumber;
using siamese::core::jsonQuote;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Results of the loops land here, so that the compiler cannot drop them.
std::atomic<double> sink{0};

// ---- a. FMA throughput loops ----------------------------------------------------------------
// Each loop keeps many independent accumulators, enough to cover an FMA's latency (4 cycles on
// current x86 cores) on two FMA pipes, and leaves them in registers: 12 of the 16 ymm registers
// for AVX2, 16 of the 32 zmm registers for AVX-512. acc = acc * b + c with b just below 1
// converges to c / (1 - b), so nothing overflows or turns denormal.

constexpr int kAvx2Accumulators = 12;
constexpr int kAvx512Accumulators = 16;

__attribute__((target("avx2,fma"))) double fmaAvx2(int64_t iterations, float seed) {
  __m256 acc[kAvx2Accumulators];
  for (int i = 0; i < kAvx2Accumulators; ++i) acc[i] = _mm256_set1_ps(seed + static_cast<float>(i));
  const __m256 b = _mm256_set1_ps(0.999999f);
  const __m256 c = _mm256_set1_ps(seed * 1e-6f);
  for (int64_t k = 0; k < iterations; ++k) {
    for (int i = 0; i < kAvx2Accumulators; ++i) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kAvx2Accumulators; ++i) sum = _mm256_add_ps(sum, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  double total = 0;
  for (float lane : lanes) total += lane;
  return total;
}

// The lanes' sum (not _mm512_reduce_add_ps, whose GCC 12 expansion warns of an uninitialised value).
__attribute__((target("avx512f"))) double sumLanes(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  double total = 0;
  for (float lane : lanes) total += lane;
  return total;
}

__attribute__((target("avx512f"))) double fmaAvx512(int64_t iterations, float seed) {
  __m512 acc[kAvx512Accumulators];
  for (int i = 0; i < kAvx512Accumulators; ++i) acc[i] = _mm512_set1_ps(seed + static_cast<float>(i));
  const __m512 b = _mm512_set1_ps(0.999999f);
  const __m512 c = _mm512_set1_ps(seed * 1e-6f);
  for (int64_t k = 0; k < iterations; ++k) {
    for (int i = 0; i < kAvx512Accumulators; ++i) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kAvx512Accumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return sumLanes(sum);
}

// vdpbf16ps: 16 fp32 lanes, each adding two bf16 products: 32 multiply-adds, 64 FLOP. The sums
// grow by 2e-6 a step, far from overflow for any run here.
__attribute__((target("avx512f,avx512bf16"))) double dpAvx512Bf16(int64_t iterations, float seed) {
  __m512 acc[kAvx512Accumulators];
  for (int i = 0; i < kAvx512Accumulators; ++i) acc[i] = _mm512_set1_ps(seed + static_cast<float>(i));
  const __m512 x = _mm512_set1_ps(seed * 1e-3f);
  const __m512bh a = _mm512_cvtne2ps_pbh(x, x);
  const __m512bh b = _mm512_cvtne2ps_pbh(x, x);
  for (int64_t k = 0; k < iterations; ++k) {
    for (int i = 0; i < kAvx512Accumulators; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kAvx512Accumulators; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return sumLanes(sum);
}

// A chain of dependent 64-bit multiplies, 8 an iteration: 3 cycles each on every x86 core since
// Nehalem and Zen, so its rate gives the clock the core runs at under load.
constexpr double kImulCycles = 3;
constexpr int kImulsPerIteration = 8;
double imulChain(int64_t iterations, float seed) {
  uint64_t x = static_cast<uint64_t>(seed) | 1;
  for (int64_t k = 0; k < iterations; ++k) {
    asm volatile(
        "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0\n\t"
        "imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0"
        : "+r"(x));
  }
  return static_cast<double>(x);
}

struct Kernel {
  const char* name;       // the ISA level, as reported
  const char* precision;  // "fp32" or "bf16"
  const char* cpuFeature;
  double flopPerIteration;
  double (*run)(int64_t, float);
};

bool cpuSupports(const std::string& feature) {
  // __builtin_cpu_supports needs a string literal.
  if (feature == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (feature == "avx512f") return __builtin_cpu_supports("avx512f");
  if (feature == "avx512bf16") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return false;
}

const std::vector<Kernel>& kernels() {
  static const std::vector<Kernel> all{
      {"avx2_fma256", "fp32", "avx2", 2.0 * 8 * kAvx2Accumulators, fmaAvx2},
      {"avx512_fma512", "fp32", "avx512f", 2.0 * 16 * kAvx512Accumulators, fmaAvx512},
      {"avx512_bf16_dp", "bf16", "avx512bf16", 64.0 * kAvx512Accumulators, dpAvx512Bf16},
  };
  return all;
}

// The CPUs this process may run on.
std::vector<int> allowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

// Runs fn(iterations) on the first `threads` CPUs at once, one thread each pinned to its CPU,
// all released together; returns the seconds from the release to the last thread's end.
double runPinned(const std::vector<int>& cpus, size_t threads, double (*fn)(int64_t, float), int64_t iterations) {
  std::atomic<size_t> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> ends(threads);
  std::vector<std::thread> team;
  Clock::time_point start;
  for (size_t t = 0; t < threads; ++t) {
    team.emplace_back([&, t] {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus[t], &one);
      pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      const double r = fn(iterations, 1.0f + static_cast<float>(t));
      ends[t] = secondsSince(start);
      sink.store(sink.load() + r);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : team) th.join();
  return *std::max_element(ends.begin(), ends.end());
}

// Runs of the loops: about 2 ms each (shorter than a scheduler time slice), repeated for 1 s.
constexpr double kRunSeconds = 0.002;
constexpr double kBudgetSeconds = 1.0;

// Iterations that take about `seconds` on one thread (the best of 5 tries at a size).
int64_t iterationsFor(const std::vector<int>& cpus, double (*fn)(int64_t, float), double seconds) {
  int64_t n = 1 << 10;
  for (;;) {
    double s = 1e300;
    for (int r = 0; r < 5; ++r) s = std::min(s, runPinned(cpus, 1, fn, n));
    if (s > seconds / 4) return std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(n) * seconds / s));
    n *= 4;
  }
}

// The best of short runs repeated for `budget` seconds (at least 5): on a machine shared with
// other work, a run of a few milliseconds is often left alone, a long one never is.
double bestSeconds(const std::vector<int>& cpus, size_t threads, double (*fn)(int64_t, float), int64_t iterations,
                   double budget) {
  double best = 1e300;
  const auto started = Clock::now();
  for (int r = 0; r < 5 || secondsSince(started) < budget; ++r) {
    best = std::min(best, runPinned(cpus, threads, fn, iterations));
  }
  return best;
}

struct FmaResult {
  std::string name, precision;
  bool supported = false;
  size_t threads = 0;
  double gflops = 0, flopPerCyclePerCore = 0, ghz = 0;
};

struct ClockResult {
  size_t threads = 0;
  double ghz = 0;
};

// ---- b. LibTorch's kernels ------------------------------------------------------------------

struct TorchOp {
  std::string name, precision, shape, path;
  double flop;
  std::function<torch::Tensor()> run;
};

std::vector<TorchOp> torchOps() {
  torch::manual_seed(0);
  const auto cl = torch::MemoryFormat::ChannelsLast;
  std::vector<TorchOp> ops;
  // Problems of a few milliseconds to a few tens: on a machine shared with other work, the best
  // of many short calls is the one left alone. GEMM by torch::mm: fp32 goes to the BLAS LibTorch
  // was built with (Debian's: whichever libblas.so.3 is installed, the reference BLAS by default),
  // hence the smaller size; bf16 goes to oneDNN's matmul where the CPU has AVX-512 (--probe shows
  // which kernel each call runs).
  const int64_t small = 512, big = 1024;
  auto a32 = torch::randn({small, small});
  auto b32 = torch::randn({small, small});
  ops.push_back(
      {"mm", "fp32", "512x512x512", "torch::mm", 2.0 * small * small * small, [=] { return torch::mm(a32, b32); }});
  auto a16 = torch::randn({big, big}).to(torch::kBFloat16);
  auto b16 = torch::randn({big, big}).to(torch::kBFloat16);
  ops.push_back(
      {"mm", "bf16", "1024x1024x1024", "torch::mm", 2.0 * big * big * big, [=] { return torch::mm(a16, b16); }});
  // Convolutions through oneDNN (torch::mkldnn_convolution: torch::conv2d picks other code for
  // some shapes and thread counts), NHWC activations and weights as training has them; the weight
  // is reordered to oneDNN's blocked layout on every call, as in training.
  const auto conv = [&](const std::string& name, torch::ScalarType type, int64_t n, int64_t c, int64_t k, int64_t hw,
                        int64_t r, const std::string& shape) {
    auto x = torch::randn({n, c, hw, hw}).to(type).contiguous(cl);
    auto wt = torch::randn({k, c, r, r}).mul(0.01).to(type).contiguous(cl);
    const int64_t pad = r / 2;
    ops.push_back({name, type == torch::kBFloat16 ? "bf16" : "fp32", shape, "torch::mkldnn_convolution",
                   2.0 * static_cast<double>(n * hw * hw) * static_cast<double>(k * c * r * r), [=] {
                     return torch::mkldnn_convolution(x, wt, {}, {pad, pad}, {1, 1}, {1, 1}, 1);
                   }});
  };
  // The GEMM again as a 1x1 convolution: 1024 rows (1 x 32 x 32 pixels) x 1024 input channels x
  // 1024 output channels.
  conv("gemm-as-1x1-conv", torch::kFloat, 1, big, big, 32, 1, "1024x1024x1024 (N1 C1024 32x32 -> 1024)");
  conv("gemm-as-1x1-conv", torch::kBFloat16, 1, big, big, 32, 1, "1024x1024x1024 (N1 C1024 32x32 -> 1024)");
  conv("conv3x3", torch::kFloat, 8, 128, 128, 28, 3, "N8 C128 28x28 -> 128, 3x3 pad 1");
  conv("conv3x3", torch::kBFloat16, 8, 128, 128, 28, 3, "N8 C128 28x28 -> 128, 3x3 pad 1");
  conv("conv5x5", torch::kFloat, 8, 64, 128, 28, 5, "N8 C64 28x28 -> 128, 5x5 pad 2");
  conv("conv5x5", torch::kBFloat16, 8, 64, 128, 28, 5, "N8 C64 28x28 -> 128, 5x5 pad 2");
  return ops;
}

struct TorchResult {
  std::string name, precision, shape, path;
  int threads = 0, reps = 0;
  double bestGflops = 0, medianGflops = 0, ofPeak = 0;
};

// One warm-up call (oneDNN creates its primitive), then calls until `seconds` have passed (at
// least 2, at most 50).
TorchResult timeOp(const TorchOp& op, int threads, double seconds) {
  torch::NoGradGuard noGrad;
  op.run();
  std::vector<double> times;
  const auto started = Clock::now();
  while (times.size() < 2 || (secondsSince(started) < seconds && times.size() < 50)) {
    const auto t0 = Clock::now();
    (void)op.run();
    times.push_back(secondsSince(t0));
  }
  std::sort(times.begin(), times.end());
  TorchResult r{op.name, op.precision, op.shape, op.path, threads, static_cast<int>(times.size())};
  r.bestGflops = op.flop / times.front() / 1e9;
  r.medianGflops = op.flop / times[times.size() / 2] / 1e9;
  return r;
}

std::string cpuInfoField(const std::string& key) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "";
}

int probe() {
  const int threads = static_cast<int>(allowedCpus().size());
  at::set_num_threads(threads);
  torch::NoGradGuard noGrad;
  for (const auto& op : torchOps()) {
    std::printf("peak_bench,op,%s %s\n", op.name.c_str(), op.precision.c_str());
    std::fflush(stdout);
    op.run();
  }
  return 0;
}

// STEPS steps of the reference recipe as the addon trains it, on random images (the shapes, not
// the pixels, decide which kernels run). The reference pairs need 600 images a class.
int trainSteps(int64_t steps, int threads) {
  using namespace siamese::core;
  installCachingCpuAllocator();  // as the addon does
  torch::manual_seed(0);
  ImageData train, test;
  train.images = torch::randint(0, 256, {6000, 28, 28, 1}, torch::kUInt8);
  test.images = torch::randint(0, 256, {100, 28, 28, 1}, torch::kUInt8);
  for (int i = 0; i < 6000; ++i) train.labels.push_back(i % 10);
  for (int i = 0; i < 100; ++i) test.labels.push_back(i % 10);
  train.numClasses = test.numClasses = 10;
  Model model(ModelConfig{}, torch::kCPU, 0);
  model.setThreads(threads);
  TrainConfig c;
  c.epochs = 1;
  c.pairs = PairScheme::Reference;
  c.threads = threads;
  c.saveEvery = 0;
  // The trainer reports at most every 0.1 s and checks `stop` before each step: stop at the first
  // report at or past STEPS.
  std::atomic<bool> stop{false};
  int64_t done = 0;
  TrainHooks hooks;
  hooks.stop = &stop;
  hooks.onBatch = [&](const BatchProgress& p) {
    done = p.batch;
    if (p.batch >= steps) stop.store(true);
  };
  torch::AutoGradMode grad(true);
  const auto started = Clock::now();
  trainModel(model, train, test, c, hooks);
  std::fflush(stdout);
  std::printf("{\"tool\":\"peak_bench\",\"mode\":\"train\",\"steps\":%lld,\"threads\":%d,\"seconds\":%s}\n",
              static_cast<long long>(done), threads, jsonNumber(secondsSince(started)).c_str());
  return 0;
}

int measure() {
  const auto started = Clock::now();
  const std::vector<int> cpus = allowedCpus();
  const size_t n = cpus.size();
  std::vector<size_t> teams{1};
  if (n > 1) teams.push_back(n);

  // The clock under load, on 1 and on all threads.
  std::vector<ClockResult> clocks;
  const int64_t imulIterations = iterationsFor(cpus, imulChain, kRunSeconds);
  for (size_t t : teams) {
    const double s = bestSeconds(cpus, t, imulChain, imulIterations, kBudgetSeconds);
    clocks.push_back({t, static_cast<double>(imulIterations) * kImulsPerIteration * kImulCycles / s / 1e9});
  }
  const auto ghzAt = [&](size_t t) {
    for (const auto& c : clocks)
      if (c.threads == t) return c.ghz;
    return clocks.front().ghz;
  };

  std::vector<FmaResult> fma;
  for (const auto& k : kernels()) {
    const bool ok = cpuSupports(k.cpuFeature);
    const int64_t iterations = ok ? iterationsFor(cpus, k.run, kRunSeconds) : 0;
    for (size_t t : teams) {
      FmaResult r{k.name, k.precision, ok, t};
      if (ok) {
        const double s = bestSeconds(cpus, t, k.run, iterations, kBudgetSeconds);
        r.gflops = k.flopPerIteration * static_cast<double>(iterations) * static_cast<double>(t) / s / 1e9;
        r.ghz = ghzAt(t);
        r.flopPerCyclePerCore = r.gflops / (r.ghz * static_cast<double>(t));
      }
      fma.push_back(r);
    }
  }
  // The peak of a precision at a thread count: the best of its kernels.
  const auto peakOf = [&](const std::string& precision, size_t t) {
    double best = 0;
    for (const auto& r : fma)
      if (r.precision == precision && r.threads == t) best = std::max(best, r.gflops);
    return best;
  };

  std::vector<TorchResult> torchResults;
  {
    const auto ops = torchOps();
    for (size_t t : teams) {
      at::set_num_threads(static_cast<int>(t));
      for (const auto& op : ops) {
        TorchResult r = timeOp(op, static_cast<int>(t), op.precision == "fp32" && op.path == "torch::mm" ? 0.5 : 1.0);
        const double peak = peakOf(r.precision, t);
        r.ofPeak = peak > 0 ? r.bestGflops / peak : 0;
        torchResults.push_back(r);
      }
    }
  }

  // JSON on stdout.
  const double mhz = std::atof(cpuInfoField("cpu MHz").c_str());
  std::string j = "{\"tool\":\"peak_bench\",\"cpuModel\":" + jsonQuote(cpuInfoField("model name")) +
                  ",\"threads\":" + std::to_string(n) + ",\"libtorch\":" + jsonQuote(TORCH_VERSION) +
                  ",\"clock\":{\"method\":" +
                  jsonQuote("a chain of dependent 64-bit imul (3 cycles each) timed on each thread count") +
                  ",\"cpuinfoMHz\":" + jsonNumber(mhz) + ",\"measured\":[";
  for (size_t i = 0; i < clocks.size(); ++i) {
    j += std::string(i ? "," : "") + "{\"threads\":" + std::to_string(clocks[i].threads) +
         ",\"ghz\":" + jsonNumber(clocks[i].ghz) + "}";
  }
  j += "]},\"fma\":[";
  for (size_t i = 0; i < fma.size(); ++i) {
    const auto& r = fma[i];
    j += std::string(i ? "," : "") + "{\"isa\":" + jsonQuote(r.name) + ",\"precision\":" + jsonQuote(r.precision) +
         ",\"supported\":" + (r.supported ? "true" : "false") + ",\"threads\":" + std::to_string(r.threads);
    if (r.supported) {
      j += ",\"gflops\":" + jsonNumber(r.gflops) + ",\"ghz\":" + jsonNumber(r.ghz) +
           ",\"flopPerCyclePerCore\":" + jsonNumber(r.flopPerCyclePerCore);
    }
    j += "}";
  }
  j += "],\"peak\":{";
  for (size_t i = 0; i < teams.size(); ++i) {
    j += std::string(i ? "," : "") + "\"" + std::to_string(teams[i]) +
         "\":{\"fp32\":" + jsonNumber(peakOf("fp32", teams[i])) + ",\"bf16\":" + jsonNumber(peakOf("bf16", teams[i])) +
         "}";
  }
  j += "},\"torch\":[";
  for (size_t i = 0; i < torchResults.size(); ++i) {
    const auto& r = torchResults[i];
    j += std::string(i ? "," : "") + "{\"op\":" + jsonQuote(r.name) + ",\"precision\":" + jsonQuote(r.precision) +
         ",\"shape\":" + jsonQuote(r.shape) + ",\"path\":" + jsonQuote(r.path) +
         ",\"threads\":" + std::to_string(r.threads) + ",\"reps\":" + std::to_string(r.reps) +
         ",\"bestGflops\":" + jsonNumber(r.bestGflops) + ",\"medianGflops\":" + jsonNumber(r.medianGflops) +
         ",\"ofPeak\":" + jsonNumber(r.ofPeak) + "}";
  }
  j += "],\"seconds\":" + jsonNumber(secondsSince(started)) + "}";

  // The table on stderr.
  std::fprintf(stderr, "clock under load (imul chain): ");
  for (const auto& c : clocks) std::fprintf(stderr, "%.2f GHz on %zu thread(s); ", c.ghz, c.threads);
  std::fprintf(stderr, "/proc/cpuinfo says %.0f MHz\n", mhz);
  std::fprintf(stderr, "%-16s %-5s %7s %10s %16s\n", "FMA loop", "prec", "threads", "GFLOP/s", "FLOP/cycle/core");
  for (const auto& r : fma) {
    if (r.supported) {
      std::fprintf(stderr, "%-16s %-5s %7zu %10.1f %16.1f\n", r.name.c_str(), r.precision.c_str(), r.threads, r.gflops,
                   r.flopPerCyclePerCore);
    } else {
      std::fprintf(stderr, "%-16s %-5s %7zu %10s\n", r.name.c_str(), r.precision.c_str(), r.threads, "unsupported");
    }
  }
  std::fprintf(stderr, "%-18s %-5s %-40s %7s %10s %10s %8s\n", "LibTorch", "prec", "shape", "threads", "best GF/s",
               "median", "of peak");
  for (const auto& r : torchResults) {
    std::fprintf(stderr, "%-18s %-5s %-40s %7d %10.1f %10.1f %7.1f%%\n", r.name.c_str(), r.precision.c_str(),
                 r.shape.c_str(), r.threads, r.bestGflops, r.medianGflops, 100 * r.ofPeak);
  }
  std::printf("%s\n", j.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 2 && std::strcmp(argv[1], "--probe") == 0) return probe();
    if (argc == 4 && std::strcmp(argv[1], "--train") == 0) return trainSteps(std::atoll(argv[2]), std::atoi(argv[3]));
    if (argc == 1) return measure();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "peak_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: peak_bench | peak_bench --probe | peak_bench --train STEPS THREADS\n");
  return 2;
}
