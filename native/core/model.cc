#include "model.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "errors.h"
#include "safetensors.h"

namespace siamese::core {

namespace {

// torch::manual_seed sets a process-wide generator: seeding and initialising happen together.
std::mutex& initMutex() {
  static std::mutex m;
  return m;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

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

std::vector<TensorBytes> parameterBytes(Model& model, std::vector<torch::Tensor>& keepAlive) {
  std::vector<TensorBytes> out;
  for (const auto& item : model.net()->named_parameters()) {
    torch::Tensor cpu = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    keepAlive.push_back(cpu);
    out.push_back({item.key(), DType::F32, cpu.sizes().vec(), static_cast<const uint8_t*>(cpu.data_ptr()),
                   static_cast<size_t>(cpu.numel()) * sizeof(float)});
  }
  return out;
}

}  // namespace

Loss parseLoss(const std::string& name) {
  if (name == "pair-ce") return Loss::PairCE;
  if (name == "contrastive") return Loss::Contrastive;
  if (name == "triplet") return Loss::Triplet;
  throw InvalidArgumentError("unknown loss \"" + name + "\"");
}

const char* lossName(Loss loss) {
  switch (loss) {
    case Loss::PairCE: return "pair-ce";
    case Loss::Contrastive: return "contrastive";
    case Loss::Triplet: return "triplet";
  }
  return "?";
}

Model::Model(const ModelConfig& config, torch::Device device, uint64_t seed) : config_(config), device_(device) {
  {
    std::lock_guard<std::mutex> lock(initMutex());
    torch::manual_seed(seed);
    net_ = SiameseNet(config.shape);
  }
  net_->to(device_);
}

Model::Model(const ModelConfig& config, torch::Device device, SiameseNet net)
    : config_(config), device_(device), net_(std::move(net)) {
  net_->to(device_);
}

void Model::useThreads() const {
  const int wanted = threads_;
  if (wanted > 0 && at::get_num_threads() != wanted) at::set_num_threads(wanted);
}

torch::Tensor Model::embedImages(const torch::Tensor& images, int64_t batchSize) {
  useThreads();
  torch::InferenceMode inference;
  std::lock_guard<std::mutex> lock(weightsMutex_);
  const int64_t n = images.size(0);
  std::vector<torch::Tensor> parts;
  // Uploaded once as uint8 (a quarter of float32), from pinned memory on a GPU; normalised there.
  const torch::Tensor source = device_.is_cuda() && images.is_cpu()
                                   ? images.pin_memory().to(device_, /*non_blocking=*/true)
                                   : images.to(device_);
  for (int64_t start = 0; start < n; start += batchSize) {
    const int64_t end = std::min(n, start + batchSize);
    const auto indices = torch::arange(start, end, torch::TensorOptions().dtype(torch::kLong).device(device_));
    parts.push_back(net_->embed(gatherNormalized(source, indices, config_.norm)));
  }
  return torch::cat(parts).to(torch::kCPU);
}

torch::Tensor Model::pairScores(const torch::Tensor& e1, const torch::Tensor& e2) {
  useThreads();
  torch::InferenceMode inference;
  std::lock_guard<std::mutex> lock(weightsMutex_);
  const auto a = e1.to(device_);
  const auto b = e2.to(device_);
  if (config_.loss == Loss::PairCE) return net_->head(a, b).to(torch::kCPU);
  return (a - b).norm(2, 1).to(torch::kCPU);
}

torch::Tensor Model::sameProbability(const torch::Tensor& e1, const torch::Tensor& e2) {
  const torch::Tensor scores = pairScores(e1, e2);
  if (config_.loss == Loss::PairCE) return torch::softmax(scores, 1).select(1, 1).contiguous();
  // Distances to a probability: 0.5 exactly at the decision threshold, steeper for small margins.
  const double scale = std::max(config_.margin, 1e-6) / 8.0;
  return torch::sigmoid((config_.threshold - scores) / scale).contiguous();
}

Metadata Model::fileMetadata(const std::string& kind) const {
  Metadata m = extra_;
  m[kFormatKey] = kFormatVersion;
  m["kind"] = kind;
  m["architecture"] = "reference";
  m["input_width"] = std::to_string(config_.shape.width);
  m["input_height"] = std::to_string(config_.shape.height);
  m["embedding_size"] = std::to_string(config_.shape.embeddingSize);
  m["norm_mean"] = number(config_.norm.mean);
  m["norm_std"] = number(config_.norm.std);
  m["loss"] = lossName(config_.loss);
  m["margin"] = number(config_.margin);
  m["threshold"] = number(config_.threshold);
  return m;
}

namespace {

// The weights and metadata of a file, taken together under the weights lock so that they agree.
struct FileContents {
  std::vector<torch::Tensor> keepAlive;
  std::vector<TensorBytes> tensors;
  Metadata metadata;
};

FileContents fileContents(Model& model, const std::string& kind, const Metadata& extra) {
  FileContents out;
  {
    std::lock_guard<std::mutex> lock(model.weightsMutex());
    out.tensors = parameterBytes(model, out.keepAlive);
    out.metadata = model.fileMetadata(kind);
  }
  for (const auto& [k, v] : extra) out.metadata[k] = v;
  return out;
}

}  // namespace

void saveModelFile(Model& model, const std::string& path, const Metadata& extra) {
  const FileContents file = fileContents(model, "model", extra);
  writeSafetensorsAtomic(path, file.tensors, file.metadata);
}

void saveCheckpointFile(Model& model, const OptimizerSnapshot& optimizer, const std::string& path,
                        const Metadata& extra) {
  FileContents file = fileContents(model, "checkpoint", extra);
  std::vector<torch::Tensor>& keepAlive = file.keepAlive;
  std::vector<TensorBytes>& tensors = file.tensors;
  Metadata& metadata = file.metadata;
  for (const auto& [name, tensor] : optimizer.tensors) {
    torch::Tensor cpu = tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
    keepAlive.push_back(cpu);
    tensors.push_back({"optimizer." + name, DType::F32, cpu.sizes().vec(), static_cast<const uint8_t*>(cpu.data_ptr()),
                       static_cast<size_t>(cpu.numel()) * sizeof(float)});
  }
  metadata["optimizer"] = optimizer.kind;
  for (const auto& [k, v] : optimizer.settings) metadata["optimizer_" + k] = v;
  writeSafetensorsAtomic(path, tensors, metadata);
}

LoadedModel loadModelFile(const std::string& path, torch::Device device) {
  const SafetensorsHeader header = readSafetensorsHeader(path);
  const Metadata& m = header.metadata;
  const auto format = m.find(kFormatKey);
  if (format == m.end())
    throw BadFileError(path, "not a siamese-torch model (no \"" + std::string(kFormatKey) + "\" metadata)");
  if (format->second != kFormatVersion) {
    throw BadFileError(
        path, "model format version " + format->second + " is not supported (this build reads " + kFormatVersion + ")");
  }
  const auto architecture = m.find("architecture");
  if (architecture == m.end() || architecture->second != "reference") {
    throw BadFileError(path, "unknown architecture \"" + (architecture == m.end() ? "" : architecture->second) + "\"");
  }
  ModelConfig config;
  config.shape.width = metadataInteger(path, m, "input_width", kMinInputSide, 4096);
  config.shape.height = metadataInteger(path, m, "input_height", kMinInputSide, 4096);
  config.shape.embeddingSize = metadataInteger(path, m, "embedding_size", 1, 1 << 16);
  config.norm.mean = metadataNumber(path, m, "norm_mean");
  config.norm.std = metadataNumber(path, m, "norm_std");
  if (!(config.norm.std > 0)) throw BadFileError(path, "metadata \"norm_std\" must be positive");
  const auto loss = m.find("loss");
  try {
    config.loss = parseLoss(loss == m.end() ? "" : loss->second);
  } catch (const InvalidArgumentError&) {
    throw BadFileError(path, "metadata \"loss\" is not a known loss");
  }
  config.margin = metadataNumber(path, m, "margin");
  config.threshold = metadataNumber(path, m, "threshold");

  // The shapes the metadata's architecture needs, computed without building it: every tensor is
  // checked against them before anything is allocated, so that a small file whose metadata claims
  // a huge input or embedding size is refused instead of allocating what it claims.
  std::map<std::string, std::vector<int64_t>> expected;
  for (auto& [name, shape] : parameterShapes(config.shape)) expected[name] = std::move(shape);

  LoadedModel loaded;
  loaded.metadata = m;
  const auto kind = m.find("optimizer");
  if (kind != m.end()) {
    if (kind->second != "adam" && kind->second != "sgd")
      throw BadFileError(path, "unknown optimizer \"" + kind->second + "\"");
    loaded.optimizer.kind = kind->second;
    for (const auto& [k, v] : m) {
      if (k.rfind("optimizer_", 0) == 0) loaded.optimizer.settings[k.substr(10)] = v;
    }
    // Read back when training resumes (std::stoll there): a whole number, checked here.
    if (m.count("optimizer_step") > 0) metadataInteger(path, m, "optimizer_step", 0, int64_t{1} << 53);
  }

  // Check every tensor's name, dtype and shape before reading any data. The header parser has
  // already checked that the tensors tile the file's data exactly, so once the shapes match, the
  // network is no larger than the file.
  std::map<std::string, const TensorEntry*> entries;
  for (const auto& t : header.tensors) {
    const bool isParameter = expected.count(t.name) > 0;
    const bool isOptimizer = !loaded.optimizer.kind.empty() && t.name.rfind("optimizer.", 0) == 0;
    if (!isParameter && !isOptimizer) throw BadFileError(path, "unexpected tensor \"" + t.name + "\"");
    if (t.dtype != DType::F32) {
      throw BadFileError(path, "tensor \"" + t.name + "\" is " + dtypeName(t.dtype) + ", expected F32");
    }
    if (isOptimizer) {
      const std::string rest = t.name.substr(10);
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
  for (const auto& [name, shape] : expected) {
    if (entries.count(name) == 0) throw BadFileError(path, "missing tensor \"" + name + "\"");
  }

  SiameseNet net(config.shape);  // parameterShapes() agrees with it (native/test/core_tests.cc)
  std::map<std::string, torch::Tensor> parameters;
  for (const auto& item : net->named_parameters()) parameters[item.key()] = item.value();

  std::ifstream in(path, std::ios::binary);
  if (!in) throw BadFileError(path, "cannot open");
  const auto readTensor = [&](const TensorEntry& t) {
    torch::Tensor out = torch::empty(t.shape, torch::kFloat);
    in.seekg(static_cast<std::streamoff>(header.dataStart + t.begin));
    in.read(static_cast<char*>(out.data_ptr()), static_cast<std::streamsize>(t.end - t.begin));
    if (!in) throw BadFileError(path, "cannot read tensor \"" + t.name + "\"");
    if (!torch::isfinite(out).all().item<bool>())
      throw BadFileError(path, "tensor \"" + t.name + "\" holds NaN or infinite values");
    return out;
  };
  {
    torch::NoGradGuard noGrad;
    for (const auto& [name, param] : parameters) param.copy_(readTensor(*entries[name]));
  }
  for (const auto& [name, entry] : entries) {
    if (name.rfind("optimizer.", 0) == 0) loaded.optimizer.tensors[name.substr(10)] = readTensor(*entry);
  }
  loaded.model = std::make_unique<Model>(config, device, std::move(net));
  for (const auto& [k, v] : m) {
    if (k != kFormatKey && k.rfind("optimizer", 0) != 0) loaded.model->extraMetadata()[k] = v;
  }
  return loaded;
}

}  // namespace siamese::core
