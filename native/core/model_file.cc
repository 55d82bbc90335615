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

  // Floats as F32; integers (BatchNorm's num_batches_tracked) as I64, as PyTorch keeps them.
  void add(const std::string& name, const torch::Tensor& tensor) {
    const bool integer = tensor.scalar_type() == torch::kLong;
    torch::Tensor cpu = tensor.detach().to(torch::kCPU, integer ? torch::kLong : torch::kFloat).contiguous();
    keepAlive.push_back(cpu);
    tensors.push_back({name, integer ? DType::I64 : DType::F32, cpu.sizes().vec(),
                       static_cast<const uint8_t*>(cpu.data_ptr()), static_cast<size_t>(cpu.nbytes())});
  }
};

// One number for one channel (as files before colour had it), else a JSON array.
std::string channelValues(const std::vector<double>& values) {
  if (values.size() == 1) return jsonNumber(values[0]);
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i > 0 ? "," : "") + jsonNumber(values[i]);
  return out + "]";
}

Metadata configMetadata(const Model& model, const std::string& kind) {
  const ModelConfig c = model.config();
  Metadata m = model.metadata();
  m[kFormatKey] = kFormatVersion;
  m["kind"] = kind;
  m["architecture"] = choiceName(c.shape.tower);
  m["input_width"] = std::to_string(c.shape.width);
  m["input_height"] = std::to_string(c.shape.height);
  m["input_channels"] = std::to_string(c.shape.channels);
  m["embedding_size"] = std::to_string(c.shape.embeddingSize);
  m["norm_mean"] = channelValues(c.norm.mean);
  m["norm_std"] = channelValues(c.norm.std);
  m["loss"] = choiceName(c.loss);
  m["margin"] = jsonNumber(c.margin);
  m["threshold"] = jsonNumber(c.threshold);
  return m;
}

