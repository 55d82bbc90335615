#include "distributed.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <thread>

#include "errors.h"

#ifdef SIAMESE_TORCH_C10D
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef SIAMESE_TORCH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace siamese::core {

namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

std::pair<int64_t, int64_t> shareOf(int64_t n, int rank, int worldSize) {
  return {n * rank / worldSize, n * (rank + 1) / worldSize};
}

#ifdef SIAMESE_TORCH_C10D

namespace {

std::string seconds(std::chrono::milliseconds t) {
  std::ostringstream out;
  out << static_cast<double>(t.count()) / 1000.0 << " s";
  return out.str();
}

std::string rankList(const std::vector<int>& ranks) {
  std::string s = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i > 0 ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

// The exception being handled, in one line (LibTorch's carry a C++ backtrace after the first).
std::string currentCause() {
  std::string text;
  try {
    throw;
  } catch (const c10::Error& e) {
    text = e.what_without_backtrace();
  } catch (const std::exception& e) {
    text = e.what();
  } catch (...) {
    text = "unknown error";
  }
  const size_t newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(0, newline);
}

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
std::string text(const std::vector<uint8_t>& b) { return {b.begin(), b.end()}; }

bool isLoopback(const std::string& host) { return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0; }

// The first line in which two handshakes differ, as "name=value" of each ("" when they agree).
std::pair<std::string, std::string> firstDifference(const std::string& a, const std::string& b) {
  std::istringstream left(a);
  std::istringstream right(b);
  std::string l;
  std::string r;
  while (true) {
    const bool moreLeft = static_cast<bool>(std::getline(left, l));
    const bool moreRight = static_cast<bool>(std::getline(right, r));
    if (!moreLeft && !moreRight) return {"", ""};
    if (!moreLeft) l = "(nothing)";
    if (!moreRight) r = "(nothing)";
    if (l != r) return {l, r};
  }
}

// Every rank writes its handshake under join/<rank> and waits until all have, comparing each as it
// appears: a rank started with another world size or other settings is named at once, a rank
// that never comes is named at the timeout.
void meet(c10d::Store& store, const DistributedConfig& c, const std::string& handshake) {
  const std::string mine = "world size=" + std::to_string(c.worldSize) + "\n" + handshake;
  store.set("join/" + std::to_string(c.rank), bytes(mine));
  store.add("join/count", 1);
  const auto deadline = Clock::now() + c.timeout;
  std::vector<bool> seen(static_cast<size_t>(c.worldSize), false);
  while (true) {
    std::vector<int> missing;
    for (int r = 0; r < c.worldSize; ++r) {
      if (seen[static_cast<size_t>(r)]) continue;
      const std::string key = "join/" + std::to_string(r);
      if (!store.check({key})) {
        missing.push_back(r);
        continue;
      }
      const auto [theirs, ours] = firstDifference(text(store.get(key)), mine);
      if (!theirs.empty()) {
        throw DistributedError("rank " + std::to_string(c.rank) + ": rank " + std::to_string(r) +
                               " was started with other settings: '" + theirs + "' there, '" + ours +
                               "' here. Every rank must run the same command on the same data.");
      }
      seen[static_cast<size_t>(r)] = true;
    }
    if (store.add("join/count", 0) > c.worldSize) {
      throw DistributedError("rank " + std::to_string(c.rank) + ": more than WORLD_SIZE=" +
                             std::to_string(c.worldSize) + " processes joined (two were given the same RANK?)");
    }
    if (missing.empty()) return;
    if (Clock::now() > deadline) {
      throw DistributedError("rank " + std::to_string(c.rank) + ": " + rankList(missing) + " did not join within " +
                             seconds(c.timeout) + " (WORLD_SIZE=" + std::to_string(c.worldSize) + ", store at " +
                             c.masterAddr + ":" + std::to_string(c.masterPort) + ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Gloo's network device: the interfaces GLOO_SOCKET_IFNAME names (as PyTorch reads it), else
// loopback for a job on this machine, else the address this host's name resolves to.
std::vector<std::shared_ptr<::gloo::transport::Device>> glooDevices(const DistributedConfig& c) {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  const char* names = std::getenv("GLOO_SOCKET_IFNAME");
  if (names != nullptr && *names != '\0') {
    std::istringstream list(names);
    std::string name;
    while (std::getline(list, name, ',')) {
      if (!name.empty()) devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    }
  } else if (isLoopback(c.masterAddr)) {
    devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return devices;
}

// One group over a c10d back-end (ProcessGroupGloo or ProcessGroupNCCL): the collectives, each
// numbered. When one fails, this rank marks the number in the store and looks, for a moment, for
// the others' marks: a rank that leaves none died, hangs, or cannot be reached.
template <typename Backend>
class C10dGroup final : public Group {
 public:
  C10dGroup(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<Backend> backend, const DistributedConfig& c,
            std::string name)
      : store_(std::move(store)), backend_(std::move(backend)), c_(c), name_(std::move(name)) {}

  int rank() const override { return c_.rank; }
  int worldSize() const override { return c_.worldSize; }
  std::string backend() const override { return name_; }

  std::function<void()> allReduceSum(torch::Tensor tensor) override {
    const uint64_t number = ++collectives_;
    std::vector<torch::Tensor> tensors{std::move(tensor)};
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = backend_->allreduce(tensors);
    } catch (...) {
      fail("an all-reduce", number);
    }
    return [this, work, number]() {
      try {
        work->wait();
      } catch (...) {
        fail("an all-reduce", number);
      }
    };
  }

  void broadcast(std::vector<torch::Tensor>& tensors) override {
    const uint64_t number = ++collectives_;
    try {
      backend_->broadcast(tensors)->wait();
    } catch (...) {
      fail("the broadcast of rank 0's weights", number);
    }
  }

  torch::Tensor allGather(const torch::Tensor& local) override {
    // Gloo and NCCL gather equal sizes: every rank's rows padded to the longest, then trimmed.
    auto lengths = torch::zeros({c_.worldSize}, torch::TensorOptions().dtype(torch::kLong).device(local.device()));
    lengths.narrow(0, c_.rank, 1).fill_(local.size(0));
    allReduceSum(lengths)();
    const auto rows = lengths.cpu();
    const int64_t longest = rows.max().item<int64_t>();
    auto shape = local.sizes().vec();
    shape[0] = longest;
    auto padded = torch::zeros(shape, local.options());
    padded.narrow(0, 0, local.size(0)).copy_(local);
    std::vector<std::vector<torch::Tensor>> outputs(1);
    for (int r = 0; r < c_.worldSize; ++r) outputs[0].push_back(torch::empty_like(padded));
    std::vector<torch::Tensor> inputs{padded};
    const uint64_t number = ++collectives_;
    try {
      backend_->allgather(outputs, inputs)->wait();
    } catch (...) {
      fail("an all-gather", number);
    }
    std::vector<torch::Tensor> parts;
    for (int r = 0; r < c_.worldSize; ++r)
      parts.push_back(outputs[0][static_cast<size_t>(r)].narrow(0, 0, rows[r].item<int64_t>()));
    return torch::cat(parts);
  }

 private:
  [[noreturn]] void fail(const std::string& what, uint64_t number) {
    const std::string cause = currentCause();
    throw DistributedError("rank " + std::to_string(c_.rank) + ": " + what + " failed, " + silentRanks(number) + " (" +
                           cause + ")");
  }

  std::string silentRanks(uint64_t number) {
    try {
      const std::string prefix = "failed/" + std::to_string(number) + "/";
      store_->set(prefix + std::to_string(c_.rank), bytes("1"));
      const auto deadline = Clock::now() + std::min<std::chrono::milliseconds>(c_.timeout, std::chrono::seconds(3));
      std::vector<int> silent;
      while (true) {
        silent.clear();
        for (int r = 0; r < c_.worldSize; ++r) {
          if (!store_->check({prefix + std::to_string(r)})) silent.push_back(r);
        }
        if (silent.empty() || Clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (silent.empty()) return "on every rank";
      return rankList(silent) + " stopped answering (died, hung, or cannot be reached)";
    } catch (...) {
      return c_.agentStore ? "and the store (torchrun's agent) cannot be reached"
                           : "and rank 0, which serves the store, cannot be reached (it died, or its host is down)";
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<Backend> backend_;
  const DistributedConfig c_;
  const std::string name_;
  uint64_t collectives_ = 0;
};

std::string resolveBackend(const DistributedConfig& c, [[maybe_unused]] const torch::Device& device) {
  if (c.backend == "auto") {
#ifdef SIAMESE_TORCH_NCCL
    if (device.is_cuda()) return "nccl";
#endif
    return "gloo";
  }
  if (c.backend == "nccl") {
#ifdef SIAMESE_TORCH_NCCL
    if (!device.is_cuda()) throw InvalidArgumentError("backend 'nccl' needs a CUDA model; use 'gloo' on the CPU");
    return "nccl";
#else
    throw UnsupportedError("this build of siamese-torch has no NCCL back-end (a CUDA LibTorch with NCCL's headers)");
#endif
  }
  if (c.backend == "gloo") return "gloo";
  throw InvalidArgumentError("unknown distributed backend '" + c.backend + "' (gloo, nccl or auto)");
}

}  // namespace

bool distributedAvailable() { return true; }

std::string distributedBackends() {
#ifdef SIAMESE_TORCH_NCCL
  return "gloo nccl";
#else
  return "gloo";
#endif
}

std::unique_ptr<Group> joinGroup(const DistributedConfig& c, const torch::Device& device,
                                 const std::string& handshake) {
  if (c.worldSize < 1) throw InvalidArgumentError("the world size must be at least 1");
  if (c.rank < 0 || c.rank >= c.worldSize) {
    throw InvalidArgumentError("rank " + std::to_string(c.rank) + " is not in [0, " + std::to_string(c.worldSize) +
                               ") (RANK must be less than WORLD_SIZE)");
  }
  if (c.masterPort < 1 || c.masterPort > 65535) {
    throw InvalidArgumentError("the master port must be in [1, 65535], not " + std::to_string(c.masterPort));
  }
  const std::string backend = resolveBackend(c, device);
  const std::string where = c.masterAddr + ":" + std::to_string(c.masterPort);
  const bool serves = c.rank == 0 && !c.agentStore;

  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(c.masterPort);
  options.isServer = serves;
  if (serves) options.numWorkers = static_cast<size_t>(c.worldSize);
  options.waitWorkers = false;  // meet() waits, and names the ranks that do not come
  options.timeout = c.timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(c.masterAddr, options);
  } catch (...) {
    const std::string cause = currentCause();
    if (serves) {
      throw DistributedError("rank 0 could not serve the store on port " + std::to_string(c.masterPort) + ": " + cause +
                             " (is MASTER_PORT in use?)");
    }
    throw DistributedError("rank " + std::to_string(c.rank) + " could not reach the store at " + where + " within " +
                           seconds(c.timeout) + ": " + cause +
                           " (are MASTER_ADDR and MASTER_PORT right, and is rank 0 running?)");
  }
  auto ours = c10::make_intrusive<c10d::PrefixStore>("siamese-torch/" + c.runId, store);
  try {
    meet(*ours, c, handshake);
  } catch (const DistributedError&) {
    throw;
  } catch (...) {
    throw DistributedError("rank " + std::to_string(c.rank) + ": the store at " + where +
                           " stopped answering while the ranks met: " + currentCause());
  }

  auto groupStore = c10::make_intrusive<c10d::PrefixStore>(backend, ours);
  try {
#ifdef SIAMESE_TORCH_NCCL
    if (backend == "nccl") {
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = c.timeout;
      auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(groupStore, c.rank, c.worldSize, nccl);
      return std::make_unique<C10dGroup<c10d::ProcessGroupNCCL>>(ours, group, c, backend);
    }
#endif
    auto gloo = c10d::ProcessGroupGloo::Options::create(c.timeout);
    gloo->devices = glooDevices(c);
    gloo->threads = 2;
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(groupStore, c.rank, c.worldSize, gloo);
    return std::make_unique<C10dGroup<c10d::ProcessGroupGloo>>(ours, group, c, backend);
  } catch (...) {
    throw DistributedError("rank " + std::to_string(c.rank) + " could not connect to the other ranks (" + backend +
                           "): " + currentCause() +
                           " (can the hosts reach each other on any port? GLOO_SOCKET_IFNAME picks the interface)");
  }
}

#else  // no c10d in this build

bool distributedAvailable() { return false; }
std::string distributedBackends() { return ""; }

std::unique_ptr<Group> joinGroup(const DistributedConfig&, const torch::Device&, const std::string&) {
  throw UnsupportedError(
      "this build of siamese-torch has no distributed training: it was built without c10d's Gloo back-end "
      "(install Gloo's headers, libgloo-dev on Debian, and rebuild)");
}

#endif

// ---- gradients ----

struct GradientAllReduce::Impl {
  struct Bucket {
    torch::Tensor flat;
    std::vector<size_t> members;  // indices into parameters
    size_t pending = 0;           // members whose gradient has not arrived this step
    std::function<void()> wait;
  };
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;
  };

  Impl(Group& g, const std::vector<torch::Tensor>& trained, int64_t bucketBytes, int64_t firstBucketBytes) : group(g) {
    // The backward pass produces gradients roughly from the last layer to the first: buckets are
    // filled in that order. One dtype and device a bucket.
    parameters.assign(trained.rbegin(), trained.rend());
    slots.resize(parameters.size());
    if (bucketBytes <= 0) {
      int64_t total = 0;
      for (const auto& p : parameters) total += p.numel() * p.element_size();
      bucketBytes = std::clamp<int64_t>(total / kBucketsWanted, kMinBucketBytes, kMaxBucketBytes);
    }
    int64_t bucketSize = 0;
    for (size_t i = 0; i < parameters.size(); ++i) {
      const auto& p = parameters[i];
      const int64_t limit = buckets.size() <= 1 ? firstBucketBytes : bucketBytes;
      const bool fits = !buckets.empty() && bucketSize + p.numel() * p.element_size() <= limit &&
                        parameters[buckets.back().members.front()].scalar_type() == p.scalar_type();
      if (!fits) {
        buckets.emplace_back();
        bucketSize = 0;
      }
      auto& bucket = buckets.back();
      slots[i] = {buckets.size() - 1, bucketSize / p.element_size()};
      bucket.members.push_back(i);
      bucketSize += p.numel() * p.element_size();
    }
    for (auto& bucket : buckets) {
      const auto& first = parameters[bucket.members.front()];
      int64_t numel = 0;
      for (size_t i : bucket.members) numel += parameters[i].numel();
      bucket.flat = torch::zeros({numel}, first.options().requires_grad(false));
    }
    arrived.assign(parameters.size(), false);
    expected.assign(parameters.size(), false);
  }

  torch::Tensor view(size_t i) {
    const auto& p = parameters[i];
    return buckets[slots[i].bucket].flat.narrow(0, slots[i].offset, p.numel()).view(p.sizes());
  }

  void arrive(size_t i, const torch::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!inStep || arrived[i]) return;
    torch::NoGradGuard noGrad;
    auto slice = view(i);
    slice.copy_(grad);
    if (scale != 1.0) slice.mul_(scale);
    arrived[i] = true;
    --buckets[slots[i].bucket].pending;
    launchReady();
  }

  // Buckets start in order, each once complete: every rank then issues the same collectives in
  // the same order, whatever order its gradients came in.
  void launchReady() {
    while (next < buckets.size() && buckets[next].pending == 0) {
      buckets[next].wait = group.allReduceSum(buckets[next].flat);
      ++next;
    }
  }

  Group& group;
  std::vector<torch::Tensor> parameters;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::vector<bool> arrived;
  std::vector<bool> expected;  // gradients that arrived in the first step: the others never come
  bool firstStep = true;
  bool inStep = false;
  double scale = 1;
  size_t next = 0;
  torch::Tensor figures;
  std::function<void()> figuresWait;
  std::vector<unsigned> hooks;
  double waitSeconds = 0;
  std::mutex mutex;
};

GradientAllReduce::GradientAllReduce(Group& group, const std::vector<torch::Tensor>& parameters, int64_t bucketBytes,
                                     int64_t firstBucketBytes)
    : impl_(std::make_unique<Impl>(group, parameters, bucketBytes, firstBucketBytes)) {
  Impl* impl = impl_.get();
  for (size_t i = 0; i < impl->parameters.size(); ++i) {
    impl->hooks.push_back(
        impl->parameters[i].register_hook([impl, i](const torch::Tensor& grad) { impl->arrive(i, grad); }));
  }
}

GradientAllReduce::~GradientAllReduce() {
  for (size_t i = 0; i < impl_->parameters.size(); ++i) impl_->parameters[i].remove_hook(impl_->hooks[i]);
}

void GradientAllReduce::begin(double scale, const torch::Tensor& figures) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto& s = *impl_;
  s.scale = scale;
  s.inStep = true;
  s.next = 0;
  std::fill(s.arrived.begin(), s.arrived.end(), false);
  for (auto& bucket : s.buckets) bucket.pending = bucket.members.size();
  s.figures = figures.to(s.parameters.empty() ? figures.device() : s.parameters.front().device(), torch::kDouble);
  s.figuresWait = s.group.allReduceSum(s.figures);
}

torch::Tensor GradientAllReduce::finish() {
  auto& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.inStep = false;
    if (s.firstStep) {
      s.expected = s.arrived;
      s.firstStep = false;
    }
    // Gradients that did not come (this rank had no share of the batch): zeros in the sum.
    torch::NoGradGuard noGrad;
    for (size_t i = 0; i < s.parameters.size(); ++i) {
      if (s.arrived[i]) continue;
      s.view(i).zero_();
      --s.buckets[s.slots[i].bucket].pending;
    }
    s.launchReady();
  }
  const auto started = Clock::now();
  s.figuresWait();
  for (auto& bucket : s.buckets) bucket.wait();
  s.waitSeconds += std::chrono::duration<double>(Clock::now() - started).count();
  torch::NoGradGuard noGrad;
  for (size_t i = 0; i < s.parameters.size(); ++i) {
    auto& p = s.parameters[i];
    if (s.arrived[i]) {
      p.mutable_grad().copy_(s.view(i));
    } else if (s.expected[i]) {
      p.mutable_grad() = torch::empty_like(p).copy_(s.view(i));
    }
  }
  return s.figures.cpu();
}

double GradientAllReduce::takeWaitSeconds() {
  const double t = impl_->waitSeconds;
  impl_->waitSeconds = 0;
  return t;
}

}  // namespace siamese::core
