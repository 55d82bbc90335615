#include "model.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include "../core/contract.h"
#include "../core/cpu_allocator.h"
#include "../core/cuda_graph.h"
#include "../core/device.h"
#include "../core/evaluate.h"
#include "../core/inference.h"
#include "../core/metrics.h"
#include "../core/model.h"
#include "../core/model_file.h"
#include "../core/precision.h"
#include "../core/trainer.h"
#include "batcher.h"
#include "convert.h"
#include "data.h"
#include "errors.h"
#include "gallery.h"
#include "instance.h"
#include "pixels.h"
#include "worker.h"

namespace siamese::addon {

class ModelWrap;

// An event from the training thread, turned into JavaScript on the main thread.
struct TrainingJob;
struct TrainingEvent {
  enum class Kind { CopyPixels, Batch, Epoch, File, Done } kind;
  TrainingJob* job;
  core::BatchProgress batch;
  core::EpochMetrics epoch;
  std::string fileKind;
  std::string path;
};

// The pixels of a set, still in JavaScript memory: the training thread allocates their tensor
// and touches its pages, then the main thread copies into it (CopyPixels). A 60,000-image set
// is 47 MB: copied into fresh memory on the main thread, its page faults alone stalled the event
// loop for ~30 ms; into pages already touched, the copy takes a few milliseconds. The JavaScript
// array is read only on the main thread, so a detached or resized one is seen, not read.
struct PendingPixels {
  Napi::Reference<Napi::Uint8Array> source;  // main thread only
  int64_t count = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 1;
  torch::Tensor native;  // pixels held natively (a NativePixels store): used as they are, not copied
};

// One training run: its own thread (it may last hours; it must not hold a libuv pool thread),
// reporting through a thread-safe function, stoppable between batches.
struct TrainingJob {
  std::shared_ptr<core::Model> model;
  core::ImageData train;  // images: allocated by the thread, filled on the main thread (CopyPixels)
  core::ImageData test;
  PendingPixels trainPixels;
  PendingPixels testPixels;
  std::promise<std::optional<ErrorInfo>> pixelsCopied;  // set by the main thread after CopyPixels
  core::TrainConfig config;
  int64_t startEpoch = 0;
  std::optional<core::OptimizerSnapshot> resume;  // the checkpoint's optimiser state, for a resume
  std::atomic<bool> stop{false};
  Napi::ThreadSafeFunction events;
  std::optional<Napi::Promise::Deferred> deferred;
  std::thread thread;
  // Written by the thread before its last event, read on the main thread after it.
  core::TrainOutcome outcome;
  std::optional<ErrorInfo> error;
  ModelWrap* owner = nullptr;
  Napi::ObjectReference ownerRef;  // keeps the JavaScript model alive while it trains
};

namespace {

// Options objects were validated in lib/; reading them only converts. Names of choices become
// the contract's enums here, once (an unknown name is a misuse of the raw addon: ERR_INVALID_ARG).
double num(const Napi::Object& o, const char* key) { return o.Get(key).As<Napi::Number>().DoubleValue(); }
std::string str(const Napi::Object& o, const char* key) { return o.Get(key).As<Napi::String>().Utf8Value(); }
template <typename Enum>
Enum choice(const Napi::Object& o, const char* key) {
  return core::parseChoice<Enum>(str(o, key));
}

std::vector<double> numbers(const Napi::Object& o, const char* key) {
  const Napi::Array a = o.Get(key).As<Napi::Array>();
  std::vector<double> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(a.Get(i).As<Napi::Number>().DoubleValue());
  return out;
}

Napi::Array toArray(Napi::Env env, const std::vector<double>& values) {
  Napi::Array out = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) out.Set(static_cast<uint32_t>(i), values[i]);
  return out;
}

core::ModelConfig readModelConfig(const Napi::Object& o) {
  core::ModelConfig c;
  c.shape.tower = choice<core::Tower>(o, "tower");
  c.shape.width = static_cast<int64_t>(num(o, "width"));
  c.shape.height = static_cast<int64_t>(num(o, "height"));
  c.shape.channels = static_cast<int64_t>(num(o, "channels"));
  c.shape.embeddingSize = static_cast<int64_t>(num(o, "embeddingSize"));
  c.norm.mean = numbers(o, "mean");
  c.norm.std = numbers(o, "std");
  c.loss = choice<core::Loss>(o, "loss");
  c.margin = num(o, "margin");
  c.threshold = num(o, "threshold");
  return c;
}

// Images handed over from JavaScript are copied into a tensor LibTorch owns before any job is
// queued: the JavaScript buffer may change or be collected afterwards.
torch::Tensor copyImages(const Napi::Value& value, int64_t count, int64_t height, int64_t width, int64_t channels) {
  auto array = value.As<Napi::Uint8Array>();
  if (static_cast<int64_t>(array.ByteLength()) != count * height * width * channels) {
    throw Napi::TypeError::New(value.Env(), "siamese-torch addon: image buffer size does not match its shape");
  }
  auto out = torch::empty({count, height, width, channels}, torch::kUInt8);
  std::memcpy(out.data_ptr(), array.Data(), array.ByteLength());
  return out;
}

// A labelled set's labels and class count; its pixels are read by the caller.
core::ImageData readLabels(const Napi::Object& o) {
  core::ImageData d;
  auto labels = o.Get("labels").As<Napi::Int32Array>();
  d.labels.assign(labels.Data(), labels.Data() + labels.ElementLength());
  d.numClasses = static_cast<int>(num(o, "numClasses"));
  return d;
}

// A set's channel count (absent: grey, as sets before colour images).
int64_t channelsOf(const Napi::Object& o) {
  return o.Has("channels") && o.Get("channels").IsNumber() ? static_cast<int64_t>(num(o, "channels")) : 1;
}

// A set's pixels held natively (`pixels`, a frozen NativePixels store of the set's shape), shared,
// not copied; an undefined tensor when the set's pixels are a JavaScript array.
torch::Tensor nativePixels(const Napi::Object& o) {
  if (!o.Has("pixels") || o.Get("pixels").IsUndefined()) return {};
  const PixelsWrap* store = PixelsWrap::from(o.Env(), o.Get("pixels"));
  if (store == nullptr || !store->frozen()) {
    throw Napi::TypeError::New(o.Env(), "siamese-torch addon: expected a frozen NativePixels store as pixels");
  }
  const auto sizes = store->tensor().sizes();
  if (sizes[0] != static_cast<int64_t>(num(o, "count")) || sizes[1] != static_cast<int64_t>(num(o, "height")) ||
      sizes[2] != static_cast<int64_t>(num(o, "width")) || sizes[3] != channelsOf(o)) {
    throw Napi::TypeError::New(o.Env(), "siamese-torch addon: a NativePixels store does not match its set's shape");
  }
  return store->tensor();
}

core::ImageData readImageData(const Napi::Object& o) {
  core::ImageData d = readLabels(o);
  if (torch::Tensor native = nativePixels(o); native.defined()) {
    d.images = native;
    return d;
  }
  d.images = copyImages(o.Get("images"), static_cast<int64_t>(num(o, "count")), static_cast<int64_t>(num(o, "height")),
                        static_cast<int64_t>(num(o, "width")), channelsOf(o));
  return d;
}

PendingPixels pendingPixels(const Napi::Object& o) {
  PendingPixels p;
  p.count = static_cast<int64_t>(num(o, "count"));
  p.height = static_cast<int64_t>(num(o, "height"));
  p.width = static_cast<int64_t>(num(o, "width"));
  p.channels = channelsOf(o);
  p.native = nativePixels(o);
  if (p.native.defined()) return p;
  auto array = o.Get("images").As<Napi::Uint8Array>();
  if (static_cast<int64_t>(array.ByteLength()) != p.count * p.height * p.width * p.channels) {
    throw core::InvalidArgumentError("an image buffer does not match its shape (detached or resized?)");
  }
  p.source = Napi::Persistent(array);
  return p;
}

// On the training thread: the tensor for pending pixels, its pages touched.
torch::Tensor touchedTensor(const PendingPixels& p) {
  if (p.native.defined()) return p.native;
  torch::Tensor t = torch::empty({p.count, p.height, p.width, p.channels}, torch::kUInt8);
  std::memset(t.data_ptr(), 0, static_cast<size_t>(t.numel()));
  return t;
}

// On the main thread: the JavaScript pixels into their tensor. The array may have been detached
// (transferred) or replaced since train() was called: then nothing is read and the run fails.
void copyPending(PendingPixels& p, torch::Tensor& into, const char* which) {
  if (p.native.defined()) return;  // held natively: nothing to copy
  Napi::Uint8Array array = p.source.Value();
  const auto bytes = static_cast<size_t>(into.numel());
  if (array.IsEmpty() || array.ByteLength() != bytes || array.Data() == nullptr) {
    throw core::InvalidArgumentError(std::string("the ") + which +
                                     " images were detached or resized after train() was called");
  }
  std::memcpy(into.data_ptr(), array.Data(), bytes);
  p.source.Reset();
}

Napi::Object configToJs(Napi::Env env, const core::Model& model) {
  const core::ModelConfig c = model.config();
  Napi::Object o = Napi::Object::New(env);
  o.Set("tower", core::choiceName(c.shape.tower));
  o.Set("width", c.shape.width);
  o.Set("height", c.shape.height);
  o.Set("channels", c.shape.channels);
  o.Set("embeddingSize", c.shape.embeddingSize);
  o.Set("mean", toArray(env, c.norm.mean));
  o.Set("std", toArray(env, c.norm.std));
  o.Set("loss", core::choiceName(c.loss));
  o.Set("margin", c.margin);
  o.Set("threshold", c.threshold);
  return o;
}

Napi::Object metricsToJs(Napi::Env env, const core::EpochMetrics& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("epoch", m.epoch);
  o.Set("trainLoss", m.trainLoss);
  o.Set("trainAccuracy", m.trainAccuracy);
  o.Set("testLoss", m.testLoss);
  o.Set("testAccuracy", m.testAccuracy);
  o.Set("auc", m.auc);
  o.Set("threshold", m.threshold);
  o.Set("seconds", m.seconds);
  o.Set("pairsPerSecond", m.pairsPerSecond);
  return o;
}

}  // namespace

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod("info", &ModelWrap::Info),
                           InstanceMethod("embed", &ModelWrap::Embed),
                           InstanceMethod("predictPairs", &ModelWrap::PredictPairs),
                           InstanceMethod("comparePairs", &ModelWrap::ComparePairs),
                           InstanceMethod("classScores", &ModelWrap::ClassScores),
                           InstanceMethod("evaluate", &ModelWrap::Evaluate),
                           InstanceMethod("save", &ModelWrap::Save),
                           InstanceMethod("train", &ModelWrap::Train),
                           InstanceMethod("stopTraining", &ModelWrap::StopTraining),
                           InstanceMethod("dispose", &ModelWrap::Dispose),
                           InstanceMethod("setMetadata", &ModelWrap::SetMetadata),
                           InstanceMethod("setPrecision", &ModelWrap::SetPrecision),
                           InstanceMethod("setPredictBatch", &ModelWrap::SetPredictBatch),
                           InstanceMethod("searchIndex", &ModelWrap::SearchIndex),
                           InstanceMethod("batchStats", &ModelWrap::BatchStats),
                           InstanceMethod("fingerprint", &ModelWrap::Fingerprint),
                       });
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {}

  // `checkpointState`: a checkpoint's optimiser state, kept until the model trains (a resume).
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<core::Model> model,
                           std::optional<core::OptimizerSnapshot> checkpointState = std::nullopt) {
    Napi::Object object = Instance::get(env)->modelClass.New({});
    ModelWrap* wrap = Unwrap(object);
    wrap->batcher_->setMaxPairs(PairBatcher::defaultMaxPairs(model->device()));
    wrap->model_ = std::move(model);
    wrap->checkpointState_ = std::move(checkpointState);
    return object;
  }

  void finishTraining(TrainingJob* job);

 private:
  // The model, or ERR_BUSY/ERR_DISPOSED. A job in flight counts until its promise settles.
  std::shared_ptr<core::Model> use(Napi::Env env) {
    if (!model_) throw makeError(env, {"ERR_DISPOSED", "this model has been disposed", ""});
    return model_;
  }

  // A job on libuv's pool, by default handed to the compute thread. It counts as in flight until
  // its promise settles, and keeps this JavaScript object (so `this`) alive until then.
  template <typename Result>
  Napi::Promise job(Napi::Env env, std::function<Result()> work, std::function<Napi::Value(Napi::Env, Result&)> toJs,
                    typename PromiseWorker<Result>::On on = PromiseWorker<Result>::On::ComputeThread) {
    ++jobs_;
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(Value()));
    return PromiseWorker<Result>::Start(
        env, std::move(work), std::move(toJs),
        [this, self]() {
          --jobs_;
          self->Reset();
        },
        on);
  }

  // A job whose result is a float tensor, handed to JavaScript as a Float32Array.
  Napi::Promise floatJob(Napi::Env env, std::function<torch::Tensor()> work) {
    return job<torch::Tensor>(env, std::move(work),
                              [](Napi::Env e, torch::Tensor& r) -> Napi::Value { return toFloat32Array(e, r); });
  }

  // Argument `index`: `count` images of this model's input size, copied into a tensor.
  static torch::Tensor imagesArg(const Napi::CallbackInfo& info, size_t index, int64_t count,
                                 const core::Model& model) {
    return copyImages(info[index], count, model.shape().height, model.shape().width, model.shape().channels);
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      Napi::Object out = Napi::Object::New(env);
      out.Set("config", configToJs(env, *model));
      out.Set("device", core::deviceName(model->device()));
      out.Set("threads", model->threads());
      out.Set("precision", core::choiceName(model->precision()));
      out.Set("predictBatch", static_cast<double>(batcher_->maxPairs()));
      Napi::Object metadata = Napi::Object::New(env);
      for (const auto& [k, v] : model->metadata()) metadata.Set(k, v);
      out.Set("metadata", metadata);
      return out;
    });
  }

  // embed(images: Uint8Array, count) -> Promise<Float32Array [count * E]>
  Napi::Value Embed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      torch::Tensor images = imagesArg(info, 0, static_cast<int64_t>(numberArg(info, 1)), *model);
      return floatJob(env, [model, images]() { return model->embedImages(images); });
    });
  }

  // predictPairs(left: Uint8Array, right: Uint8Array, count) -> Promise<Float32Array P(same)>.
  // Calls made while the model's previous batch runs share one forward pass (batcher.h).
  Napi::Value PredictPairs(const Napi::CallbackInfo& info) { return pairsCall(info, false); }

  // comparePairs(left, right, count) -> Promise<Float32Array [2 * count]>: P(same) of each pair,
  // then the embeddings' distance of each; batched with predictPairs' calls.
  Napi::Value ComparePairs(const Napi::CallbackInfo& info) { return pairsCall(info, true); }

  Napi::Value pairsCall(const Napi::CallbackInfo& info, bool distances) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      const auto count = static_cast<int64_t>(numberArg(info, 2));
      torch::Tensor left = imagesArg(info, 0, count, *model);
      torch::Tensor right = imagesArg(info, 1, count, *model);
      if (batcher_->maxPairs() <= 0) {
        if (!distances)
          return floatJob(env, [model, left, right]() { return core::predictPairs(*model, left, right); });
        return floatJob(env, [model, left, right]() { return core::comparePairs(*model, left, right).t(); });
      }
      auto deferred = Napi::Promise::Deferred::New(env);
      Napi::Promise promise = deferred.Promise();
      ++jobs_;
      if (batcher_->add({left, right, deferred, distances})) queuePairBatch(env, model);
      return promise;
    });
  }

  // A batch of the pending predictPairs calls; when it has settled, the next one if calls are left.
  void queuePairBatch(Napi::Env env, std::shared_ptr<core::Model> model) {
    auto self = std::make_shared<Napi::ObjectReference>(Napi::Persistent(Value()));
    auto* worker = new PairBatchWorker(env, batcher_, model, [this, self, model](Napi::Env e, size_t calls) {
      jobs_ -= static_cast<int>(calls);
      if (batcher_->needsBatch()) queuePairBatch(e, model);
      self->Reset();
    });
    worker->Queue();
  }

  // setPredictBatch(maxPairs): the most pairs concurrent predictPairs calls share a forward pass
  // with (0: every call its own pass, as before batching).
  Napi::Value SetPredictBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      use(env);
      batcher_->setMaxPairs(static_cast<int64_t>(numberArg(info, 0)));
      return env.Undefined();
    });
  }

  // searchIndex(index: NativeIndex, queries: Float32Array [Q * E], k) -> Promise<{ ids: Float64Array,
  // pSame: Float32Array, distance: Float32Array, k }>: each query's k nearest rows (fewer when the
  // index has fewer), best first, by this model's pair score; row-major [Q, k].
  Napi::Value SearchIndex(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      IndexWrap* wrap = IndexWrap::from(env, info.Length() > 0 ? info[0] : env.Undefined());
      if (wrap == nullptr) throw argError(env, "a NativeIndex as argument 0");
      auto index = wrap->index();
      torch::Tensor queries = floatRowsArg(info, 1, index->dims());
      const auto k = static_cast<int64_t>(numberArg(info, 2));
      return job<core::Neighbours>(
          env, [model, index, queries, k]() { return index->search(*model, queries, k); },
          [](Napi::Env e, core::Neighbours& n) -> Napi::Value {
            Napi::Object out = Napi::Object::New(e);
            out.Set("ids", toFloat64Array(e, n.ids));
            out.Set("pSame", toFloat32Array(e, n.pSame));
            out.Set("distance", toFloat32Array(e, n.distance));
            out.Set("k", static_cast<double>(n.ids.size(1)));
            return out;
          });
    });
  }

  // fingerprint() -> Promise<string>: 16 hex digits that change when anything deciding the
  // embeddings does (core::modelFingerprint).
  Napi::Value Fingerprint(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      return job<std::string>(
          env, [model]() { return core::modelFingerprint(*model); },
          [](Napi::Env e, std::string& text) -> Napi::Value { return Napi::String::New(e, text); });
    });
  }

  // batchStats() -> { passes, pairs, calls, bySize: number[10], waiting }: the shared forward passes
  // of predictPairs and comparePairs calls so far (batcher.h), and the calls waiting now.
  Napi::Value BatchStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const PairBatcher::Stats s = batcher_->stats();
    Napi::Object out = Napi::Object::New(env);
    out.Set("passes", static_cast<double>(s.passes));
    out.Set("pairs", static_cast<double>(s.pairs));
    out.Set("calls", static_cast<double>(s.calls));
    Napi::Array sizes = Napi::Array::New(env, s.bySize.size());
    for (size_t i = 0; i < s.bySize.size(); ++i) sizes.Set(static_cast<uint32_t>(i), static_cast<double>(s.bySize[i]));
    out.Set("bySize", sizes);
    out.Set("waiting", static_cast<double>(s.waiting));
    return out;
  }

  // classScores(queries, queryCount, support, supportCount, supportLabels: Int32Array, numClasses)
  // -> Promise<Float32Array [queryCount * numClasses]>: per class, the highest P(same) of a query
  // with that class's support images.
  Napi::Value ClassScores(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      const auto q = static_cast<int64_t>(numberArg(info, 1));
      const auto s = static_cast<int64_t>(numberArg(info, 3));
      torch::Tensor queries = imagesArg(info, 0, q, *model);
      torch::Tensor support = imagesArg(info, 2, s, *model);
      auto labelArray = int32ArrayArg(info, 4);
      std::vector<int32_t> labels(labelArray.Data(), labelArray.Data() + labelArray.ElementLength());
      const auto classes = static_cast<int64_t>(numberArg(info, 5));
      return floatJob(env, [model, queries, support, labels, classes]() {
        return core::classScores(*model, queries, support, labels, classes);
      });
    });
  }

  // evaluate(set, { testSeed, ways, shots, queries, episodes, seed, classGroups: number[],
  // allPairs, retrieval }) -> Promise<metrics> (lib/model.ts's Metrics, less what lib/ adds).
  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      auto data = std::make_shared<core::ImageData>(readImageData(info[0].As<Napi::Object>()));
      const Napi::Object o = info[1].As<Napi::Object>();
      core::EvaluationOptions options;
      options.testSeed = static_cast<uint64_t>(num(o, "testSeed"));
      options.episodes.ways = static_cast<int>(num(o, "ways"));
      options.episodes.shots = static_cast<int>(num(o, "shots"));
      options.episodes.queries = static_cast<int>(num(o, "queries"));
      options.episodes.episodes = static_cast<int>(num(o, "episodes"));
      options.episodes.seed = static_cast<uint64_t>(num(o, "seed"));
      for (const double group : numbers(o, "classGroups"))
        options.episodes.classGroups.push_back(static_cast<int32_t>(group));
      options.allPairs = o.Get("allPairs").ToBoolean().Value();
      options.retrieval = o.Get("retrieval").ToBoolean().Value();
      return job<core::SetEvaluation>(
          env, [model, data, options]() { return core::evaluateSet(*model, *data, options); },
          [options](Napi::Env e, core::SetEvaluation& r) -> Napi::Value {
            Napi::Object out = Napi::Object::New(e);
            out.Set("loss", r.pairs.loss);
            out.Set("accuracy", r.pairs.accuracy);
            out.Set("auc", r.pairs.auc);
            out.Set("threshold", r.pairs.threshold);
            out.Set("bestAccuracy", r.pairs.bestAccuracy);
            out.Set("pairs", r.pairs.pairs);
            if (r.episodes) {
              Napi::Object episodes = Napi::Object::New(e);
              episodes.Set("ways", options.episodes.ways);
              episodes.Set("shots", options.episodes.shots);
              episodes.Set("queries", options.episodes.queries);
              episodes.Set("episodes", options.episodes.episodes);
              episodes.Set("accuracy", r.episodes->accuracy);
              episodes.Set("ci95", r.episodes->ci95);
              out.Set("episodes", episodes);
            } else {
              out.Set("episodes", e.Null());
            }
            Napi::Object verification = Napi::Object::New(e);
            verification.Set("pairs", verificationObject(e, r.fixedPairs));
            verification.Set("allPairs", r.allPairs ? Napi::Value(verificationObject(e, *r.allPairs)) : e.Null());
            out.Set("verification", verification);
            if (r.retrieval) {
              Napi::Object retrieval = Napi::Object::New(e);
              retrieval.Set("queries", r.retrieval->queries);
              retrieval.Set("precisionAt1", r.retrieval->precisionAt1);
              retrieval.Set("rPrecision", r.retrieval->rPrecision);
              retrieval.Set("mapAtR", r.retrieval->mapAtR);
              out.Set("retrieval", retrieval);
            } else {
              out.Set("retrieval", e.Null());
            }
            return out;
          });
    });
  }

  // A VerificationMetrics as lib/model.ts's Verification, its curve thinned for reports.
  static Napi::Object verificationObject(Napi::Env env, const core::VerificationMetrics& m) {
    Napi::Object out = Napi::Object::New(env);
    out.Set("positives", m.positives);
    out.Set("negatives", m.negatives);
    out.Set("auc", m.auc);
    out.Set("eer", m.eer);
    out.Set("eerThreshold", m.eerThreshold);
    Napi::Array tar = Napi::Array::New(env, core::kTarFars.size());
    for (size_t f = 0; f < core::kTarFars.size(); ++f) {
      Napi::Object point = Napi::Object::New(env);
      point.Set("far", core::kTarFars[f]);
      point.Set("tar", m.tarAtFar[f] ? Napi::Value(Napi::Number::New(env, *m.tarAtFar[f])) : env.Null());
      tar.Set(static_cast<uint32_t>(f), point);
    }
    out.Set("tarAtFar", tar);
    const auto roc = core::thinRoc(m.roc, kRocPoints);
    std::vector<double> far;
    std::vector<double> truth;
    std::vector<double> threshold;
    for (const core::RocPoint& p : roc) {
      far.push_back(p.falseAcceptRate);
      truth.push_back(p.trueAcceptRate);
      threshold.push_back(p.threshold);
    }
    Napi::Object curve = Napi::Object::New(env);
    curve.Set("far", toArray(env, far));
    curve.Set("tar", toArray(env, truth));
    curve.Set("threshold", toArray(env, threshold));
    out.Set("roc", curve);
    return out;
  }
  static constexpr size_t kRocPoints = 200;

  // save(path) -> Promise<void>
  Napi::Value Save(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      const std::string path = stringArg(info, 0);
      return job<bool>(
          env,
          [model, path]() {
            core::saveModelFile(*model, path, {});
            return true;
          },
          [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); }, PromiseWorker<bool>::On::LibuvPool);
    });
  }

  // setMetadata(record): strings carried into every file this model writes (classes, options).
  // setPrecision('fp32' | 'bf16'): ERR_UNSUPPORTED where this machine cannot compute in it.
  Napi::Value SetPrecision(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      if (training_ != nullptr) throw makeError(env, {"ERR_BUSY", "this model is already training", ""});
      model->setPrecision(core::parseChoice<core::Precision>(stringArg(info, 0)));
      return env.Undefined();
    });
  }

  Napi::Value SetMetadata(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto model = use(env);
      if (training_ != nullptr) throw makeError(env, {"ERR_BUSY", "this model is already training", ""});
      const Napi::Object o = info[0].As<Napi::Object>();
      const Napi::Array keys = o.GetPropertyNames();
      core::Metadata entries;
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        const std::string k = keys.Get(i).As<Napi::String>().Utf8Value();
        entries[k] = o.Get(k).As<Napi::String>().Utf8Value();
      }
      model->setMetadata(entries);
      return env.Undefined();
    });
  }

  // train(train, test, config, onEvent) -> Promise<EpochMetrics[]>
  Napi::Value Train(const Napi::CallbackInfo& info);

  Napi::Value StopTraining(const Napi::CallbackInfo& info) {
    if (training_ != nullptr) training_->stop = true;
    return info.Env().Undefined();
  }

  // dispose(): frees the weights now. Refused while a job runs (ERR_BUSY).
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (training_ != nullptr || jobs_ > 0) {
        throw makeError(env,
                        {"ERR_BUSY",
                         "cannot dispose a model while a job runs on it (" +
                             std::string(training_ != nullptr ? "training" : std::to_string(jobs_) + " job(s)") + ")",
                         ""});
      }
      model_.reset();
      checkpointState_.reset();
      return env.Undefined();
    });
  }

  // All main thread only.
  std::shared_ptr<core::Model> model_;
  std::optional<core::OptimizerSnapshot> checkpointState_;  // loaded for a resume; handed to the run
  int jobs_ = 0;
  // Concurrent predictPairs calls gathered into shared forward passes (batcher.h).
  std::shared_ptr<PairBatcher> batcher_ = std::make_shared<PairBatcher>(PairBatcher::defaultMaxPairs(torch::kCPU));
  TrainingJob* training_ = nullptr;
};