// The weights and the metadata of a file, taken together under the weights lock so that they agree.
void takeModel(const Model& model, const std::string& kind, TensorsToWrite& out, Metadata& metadata) {
  std::lock_guard<std::mutex> lock(model.weightsMutex());
  for (const auto& item : model.net()->named_parameters()) out.add(item.key(), item.value());
  for (const auto& item : model.net()->named_buffers()) out.add(item.key(), item.value());
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

// A value per channel: one number (grey), or a JSON array of `channels` numbers.
std::vector<double> metadataChannels(const std::string& path, const Metadata& m, const std::string& key,
                                     int64_t channels) {
  const auto it = m.find(key);
  if (it != m.end() && !it->second.empty() && it->second.front() == '[') {
    std::vector<double> out;
    try {
      for (const Json& v : parseJson(it->second).array) {
        if (v.kind != Json::Kind::Number || !std::isfinite(v.number)) throw std::invalid_argument("not a number");
        out.push_back(v.number);
      }
    } catch (const std::invalid_argument&) {
      out.clear();
    }
    if (static_cast<int64_t>(out.size()) != channels) {
      throw BadFileError(path, "metadata \"" + key + "\" is not " + std::to_string(channels) +
                                   " numbers, one a channel: \"" + it->second + "\"");
    }
    return out;
  }
  return std::vector<double>(static_cast<size_t>(channels), metadataNumber(path, m, key));
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
  ModelConfig config;
  config.shape.tower = metadataChoice<Tower>(path, m, "architecture");
  const int64_t least = minInputSide(config.shape.tower);
  config.shape.width = metadataInteger(path, m, "input_width", least, kMaxInputSide);
  config.shape.height = metadataInteger(path, m, "input_height", least, kMaxInputSide);
  // Files from before colour images have no channel count: they are grey.
  config.shape.channels = m.count("input_channels") > 0 ? metadataInteger(path, m, "input_channels", 1, 3) : 1;
  if (config.shape.channels == 2) throw BadFileError(path, "metadata \"input_channels\" must be 1 or 3");
  config.shape.embeddingSize = metadataInteger(path, m, "embedding_size", 1, 1 << 16);
  config.norm.mean = metadataChannels(path, m, "norm_mean", config.shape.channels);
  config.norm.std = metadataChannels(path, m, "norm_std", config.shape.channels);
  for (const double v : config.norm.std) {
    if (!(v > 0)) throw BadFileError(path, "metadata \"norm_std\" must be positive");
  }
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
  std::map<std::string, StateTensor> expected;
  for (auto& state : stateShapes(config.shape)) expected[state.name] = state;
  std::map<std::string, const TensorEntry*> entries;
  for (const auto& t : header.tensors) {
    const auto it = expected.find(t.name);
    const bool isOptimizer = checkpoint && startsWith(t.name, kOptimizerPrefix);
    if (it == expected.end() && !isOptimizer) throw BadFileError(path, "unexpected tensor \"" + t.name + "\"");
    const DType want = it != expected.end() && it->second.dtype == torch::kLong ? DType::I64 : DType::F32;
    if (t.dtype != want) {
      throw BadFileError(path, "tensor \"" + t.name + "\" is " + dtypeName(t.dtype) + ", expected " + dtypeName(want));
    }
    if (isOptimizer) {
      const std::string rest = t.name.substr(std::string(kOptimizerPrefix).size());
      const auto dot = rest.rfind('.');
      const auto param = expected.find(dot == std::string::npos ? "" : rest.substr(0, dot));
      if (param == expected.end() || !param->second.parameter || t.shape != param->second.shape) {
        throw BadFileError(path, "optimizer tensor \"" + t.name + "\" does not match a parameter");
      }
    } else if (t.shape != it->second.shape) {
      throw BadFileError(path, "tensor \"" + t.name + "\" has shape " + c10::str(c10::IntArrayRef(t.shape)) +
                                   ", expected " + c10::str(c10::IntArrayRef(it->second.shape)) +
                                   " for this architecture");
    }
    entries[t.name] = &t;
  }
  for (const auto& item : expected) {
    if (entries.count(item.first) == 0) throw BadFileError(path, "missing tensor \"" + item.first + "\"");
  }
  return entries;
}

torch::Dtype torchType(DType dtype) {
  switch (dtype) {
    case DType::F32: return torch::kFloat;
    case DType::F64: return torch::kDouble;
    case DType::F16: return torch::kHalf;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kLong;
    case DType::I32: return torch::kInt;
    case DType::I16: return torch::kShort;
    case DType::I8: return torch::kChar;
    case DType::U8: return torch::kByte;
    case DType::Bool: return torch::kBool;
  }
  return torch::kFloat;
}

// Reads tensors' bytes from the file (little-endian, as the format is), refusing NaN and
// infinite values.
class TensorReader {
 public:
  TensorReader(const std::string& path, uint64_t dataStart)
      : path_(path), dataStart_(dataStart), in_(path, std::ios::binary) {
    if (!in_) throw BadFileError(path, "cannot open");
  }

  // The tensor as the file holds it (its own dtype).
  torch::Tensor read(const TensorEntry& t) {
    torch::Tensor out = torch::empty(t.shape, torchType(t.dtype));
    in_.seekg(static_cast<std::streamoff>(dataStart_ + t.begin));
    in_.read(static_cast<char*>(out.data_ptr()), static_cast<std::streamsize>(t.end - t.begin));
    if (!in_) throw BadFileError(path_, "cannot read tensor \"" + t.name + "\"");
    if (out.is_floating_point() && !torch::isfinite(out).all().item<bool>())
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

  SiameseNet net(config.shape);  // stateShapes() agrees with it (native/test/core_tests.cc)
  TensorReader reader(path, header.dataStart);
  {
    torch::NoGradGuard noGrad;
    for (const auto& item : net->named_parameters()) item.value().copy_(reader.read(*entries.at(item.key())));
    for (const auto& item : net->named_buffers()) item.value().copy_(reader.read(*entries.at(item.key())));
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

namespace siamese::core {

namespace {

// The embedding layer and the head: not part of the tower that `init` starts.
bool onTop(const NetworkShape& shape, const std::string& name) {
  const std::string layer = name.substr(0, name.find('.'));
  return layer == "linear2" || layer == (shape.tower == Tower::Reference ? "linear1" : "fc");
}

}  // namespace

InitReport initFromFile(SiameseNet& net, const std::string& path, const std::string& prefix) {
  const SafetensorsHeader header = readSafetensorsHeader(path);
  std::map<std::string, const TensorEntry*> inFile;
  for (const auto& t : header.tensors) inFile[t.name] = &t;
  InitReport report;
  std::map<std::string, torch::Tensor> ours;
  for (const auto& item : net->named_parameters()) ours[item.key()] = item.value();
  for (const auto& item : net->named_buffers()) ours[item.key()] = item.value();
  // Every shape is checked before anything is read or changed: a refused file leaves the model as it was.
  std::vector<std::pair<torch::Tensor, const TensorEntry*>> toLoad;
  for (const auto& [name, tensor] : ours) {
    const auto it = inFile.find(prefix + name);
    if (it == inFile.end()) {
      report.missing.push_back(name);
      continue;
    }
    const TensorEntry& t = *it->second;
    if (t.shape != tensor.sizes().vec()) {
      const std::string shapes = "has shape " + c10::str(c10::IntArrayRef(t.shape)) + ", the model's " +
                                 c10::str(tensor.sizes()) + " (" + choiceName(net->shape().tower) + ", " +
                                 std::to_string(net->shape().channels) + " channels, embedding size " +
                                 std::to_string(net->shape().embeddingSize) + ")";
      if (onTop(net->shape(), name)) {
        // A classifier's fc (torchvision's 1000 ImageNet classes) is not an embedding layer: left as it is.
        report.skipped.push_back({name, shapes});
        continue;
      }
      throw BadFileError(path, "tensor \"" + t.name + "\" " + shapes);
    }
    if (t.dtype == DType::Bool || (tensor.is_floating_point() != (t.dtype == DType::F32 || t.dtype == DType::F64 ||
                                                                  t.dtype == DType::F16 || t.dtype == DType::BF16))) {
      throw BadFileError(path, "tensor \"" + t.name + "\" is " + dtypeName(t.dtype) + ", not a " +
                                   (tensor.is_floating_point() ? "floating-point" : "integer") + " tensor");
    }
    toLoad.emplace_back(tensor, &t);
    report.loaded.push_back(name);
  }
  for (const auto& [name, entry] : inFile) {
    const bool ourName = name.rfind(prefix, 0) == 0 && ours.count(name.substr(prefix.size())) > 0;
    if (!ourName) report.unexpected.push_back(name);
  }
  TensorReader reader(path, header.dataStart);
  std::vector<torch::Tensor> values;
  for (const auto& [tensor, entry] : toLoad) values.push_back(reader.read(*entry));
  torch::NoGradGuard noGrad;
  for (size_t i = 0; i < toLoad.size(); ++i) toLoad[i].first.copy_(values[i]);
  return report;
}

std::string initReportJson(const InitReport& r, const std::string& path, const std::string& prefix) {
  const auto list = [](const std::vector<std::string>& names) {
    std::string out = "[";
    for (size_t i = 0; i < names.size(); ++i) out += (i > 0 ? "," : "") + jsonQuote(names[i]);
    return out + "]";
  };
  std::string skipped = "[";
  for (size_t i = 0; i < r.skipped.size(); ++i) {
    skipped += (i > 0 ? "," : "") + std::string("{\"name\":") + jsonQuote(r.skipped[i].first) +
               ",\"reason\":" + jsonQuote(r.skipped[i].second) + "}";
  }
  skipped += "]";
  return "{\"path\":" + jsonQuote(path) + ",\"prefix\":" + jsonQuote(prefix) + ",\"loaded\":" + list(r.loaded) +
         ",\"missing\":" + list(r.missing) + ",\"unexpected\":" + list(r.unexpected) + ",\"skipped\":" + skipped + "}";
}

}  // namespace siamese::core
