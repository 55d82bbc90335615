#include "model_file.h"

#include <cmath>
#include <fstream>
#include <vector>

#include "errors.h"
#include "json.h"
#include "safetensors.h"

namespace siamese::core {

namespace {

constexpr const char* kOptimizerPrefix = "optimizer.";  // optimiser tensors
constexpr const char* kOptimizerKey = "optimizer";      // its kind; "optimizer_step": Adam's step

bool startsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// ---- writing ----

// Tensors to write, with the CPU float copies their bytes point into.
struct TensorsToWrite {
  std::vector<torch::Tensor> keepAlive;
  std::vector<TensorBytes> tensors;

  void add(const std::string& name, const torch::Tensor& tensor) {
    torch::Tensor cpu = tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
    keepAlive.push_back(cpu);
    tensors.push_back({name, DType::F32, cpu.sizes().vec(), static_cast<const uint8_t*>(cpu.data_ptr()),
                       static_cast<size_t>(cpu.numel()) * sizeof(float)});
  }
};

Metadata configMetadata(const Model& model, const std::string& kind) {
  const ModelConfig c = model.config();
  Metadata m = model.metadata();
  m[kFormatKey] = kFormatVersion;
  m["kind"] = kind;
  m["architecture"] = choiceName(Tower::Reference);
  m["input_width"] = std::to_string(c.shape.width);
  m["input_height"] = std::to_string(c.shape.height);
  m["embedding_size"] = std::to_string(c.shape.embeddingSize);
  m["norm_mean"] = jsonNumber(c.norm.mean);
  m["norm_std"] = jsonNumber(c.norm.std);
  m["loss"] = choiceName(c.loss);
  m["margin"] = jsonNumber(c.margin);
  m["threshold"] = jsonNumber(c.threshold);
  return m;
}

// The weights and the metadata of a file, taken together under the weights lock so that they agree.
void takeModel(const Model& model, const std::string& kind, TensorsToWrite& out, Metadata& metadata) {
  std::lock_guard<std::mutex> lock(model.weightsMutex());
  for (const auto& item : model.net()->named_parameters()) out.add(item.key(), item.value());
  metadata = configMetadata(model, kind);
}

// ---- reading ----

double metadataNumber(const std::string& path, const Metadata& m, const std::string& key) {
  const auto it = m.find(key);
  if (it == m.end()) throw BadFileError(path, "metadata lacks \"" + key + "\"");
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || end != it->second.c_str() + it->second.size() || !std::isfinite(v)) {
    throw BadFileError(path, "metadata \"" + key + "\" is not a number: \"" + it->second + "\"");
  }
  return v;
}

int64_t metadataInteger(const std::string& path, const Metadata& m, const std::string& key, int64_t lo, int64_t hi) {
  const double v = metadataNumber(path, m, key);
  if (v != std::floor(v) || v < static_cast<double>(lo) || v > static_cast<double>(hi)) {
    throw BadFileError(path, "metadata \"" + key + "\" is out of range: " + m.at(key));
  }
  return static_cast<int64_t>(v);
}

template <typename Enum>
Enum metadataChoice(const std::string& path, const Metadata& m, const std::string& key) {
  const auto it = m.find(key);
  try {
    return parseChoice<Enum>(it == m.end() ? "" : it->second);
  } catch (const InvalidArgumentError&) {
    throw BadFileError(path, "metadata \"" + key + "\" is not a known " + Choices<Enum>::kind + ": \"" +
                                 (it == m.end() ? "" : it->second) + "\"");
  }
}

// What the metadata says the model is: format, architecture, input, normalisation, loss.
ModelConfig readModelConfig(const std::string& path, const Metadata& m) {
  const auto format = m.find(kFormatKey);
  if (format == m.end())
    throw BadFileError(path, "not a siamese-torch model (no \"" + std::string(kFormatKey) + "\" metadata)");
  if (format->second != kFormatVersion) {
    throw BadFileError(
        path, "model format version " + format->second + " is not supported (this build reads " + kFormatVersion + ")");
  }
  const auto architecture = m.find("architecture");
  if (architecture == m.end() || architecture->second != choiceName(Tower::Reference)) {
    throw BadFileError(path, "unknown architecture \"" + (architecture == m.end() ? "" : architecture->second) + "\"");
  }
  ModelConfig config;
  config.shape.width = metadataInteger(path, m, "input_width", kMinInputSide, 4096);
  config.shape.height = metadataInteger(path, m, "input_height", kMinInputSide, 4096);
  config.shape.embeddingSize = metadataInteger(path, m, "embedding_size", 1, 1 << 16);
  config.norm.mean = metadataNumber(path, m, "norm_mean");
  config.norm.std = metadataNumber(path, m, "norm_std");
  if (!(config.norm.std > 0)) throw BadFileError(path, "metadata \"norm_std\" must be positive");
  config.loss = metadataChoice<Loss>(path, m, "loss");
  config.margin = metadataNumber(path, m, "margin");
  config.threshold = metadataNumber(path, m, "threshold");
  return config;
}

// Checks every tensor's name, dtype and shape against the network the metadata describes, before
// any data is read: a small file whose metadata claims a huge input is refused, not allocated.
// The header parser has already checked that the tensors tile the data exactly, so once the shapes
// match, the network is no larger than the file. Returns the entries by name.
std::map<std::string, const TensorEntry*> checkTensors(const std::string& path, const SafetensorsHeader& header,
                                                       const ModelConfig& config, bool checkpoint) {
  std::map<std::string, std::vector<int64_t>> expected;
  for (auto& [name, shape] : parameterShapes(config.shape)) expected[name] = std::move(shape);
  std::map<std::string, const TensorEntry*> entries;
  for (const auto& t : header.tensors) {
    const bool isParameter = expected.count(t.name) > 0;
    const bool isOptimizer = checkpoint && startsWith(t.name, kOptimizerPrefix);
    if (!isParameter && !isOptimizer) throw BadFileError(path, "unexpected tensor \"" + t.name + "\"");
    if (t.dtype != DType::F32)
      throw BadFileError(path, "tensor \"" + t.name + "\" is " + dtypeName(t.dtype) + ", expected F32");
    if (isOptimizer) {
      const std::string rest = t.name.substr(std::string(kOptimizerPrefix).size());
      const auto dot = rest.rfind('.');
      const std::string param = dot == std::string::npos ? "" : rest.substr(0, dot);
      if (expected.count(param) == 0 || t.shape != expected[param]) {
        throw BadFileError(path, "optimizer tensor \"" + t.name + "\" does not match a parameter");
      }
    } else if (t.shape != expected[t.name]) {
      throw BadFileError(path, "tensor \"" + t.name + "\" has shape " + c10::str(c10::IntArrayRef(t.shape)) +
                                   ", expected " + c10::str(c10::IntArrayRef(expected[t.name])) +
                                   " for this architecture");
    }
    entries[t.name] = &t;
  }
  for (const auto& item : expected) {
    if (entries.count(item.first) == 0) throw BadFileError(path, "missing tensor \"" + item.first + "\"");
  }
  return entries;
}

// Reads tensors' bytes from the file, refusing NaN and infinite values.
class TensorReader {
 public:
  TensorReader(const std::string& path, uint64_t dataStart)
      : path_(path), dataStart_(dataStart), in_(path, std::ios::binary) {
    if (!in_) throw BadFileError(path, "cannot open");
  }