// Runs on the main thread for each event the training thread sends.
void deliverTrainingEvent(Napi::Env env, Napi::Function onEvent, TrainingEvent* event) {
  Napi::HandleScope scope(env);
  Napi::Object o = Napi::Object::New(env);
  switch (event->kind) {
    case TrainingEvent::Kind::Batch: {
      const auto& b = event->batch;
      o.Set("type", "batch");
      o.Set("epoch", b.epoch);
      o.Set("epochs", b.epochs);
      o.Set("batch", b.batch);
      o.Set("batches", b.batches);
      o.Set("loss", b.loss);
      o.Set("lr", b.lr);
      o.Set("pairsPerSecond", b.pairsPerSecond);
      o.Set("etaSeconds", b.etaSeconds);
      break;
    }
    case TrainingEvent::Kind::Epoch:
      o = metricsToJs(env, event->epoch);
      o.Set("type", "epoch");
      break;
    case TrainingEvent::Kind::File:
      o.Set("type", "file");
      o.Set("kind", event->fileKind);
      o.Set("path", event->path);
      break;
    case TrainingEvent::Kind::CopyPixels:
    case TrainingEvent::Kind::Done: break;
  }
  onEvent.Call({o});
}

void onTrainingEvent(Napi::Env env, Napi::Function onEvent, TrainingEvent* event) {
  std::unique_ptr<TrainingEvent> owned(event);
  TrainingJob* job = event->job;
  if (env == nullptr) return;  // the environment is going away (the thread stops on its own)
  if (event->kind == TrainingEvent::Kind::Done) {
    job->owner->finishTraining(job);
    return;
  }
  if (event->kind == TrainingEvent::Kind::CopyPixels) {
    std::optional<ErrorInfo> error;
    try {
      Napi::HandleScope scope(env);
      copyPending(job->trainPixels, job->train.images, "training");
      copyPending(job->testPixels, job->test.images, "test");
    } catch (...) {
      error = describeCurrentException();
    }
    job->pixelsCopied.set_value(error);
    return;
  }
  // lib/ wraps the user's callback so that it never throws. What can still throw is Node-API
  // itself while the environment shuts down (worker.terminate(), process.exit() in a worker):
  // JavaScript can no longer run, and an exception escaping here would abort the process.
  try {
    deliverTrainingEvent(env, onEvent, event);
  } catch (...) {
  }
}

