// Model files: safetensors (native/core/safetensors.h) whose tensors are the network's parameters
// under the reference PyTorch module's names, and whose metadata says what the model is (format
// version, architecture, input size, normalisation, loss, margin, threshold) and what it has done
// (training options, classes, epoch, metrics, data fingerprint). Checkpoints add the optimiser
// state as "optimizer.<param>.<state>" tensors and "optimizer*" metadata.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "contract.h"
#include "model.h"

namespace siamese::core {

constexpr const char* kFormatKey = "siamese_torch.format";
constexpr const char* kFormatVersion = "1";

// An optimiser's state, as a checkpoint holds it.
struct OptimizerSnapshot {
  Optimizer kind = Optimizer::Adam;
  int64_t step = 0;                              // Adam's step count
  std::map<std::string, torch::Tensor> tensors;  // "<param>.exp_avg", "<param>.momentum_buffer", ...
};

// Atomic writes (a complete new file or the old one). `extra` adds to the model's metadata.
void saveModelFile(const Model& model, const std::string& path, const Metadata& extra);
void saveCheckpointFile(const Model& model, const OptimizerSnapshot& optimizer, const std::string& path,
                        const Metadata& extra);

struct LoadedModel {
  std::unique_ptr<Model> model;
  bool checkpoint = false;      // the file holds an optimiser state
  OptimizerSnapshot optimizer;  // read only when asked for
};

// Reads a model file or a checkpoint. Every header field, and every tensor's name, dtype and
// shape, is checked before any tensor data is read. `withOptimizer`: read a checkpoint's optimiser
// state too (for a resume); otherwise its tensors are checked and skipped.
LoadedModel loadModelFile(const std::string& path, torch::Device device, bool withOptimizer = false);

}  // namespace siamese::core