  torch::Tensor read(const TensorEntry& t) {
    torch::Tensor out = torch::empty(t.shape, torch::kFloat);
    in_.seekg(static_cast<std::streamoff>(dataStart_ + t.begin));
    in_.read(static_cast<char*>(out.data_ptr()), static_cast<std::streamsize>(t.end - t.begin));
    if (!in_) throw BadFileError(path_, "cannot read tensor \"" + t.name + "\"");
    if (!torch::isfinite(out).all().item<bool>())
      throw BadFileError(path_, "tensor \"" + t.name + "\" holds NaN or infinite values");
    return out;
  }

 private:
  std::string path_;
  uint64_t dataStart_;
  std::ifstream in_;
};

}  // namespace

void saveModelFile(const Model& model, const std::string& path, const Metadata& extra) {
  TensorsToWrite file;
  Metadata metadata;
  takeModel(model, "model", file, metadata);
  for (const auto& [k, v] : extra) metadata[k] = v;
  writeSafetensorsAtomic(path, file.tensors, metadata);
}

void saveCheckpointFile(const Model& model, const OptimizerSnapshot& optimizer, const std::string& path,
                        const Metadata& extra) {
  TensorsToWrite file;
  Metadata metadata;
  takeModel(model, "checkpoint", file, metadata);
  for (const auto& [k, v] : extra) metadata[k] = v;
  for (const auto& [name, tensor] : optimizer.tensors) file.add(kOptimizerPrefix + name, tensor);
  metadata[kOptimizerKey] = choiceName(optimizer.kind);
  metadata["optimizer_step"] = std::to_string(optimizer.step);
  writeSafetensorsAtomic(path, file.tensors, metadata);
}

LoadedModel loadModelFile(const std::string& path, torch::Device device, bool withOptimizer) {
  const SafetensorsHeader header = readSafetensorsHeader(path);
  const Metadata& m = header.metadata;
  const ModelConfig config = readModelConfig(path, m);
  LoadedModel loaded;
  loaded.checkpoint = m.count(kOptimizerKey) > 0;
  if (loaded.checkpoint) {
    loaded.optimizer.kind = metadataChoice<Optimizer>(path, m, kOptimizerKey);
    if (m.count("optimizer_step") > 0)
      loaded.optimizer.step = metadataInteger(path, m, "optimizer_step", 0, int64_t{1} << 53);
  }
  const auto entries = checkTensors(path, header, config, loaded.checkpoint);

  SiameseNet net(config.shape);  // parameterShapes() agrees with it (native/test/core_tests.cc)
  TensorReader reader(path, header.dataStart);
  {
    torch::NoGradGuard noGrad;
    for (const auto& item : net->named_parameters()) item.value().copy_(reader.read(*entries.at(item.key())));
  }
  if (withOptimizer) {
    for (const auto& [name, entry] : entries) {
      if (startsWith(name, kOptimizerPrefix))
        loaded.optimizer.tensors[name.substr(std::string(kOptimizerPrefix).size())] = reader.read(*entry);
    }
  }
  loaded.model = std::make_unique<Model>(config, device, std::move(net));
  Metadata carried;
  for (const auto& [k, v] : m) {
    if (k != kFormatKey && !startsWith(k, kOptimizerKey)) carried[k] = v;
  }
  loaded.model->setMetadata(carried);
  return loaded;
}

}  // namespace siamese::core