// On the training thread: the tensors for both sets, their pages touched here, filled by the main
// thread. False when asked to stop meanwhile (the environment is exiting: the copy may never come).
template <typename Send>
bool receivePixels(TrainingJob* raw, const Send& send) {
  raw->train.images = touchedTensor(raw->trainPixels);
  raw->test.images = touchedTensor(raw->testPixels);
  std::future<std::optional<ErrorInfo>> copied = raw->pixelsCopied.get_future();
  send(new TrainingEvent{TrainingEvent::Kind::CopyPixels, raw, {}, {}, "", ""});
  while (copied.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
    if (raw->stop.load()) {
      raw->outcome.stopped = true;
      return false;
    }
  }
  if (std::optional<ErrorInfo> error = copied.get()) {
    raw->error = std::move(error);
    return false;
  }
  return true;
}

// The body of a training run's own thread.
void trainingThread(TrainingJob* raw) {
  // Grad mode is thread-local: this thread trains with gradients on.
  torch::AutoGradMode grad(true);
  const auto send = [raw](TrainingEvent* e) {
    if (raw->events.BlockingCall(e, onTrainingEvent) != napi_ok) delete e;
  };
  core::TrainHooks hooks;
  hooks.stop = &raw->stop;
  hooks.onBatch = [&](const core::BatchProgress& b) {
    send(new TrainingEvent{TrainingEvent::Kind::Batch, raw, b, {}, "", ""});
  };
  hooks.onEpoch = [&](const core::EpochMetrics& m) {
    send(new TrainingEvent{TrainingEvent::Kind::Epoch, raw, {}, m, "", ""});
  };
  hooks.onFile = [&](const std::string& kind, const std::string& path) {
    send(new TrainingEvent{TrainingEvent::Kind::File, raw, {}, {}, kind, path});
  };
  try {
    if (receivePixels(raw, send)) {
      raw->outcome = core::trainModel(*raw->model, raw->train, raw->test, raw->config, hooks, raw->startEpoch,
                                      raw->resume ? &*raw->resume : nullptr);
    }
  } catch (...) {
    raw->error = describeCurrentException();
  }
  core::returnFreeCpuMemory();  // the step buffers kept for reuse, and malloc's free pages, go back
  send(new TrainingEvent{TrainingEvent::Kind::Done, raw, {}, {}, "", ""});
  raw->events.Release();
}

