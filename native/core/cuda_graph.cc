#include "cuda_graph.h"

#include <string>

#include <torch/version.h>

#ifdef SIAMESE_TORCH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "errors.h"

namespace siamese::core {

void checkCudaGraphs(const torch::Device& device) {
#ifdef SIAMESE_TORCH_CUDA
  if (!device.is_cuda()) {
    throw UnsupportedError("cudaGraph captures the training step on a GPU: it needs device 'cuda', not '" +
                           device.str() + "'");
  }
#else
  (void)device;
  throw UnsupportedError(
      "cudaGraph captures the training step on a GPU, and this build of siamese-torch links a CPU-only LibTorch");
#endif
}

struct GraphedStep::Impl {
  explicit Impl(const torch::Device& d) : device(d) {}
  torch::Device device;
  int calls = 0;
  torch::Tensor input;
  std::vector<torch::Tensor> outputs;
#ifdef SIAMESE_TORCH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

GraphedStep::GraphedStep(const torch::Device& device) : impl_(std::make_unique<Impl>(device)) {
  checkCudaGraphs(device);
}

GraphedStep::~GraphedStep() = default;

bool GraphedStep::captured() const {
#ifdef SIAMESE_TORCH_CUDA
  return impl_->graph != nullptr;
#else
  return false;
#endif
}

bool GraphedStep::fits(const torch::Tensor& input) const {
  return !impl_->input.defined() ||
         (impl_->input.sizes() == input.sizes() && impl_->input.scalar_type() == input.scalar_type());
}

std::vector<torch::Tensor> GraphedStep::run(const torch::Tensor& input, const Body& body) {
  if (!fits(input)) {
    throw InvalidArgumentError("a captured training step takes batches of one shape; this one differs");
  }
  Impl& s = *impl_;
  if (!s.input.defined()) s.input = torch::empty_like(input, torch::MemoryFormat::Contiguous);
  s.input.copy_(input);
#ifdef SIAMESE_TORCH_CUDA
  if (s.graph != nullptr) {
    s.graph->replay();
    return s.outputs;
  }
  // Warm-up and capture run on a side stream (capture needs one other than the default stream),
  // fenced by whole-device synchronisations on both sides: it happens once a run.
  const auto index = s.device.has_index() ? s.device.index() : c10::cuda::current_device();
  c10::cuda::device_synchronize();
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
  {
    const c10::cuda::CUDAStreamGuard onSide(side);
    if (s.calls < kWarmupSteps) {
      ++s.calls;
      s.outputs = body(s.input);
      c10::cuda::device_synchronize();
      return s.outputs;
    }
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    // Thread-local capture: work that other models of this process launch from other threads
    // meanwhile must not invalidate it (the kernels captured are those of this stream).
#if TORCH_VERSION_MAJOR >= 2
    graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
#else
    graph->capture_begin();
#endif
    try {
      s.outputs = body(s.input);
    } catch (...) {
      try {
        graph->capture_end();
      } catch (...) {
        // The capture is invalid anyway; the body's error is the one to report.
      }
      throw;
    }
    graph->capture_end();
    s.graph = std::move(graph);
  }
  c10::cuda::device_synchronize();
  // Capture records the kernels without running them: this step runs now.
  s.graph->replay();
  return s.outputs;
#else
  (void)body;
  throw UnsupportedError("cudaGraph needs a CUDA build of LibTorch");
#endif
}

}  // namespace siamese::core
