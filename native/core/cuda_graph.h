// A training step's forward and backward passes captured once as a CUDA graph and replayed.
//
// Why: at the batch sizes Siamese networks train at, a GPU step is a hundred-odd small kernels,
// and launching them from the CPU costs more than running them. A graph launches them all with
// one call. This is PyTorch's whole-network capture (torch.cuda.graphs): warm-up steps run eagerly
// on a side stream, one step is captured there, and every later step copies its batch into the
// graph's input tensor and replays it. The optimiser's step stays outside the graph: LibTorch's
// optimisers keep their step count and bias corrections on the host, which a graph would freeze
// at their captured values.
//
// The parameters' gradients are tensors of the graph's memory pool once it is captured: the
// trainer must not drop them between steps (see trainer.cc). Only in a CUDA build of LibTorch;
// elsewhere checkCudaGraphs refuses.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <torch/torch.h>

namespace siamese::core {

// Throws UnsupportedError, with the reason, unless this build can capture CUDA graphs on `device`.
void checkCudaGraphs(const torch::Device& device);

class GraphedStep {
 public:
  // A step's outputs (the loss first), computed from the input, backward pass included. It must
  // not read tensors to the host (no item()), which capture forbids.
  using Body = std::function<std::vector<torch::Tensor>(const torch::Tensor& input)>;

  // Eager steps before the capture: cuDNN's autotuning and LibTorch's lazy initialisations happen
  // in them, outside the graph.
  static constexpr int kWarmupSteps = 3;

  explicit GraphedStep(const torch::Device& device);
  ~GraphedStep();
  GraphedStep(const GraphedStep&) = delete;
  GraphedStep& operator=(const GraphedStep&) = delete;

  // Runs `body` on a copy of `input` held in the graph's input tensor: eagerly for the first
  // kWarmupSteps calls, captured and replayed on the next, replayed after. Every call must pass an
  // input of the first call's shape and type. Returns the body's outputs (after the capture, the
  // graph's own tensors, rewritten by the next call).
  std::vector<torch::Tensor> run(const torch::Tensor& input, const Body& body);

  // True once the step is captured: the gradients then live in the graph's memory.
  bool captured() const;

  // Whether `input` fits the graph's input tensor (true before the first call).
  bool fits(const torch::Tensor& input) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace siamese::core