Napi::Value ModelWrap::Train(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto model = use(env);
    if (training_ != nullptr) throw makeError(env, {"ERR_BUSY", "this model is already training", ""});
    auto job = std::make_unique<TrainingJob>();
    job->model = model;
    job->train = readLabels(info[0].As<Napi::Object>());
    job->test = readLabels(info[1].As<Napi::Object>());
    job->trainPixels = pendingPixels(info[0].As<Napi::Object>());
    job->testPixels = pendingPixels(info[1].As<Napi::Object>());
    const Napi::Object o = info[2].As<Napi::Object>();
    core::TrainConfig& c = job->config;
    c.epochs = static_cast<int64_t>(num(o, "epochs"));
    c.batchSize = static_cast<int64_t>(num(o, "batchSize"));
    c.seed = static_cast<uint64_t>(num(o, "seed"));
    c.pairs = choice<core::PairScheme>(o, "pairs");
    c.mining = choice<core::Mining>(o, "mining");
    c.optimizer = choice<core::Optimizer>(o, "optimizer");
    c.lr = num(o, "lr");
    c.lrSchedule = choice<core::LrSchedule>(o, "lrSchedule");
    c.warmup = num(o, "warmup");
    c.weightDecay = num(o, "weightDecay");
    c.momentum = num(o, "momentum");
    c.saveEvery = static_cast<int64_t>(num(o, "saveEvery"));
    c.outDir = str(o, "outDir");
    c.threads = static_cast<int>(num(o, "threads"));
    // Absent: the model's own precision. Checked here, so that an unsupported one fails at once.
    if (o.Get("precision").IsString()) {
      c.precision = choice<core::Precision>(o, "precision");
      core::checkPrecision(*c.precision, model->device());
    }
    c.testSeed = static_cast<uint64_t>(num(o, "testSeed"));
    c.freezeStages = static_cast<int64_t>(num(o, "freezeStages"));
    c.augment = readAugment(o.Get("augment").As<Napi::Object>());
    c.cudaGraph = o.Get("cudaGraph").ToBoolean();
    if (c.cudaGraph) core::checkCudaGraphs(model->device());  // refused at once, not on the training thread
    c.expectedDataFingerprint = str(o, "expectedDataFingerprint");
    if (o.Get("distributed").IsObject()) {
      // Checked in lib/ (options.ts, resolveDistributed); the meeting happens on the training thread.
      const Napi::Object d = o.Get("distributed").As<Napi::Object>();
      core::DistributedConfig dc;
      dc.rank = static_cast<int>(num(d, "rank"));
      dc.worldSize = static_cast<int>(num(d, "worldSize"));
      dc.masterAddr = str(d, "masterAddr");
      dc.masterPort = static_cast<int>(num(d, "masterPort"));
      dc.agentStore = d.Get("agentStore").ToBoolean();
      dc.backend = str(d, "backend");
      dc.timeout = std::chrono::milliseconds(static_cast<int64_t>(num(d, "timeoutMs")));
      dc.runId = str(d, "runId");
      c.distributed = dc;
    }
    job->startEpoch = static_cast<int64_t>(num(o, "startEpoch"));
    if (o.Get("resume").ToBoolean()) {
      // The optimiser state loadModel kept: a model resumes once, from the checkpoint it came from.
      if (!checkpointState_) {
        throw makeError(env, {"ERR_INVALID_ARG", "this model holds no checkpoint state to resume from", ""});
      }
      job->resume = std::move(checkpointState_);
      checkpointState_.reset();
    }
    job->deferred.emplace(Napi::Promise::Deferred::New(env));
    job->owner = this;
    job->ownerRef = Napi::Persistent(Value());
    TrainingJob* raw = job.get();
    job->events = Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "siamese-torch training", 0, 1);
    Napi::Promise promise = job->deferred->Promise();
    training_ = job.release();
    Instance::get(env)->trainingJobs.insert(raw);
    raw->thread = std::thread(trainingThread, raw);
    return promise;
  });
}

