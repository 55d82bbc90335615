// Model files: safetensors (native/core/safetensors.h) whose tensors are the network's parameters
// under the reference PyTorch module's names, and whose metadata says what the model is (format
// version, architecture, input size, normalisation, loss, margin, threshold) and what it has done
// (training options, classes, epoch, metrics, data fingerprint). Checkpoints add the optimiser
// state as "optimizer.<param>.<state>" tensors and "optimizer*" metadata.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

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

// What initFromFile did, by our tensor names (without the prefix).
struct InitReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;                          // ours, not in the file: left at their initialisation
  std::vector<std::string> unexpected;                       // the file's (full names), not ours
  std::vector<std::pair<std::string, std::string>> skipped;  // embedding layer / head of another shape: why
};

// Starts a network from a safetensors file of weights trained elsewhere, e.g. a torchvision
// ResNet-18 state dict: tensors matched by name as PyTorch's load_state_dict(strict=False) does,
// file name = prefix + our name; any float dtype converted. A tower tensor of another shape is
// refused (BadFileError naming it) before anything changes; an embedding layer or head of another
// shape (a classifier's fc) is skipped and reported.
InitReport initFromFile(SiameseNet& net, const std::string& path, const std::string& prefix);

// The report as JSON ({path, prefix, loaded, missing, unexpected, skipped: [{name, reason}]}).
std::string initReportJson(const InitReport& report, const std::string& path, const std::string& prefix);

}  // namespace siamese::core
