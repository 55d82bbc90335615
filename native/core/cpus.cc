#include "cpus.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace siamese::core {

namespace {

std::atomic<int>& runsGoing() {
  static std::atomic<int> runs{0};
  return runs;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A positive integer, or 0 for anything else (unset, empty, "auto", "2,1" nested OpenMP lists).
int positiveInteger(const char* text) {
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value <= 0 || value > 4096) return 0;
  return static_cast<int>(value);
}

int affinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

// cgroup v1: cpu.cfs_quota_us (-1: unlimited) over cpu.cfs_period_us.
int cgroupV1Cpus() {
  for (const char* dir : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"}) {
    const std::string quota = readFile(std::string(dir) + "/cpu.cfs_quota_us");
    const std::string period = readFile(std::string(dir) + "/cpu.cfs_period_us");
    if (quota.empty() || period.empty()) continue;
    const double q = std::strtod(quota.c_str(), nullptr);
    const double p = std::strtod(period.c_str(), nullptr);
    if (q > 0 && p > 0) return static_cast<int>(std::ceil(q / p));
  }
  return 0;
}

// cgroup v2: the tightest cpu.max from this process's cgroup up to the root of the hierarchy
// it can see (a container's namespace root is /).
int cgroupV2Cpus() {
  std::string path;
  std::istringstream lines(readFile("/proc/self/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  }
  int tightest = 0;
  while (true) {
    const int cpus = cpusFromCgroupMax(readFile("/sys/fs/cgroup" + path + "/cpu.max"));
    if (cpus > 0 && (tightest == 0 || cpus < tightest)) tightest = cpus;
    if (path.empty() || path == "/") break;
    const size_t slash = path.find_last_of('/');
    path = slash == std::string::npos ? "" : path.substr(0, slash);
  }
  return tightest;
}

ThreadDefault findThreadDefault() {
  ThreadDefault d;
  d.cpus = affinityCpus();
  d.basis = "affinity";
  int quota = cgroupV2Cpus();
  if (quota == 0) quota = cgroupV1Cpus();
  if (quota > 0 && quota < d.cpus) {
    d.cpus = quota;
    d.basis = "cgroup quota";
  }
  d.threads = d.cpus;
  if (const int omp = positiveInteger(std::getenv("OMP_NUM_THREADS")); omp > 0) {
    d.threads = omp;
    d.basis = "OMP_NUM_THREADS";
  } else if (const int ranks = positiveInteger(std::getenv("LOCAL_WORLD_SIZE")); ranks > 1) {
    d.threads = std::max(1, d.cpus / ranks);
    d.basis = std::to_string(ranks) + " local ranks";
  }
  return d;
}

}  // namespace

int cpusFromCgroupMax(const std::string& content) {
  std::istringstream in(content);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return 0;
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  if (*end != '\0' || q <= 0) return 0;
  return std::max(1, static_cast<int>(std::ceil(q / period)));
}

bool cpuHasBf16() {
  // SIAMESE_TORCH_CPU_BF16=0 hides the CPU's bfloat16 (tests of the refusal; runs that must stay fp32).
  const char* hidden = std::getenv("SIAMESE_TORCH_CPU_BF16");
  if (hidden != nullptr && std::string(hidden) == "0") return false;
  // The kernel's flags (what the CPU has and the OS enabled), as every compiler can read them:
  // GCC's and Clang's __builtin_cpu_supports do not know the same feature names.
  static const bool has = [] {
    std::istringstream lines(readFile("/proc/cpuinfo"));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream flags(line.substr(line.find(':') + 1));
      for (std::string flag; flags >> flag;) {
        if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
      }
      return false;
    }
    return false;
  }();
  return has;
}

const ThreadDefault& threadDefault() {
  static const ThreadDefault d = findThreadDefault();
  return d;
}

TrainingRunCount::TrainingRunCount() { runsGoing().fetch_add(1); }
TrainingRunCount::~TrainingRunCount() { runsGoing().fetch_sub(1); }

int sharedDefaultThreads() {
  const int runs = std::max(1, runsGoing().load());
  return std::max(1, threadDefault().threads / runs);
}

}  // namespace siamese::core