void ModelWrap::finishTraining(TrainingJob* job) {
  Napi::Env env = Env();
  if (job->thread.joinable()) job->thread.join();
  Instance::get(env)->trainingJobs.erase(job);
  training_ = nullptr;
  std::unique_ptr<TrainingJob> owned(job);
  // Settling can fail only while the environment shuts down (JavaScript can no longer run); an
  // exception must not escape into Node then, or the process aborts.
  try {
    Napi::HandleScope scope(env);
    if (job->error) {
      job->deferred->Reject(makeError(env, *job->error).Value());
    } else if (job->outcome.stopped) {
      job->deferred->Reject(
          makeError(env,
                    {"ABORT_ERR", "training was aborted; the model keeps the weights of its last completed step", ""})
              .Value());
    } else {
      Napi::Array history = Napi::Array::New(env, job->outcome.history.size());
      for (size_t i = 0; i < job->outcome.history.size(); ++i)
        history.Set(static_cast<uint32_t>(i), metricsToJs(env, job->outcome.history[i]));
      Napi::Object result = Napi::Object::New(env);
      result.Set("history", history);
      result.Set("rank", job->outcome.rank);
      result.Set("worldSize", job->outcome.worldSize);
      result.Set("allReduceWaitSeconds", job->outcome.allReduceWaitSeconds);
      job->deferred->Resolve(result);
    }
  } catch (...) {
  }
  job->ownerRef.Reset();
}

