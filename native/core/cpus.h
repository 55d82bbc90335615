// How many CPUs this process may use, and how many LibTorch threads a model's work gets when its
// owner set none. LibTorch's own default is OpenMP's, which on some machines (Debian's LibTorch on
// a 2-vCPU virtual machine) is 1: half the machine. LibTorch only: no napi.h here.
#pragma once

#include <string>

namespace siamese::core {

// Where the default thread count came from, for version() and the CLI's first line.
struct ThreadDefault {
  int cpus = 1;       // CPUs this process may use: its affinity mask, capped by a cgroup CPU quota
  int threads = 1;    // LibTorch threads a model gets by default, with one training run going
  std::string basis;  // "affinity", "cgroup quota", "OMP_NUM_THREADS", or "<n> local ranks"
};

// Read once per process: the affinity mask, the cgroup quota (v2 cpu.max, v1 cfs_quota_us), and
// the environment. OMP_NUM_THREADS, when set to a positive integer, is the user's choice and wins;
// otherwise the CPUs are shared between LOCAL_WORLD_SIZE ranks on this host (torchrun and the
// built-in launcher set it), so that ranks do not oversubscribe the machine.
const ThreadDefault& threadDefault();

// Counts one training run for as long as it lives. Models that use the default thread count share
// the CPUs between the runs going at once (each gets at least one thread), re-read at every step.
class TrainingRunCount {
 public:
  TrainingRunCount();
  ~TrainingRunCount();
  TrainingRunCount(const TrainingRunCount&) = delete;
  TrainingRunCount& operator=(const TrainingRunCount&) = delete;
};

// The threads a model with no explicit count uses now: the default shared between the training
// runs going in this process.
int sharedDefaultThreads();

// The CPU computes bfloat16 natively: AVX512_BF16 or AMX-BF16, which oneDNN's bf16 kernels need to
// be faster than fp32 (without them it emulates bf16, slower than fp32).
bool cpuHasBf16();

// Parses cgroup v2's cpu.max ("max 100000" or "150000 100000") into a CPU count, rounded up;
// 0 when unlimited or unreadable. Exposed for tests.
int cpusFromCgroupMax(const std::string& content);

}  // namespace siamese::core