namespace {

// createModel(config, device, seed, threads, init?: { path, prefix }, weightInit?) -> Promise<NativeModel>
// init: start the tower from a safetensors file of weights; the report goes into the "init" metadata.
// weightInit: 'torch' (the default) or 'xavier', how fresh weights are drawn (network.h, initWeights).
Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const core::ModelConfig config = readModelConfig(info[0].As<Napi::Object>());
    const std::string device = stringArg(info, 1);
    const auto seed = static_cast<uint64_t>(numberArg(info, 2));
    const int threads = static_cast<int>(numberArg(info, 3));
    std::string initPath;
    std::string initPrefix;
    if (info.Length() > 4 && info[4].IsObject()) {
      initPath = str(info[4].As<Napi::Object>(), "path");
      initPrefix = str(info[4].As<Napi::Object>(), "prefix");
    }
    const core::WeightInit weightInit = info.Length() > 5 && info[5].IsString()
                                            ? core::parseChoice<core::WeightInit>(stringArg(info, 5))
                                            : core::WeightInit::Torch;
    return PromiseWorker<std::shared_ptr<core::Model>>::Start(
        env,
        [config, device, seed, threads, initPath, initPrefix, weightInit]() {
          auto model = std::make_shared<core::Model>(config, core::parseDevice(device), seed, weightInit);
          model->setThreads(threads);
          if (!initPath.empty()) {
            const core::InitReport report = core::initFromFile(model->net(), initPath, initPrefix);
            model->setMetadata({{"init", core::initReportJson(report, initPath, initPrefix)}});
          }
          return model;
        },
        [](Napi::Env e, std::shared_ptr<core::Model>& m) -> Napi::Value { return ModelWrap::Wrap(e, m); });
  });
}

// loadModel(path, device, threads, keepOptimizer) -> Promise<{ model: NativeModel, checkpoint: boolean }>
// keepOptimizer: read a checkpoint's optimiser state too, and keep it in the model for a resume.
Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::string path = stringArg(info, 0);
    const std::string device = stringArg(info, 1);
    const int threads = static_cast<int>(numberArg(info, 2));
    const bool keepOptimizer = info.Length() > 3 && info[3].ToBoolean();
    struct Loaded {
      std::shared_ptr<core::Model> model;
      bool checkpoint = false;
      std::optional<core::OptimizerSnapshot> optimizer;
    };
    return PromiseWorker<Loaded>::Start(
        env,
        [path, device, threads, keepOptimizer]() {
          core::LoadedModel loaded = core::loadModelFile(path, core::parseDevice(device), keepOptimizer);
          loaded.model->setThreads(threads);
          Loaded out{std::shared_ptr<core::Model>(std::move(loaded.model)), loaded.checkpoint, std::nullopt};
          if (keepOptimizer && loaded.checkpoint) out.optimizer = std::move(loaded.optimizer);
          return out;
        },
        [](Napi::Env e, Loaded& l) -> Napi::Value {
          Napi::Object out = Napi::Object::New(e);
          out.Set("model", ModelWrap::Wrap(e, l.model, std::move(l.optimizer)));
          out.Set("checkpoint", l.checkpoint);
          return out;
        });
  });
}

// contract(): the choices and defaults of native/core/contract.h, for test/contract.test.mjs.
template <typename Enum>
Napi::Array choiceNames(Napi::Env env) {
  Napi::Array out = Napi::Array::New(env);
  for (const auto& item : core::Choices<Enum>::values) out.Set(out.Length(), std::string(item.second));
  return out;
}

Napi::Value Contract(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  namespace d = core::defaults;
  Napi::Object out = Napi::Object::New(env);
  out.Set("losses", choiceNames<core::Loss>(env));
  out.Set("minings", choiceNames<core::Mining>(env));
  out.Set("optimizers", choiceNames<core::Optimizer>(env));
  out.Set("pairSchemes", choiceNames<core::PairScheme>(env));
  out.Set("towers", choiceNames<core::Tower>(env));
  out.Set("lrSchedules", choiceNames<core::LrSchedule>(env));
  out.Set("weightInits", choiceNames<core::WeightInit>(env));
  Napi::Object defaults = Napi::Object::New(env);
  defaults.Set("tower", core::choiceName(d::kTower));
  defaults.Set("width", static_cast<double>(d::kWidth));
  defaults.Set("height", static_cast<double>(d::kHeight));
  defaults.Set("embeddingSize", static_cast<double>(d::kEmbeddingSize));
  defaults.Set("loss", core::choiceName(d::kLoss));
  defaults.Set("margin", d::kMargin);
  defaults.Set("mean", d::kMean);
  defaults.Set("std", d::kStd);
  defaults.Set("pairs", core::choiceName(d::kPairs));
  defaults.Set("mining", core::choiceName(d::kMining));
  defaults.Set("optimizer", core::choiceName(d::kOptimizer));
  defaults.Set("lr", d::kLr);
  defaults.Set("lrSchedule", core::choiceName(d::kLrSchedule));
  defaults.Set("warmup", d::kWarmup);
  defaults.Set("weightDecay", d::kWeightDecay);
  defaults.Set("momentum", d::kMomentum);
  defaults.Set("epochs", static_cast<double>(d::kEpochs));
  defaults.Set("batchSize", static_cast<double>(d::kBatchSize));
  defaults.Set("seed", static_cast<double>(d::kSeed));
  defaults.Set("saveEvery", static_cast<double>(d::kSaveEvery));
  out.Set("defaults", defaults);
  namespace r = core::recipe;
  Napi::Object recipe = Napi::Object::New(env);
  recipe.Set("lr", r::kLr);
  recipe.Set("lrSchedule", core::choiceName(r::kLrSchedule));
  recipe.Set("warmup", r::kWarmup);
  recipe.Set("batchSize", static_cast<double>(r::kBatchSize));
  out.Set("recipe", recipe);
  return out;
}

// Stops every run of an environment between two batches and waits for its thread.
void joinTrainingThreads(Instance& instance) {
  for (TrainingJob* job : instance.trainingJobs) job->stop = true;
  for (TrainingJob* job : instance.trainingJobs) {
    if (job->thread.joinable()) job->thread.join();
  }
}

// stopAllTraining(): called by lib/ from process.on('exit'). process.exit() on the main thread
// (and an uncaught exception) ends in exit() without tearing the environment down, so
// stopTrainingJobs never runs, and exit() destroys LibTorch's static state (its operator
// registry, oneDNN's caches) while a training thread may still be inside a convolution: that
// crashed with SIGSEGV (10 of 12 process.exit() calls during training). This stops every run of
// this environment between two batches and waits for its thread, so that a checkpoint being
// written is completed and the process exits with its own code. The jobs stay registered: if
// JavaScript ran on, their promises would still settle (ABORT_ERR).
Napi::Value StopAllTraining(const Napi::CallbackInfo& info) {
  joinTrainingThreads(*Instance::get(info.Env()));
  return info.Env().Undefined();
}

}  // namespace

void stopTrainingJobs(Instance& instance) {
  // The environment is exiting (process.exit, worker.terminate): stop every run between two
  // batches and wait for its thread, so that no thread outlives the code it runs. Its promise
  // can no longer settle; its JavaScript references die with the environment.
  joinTrainingThreads(instance);
  for (TrainingJob* job : instance.trainingJobs) {
    job->ownerRef.SuppressDestruct();
    job->trainPixels.source.SuppressDestruct();
    job->testPixels.source.SuppressDestruct();
    delete job;
  }
  instance.trainingJobs.clear();
}

void registerModel(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = ModelWrap::Define(env);
  Instance::get(env)->modelClass = Napi::Persistent(cls);
  exports.Set("createModel", Napi::Function::New(env, CreateModel, "createModel"));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("contract", Napi::Function::New(env, Contract, "contract"));
  exports.Set("stopAllTraining", Napi::Function::New(env, StopAllTraining, "stopAllTraining"));
}

}  // namespace siamese::addon
